"""QuantizedLinear, QuantizedConv2d, calibrate, quantize_model, model_nbytes against float oracles."""

import copy

import numpy as np
import pytest

from tinytorch.core.activations import ReLU
from tinytorch.core.layers import Linear, Sequential
from tinytorch.core.spatial import Conv2d, Flatten, MaxPool2d, conv2d_naive
from tinytorch.core.tensor import Tensor
from tinytorch.optimization.quantization import (INT8Quantizer, QuantizedConv2d, QuantizedLinear, calibrate,
                                                 model_nbytes, quantize_model)


def error_bound(x_hat, weight, s_x, s_w):
    """|y_hat - y| <= sum_k |x_hat_k| s_w/2 + |w_kj| s_x/2, plus half a step of the int32 bias."""
    return np.abs(x_hat) @ np.ones_like(weight) * (s_w / 2) + s_x / 2 * np.abs(weight).sum(axis=0) + s_x * s_w / 2


@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("shift", [0.0, 3.0, -3.0])
def test_linear_within_the_bound_from_the_scales(per_channel, shift):
    gen = np.random.default_rng(0)
    layer = Linear(48, 9, seed=1)
    layer.bias = Tensor(gen.standard_normal(9))
    x = (gen.standard_normal((40, 48)) + shift).astype(np.float32)
    quantizer = INT8Quantizer(symmetric=False).fit(x)
    quantized = QuantizedLinear(layer, quantizer, per_channel=per_channel)
    s_x, s_w = quantized.input_scale, quantized.weight_scale.astype(np.float64)
    x_hat = quantizer.dequantize(quantizer.quantize(x)).astype(np.float64)
    weight = layer.weight.data.astype(np.float64)
    exact = x.astype(np.float64) @ weight + layer.bias.data
    assert np.all(np.abs(quantized(x).data - exact) <= error_bound(x_hat, weight, s_x, s_w) * 1.001 + 1e-5)


def test_linear_weights_are_int8_and_bias_int32():
    layer = Linear(256, 64, seed=2)
    quantized = QuantizedLinear(layer, INT8Quantizer(symmetric=False).fit(np.ones((1, 256))))
    assert quantized.weight_q.dtype == np.int8 and quantized.weight_q.nbytes == layer.weight.data.nbytes // 4
    assert quantized.bias_q.dtype == np.int32 and quantized.accumulator_offset.dtype == np.int32
    assert all(not p.requires_grad for p in quantized.parameters())


def test_linear_outside_the_calibrated_range_saturates_not_wraps():
    layer = Linear(4, 2, bias=False, seed=3)
    quantizer = INT8Quantizer(symmetric=False).fit(np.array([[0.0, 1.0, 0.5, 0.2]]))
    quantized = QuantizedLinear(layer, quantizer)
    far = np.full((1, 4), 1000.0, dtype=np.float32)
    clipped = np.full((1, 4), quantizer.dequantize(np.array([127], dtype=np.int8))[0])
    np.testing.assert_allclose(quantized(far).data, clipped @ layer.weight.data, atol=0.02)


def test_linear_rejects_per_channel_or_uint8_activation_quantizers():
    layer = Linear(3, 2, seed=4)
    x = np.ones((2, 3))
    for bad in (INT8Quantizer(symmetric=False, per_channel=True, axis=1).fit(x),
                INT8Quantizer(symmetric=False, dtype="uint8").fit(x)):
        with pytest.raises(ValueError):
            QuantizedLinear(layer, bad)
    with pytest.raises(TypeError):
        QuantizedLinear(layer, None)


@pytest.mark.parametrize("stride,padding,kernel", [(1, 1, 3), (2, 0, (2, 3)), (1, 2, 3)])
def test_conv2d_against_the_loop_convolution(stride, padding, kernel):
    gen = np.random.default_rng(5)
    conv = Conv2d(3, 5, kernel, stride=stride, padding=padding, seed=6)
    conv.bias = Tensor(gen.standard_normal(5))
    x = np.abs(gen.standard_normal((2, 3, 7, 7))).astype(np.float32)       # zero point -128: padding matters
    quantized = QuantizedConv2d(conv, INT8Quantizer(symmetric=False).fit(x))
    reference = conv2d_naive(x, conv.weight.data, stride=stride, padding=padding) + conv.bias.data.reshape(1, -1, 1, 1)
    got = quantized(Tensor(x)).data
    assert got.shape == reference.shape and got.dtype == np.float32
    assert np.max(np.abs(got - reference)) < 0.02 * np.abs(reference).max()


def test_conv2d_stores_one_byte_per_weight():
    conv = Conv2d(16, 32, 3, padding=1, seed=7)
    quantized = QuantizedConv2d(conv, INT8Quantizer(symmetric=False).fit(np.ones((1, 16, 4, 4))))
    assert quantized.weight_q.dtype == np.int8 and quantized.weight_q.nbytes * 4 == conv.weight.data.nbytes
    np.testing.assert_allclose(quantized.dequantized_weight(), conv.weight.data,
                               atol=float(quantized.weight_scale.max()) / 2 * 1.0001)


def digits_like_cnn():
    return Sequential(Conv2d(1, 4, 3, padding=1, seed=0), ReLU(), MaxPool2d(2), Flatten(), Linear(4 * 4 * 4, 10, seed=1))


def test_quantize_model_keeps_predictions_and_shrinks_bytes():
    gen = np.random.default_rng(8)
    model = digits_like_cnn()
    x = gen.standard_normal((64, 1, 8, 8)).astype(np.float32)
    expected = model(x).data
    float_bytes = model_nbytes(model)
    quantized = quantize_model(copy.deepcopy(model), [x[:32], x[32:]])
    assert isinstance(quantized.layers[0], QuantizedConv2d) and isinstance(quantized.layers[4], QuantizedLinear)
    assert float_bytes / model_nbytes(quantized) > 3.5
    got = quantized(x).data
    assert np.mean(np.argmax(got, axis=1) == np.argmax(expected, axis=1)) >= 0.95
    assert np.max(np.abs(got - expected)) < 0.05 * np.abs(expected).max()


def test_calibrate_accepts_a_generator_and_labelled_pairs():
    model = Sequential(Linear(4, 3, seed=9))
    batches = [np.random.default_rng(i).standard_normal((5, 4)) for i in range(3)]
    from_generator = calibrate(model, (b for b in batches))
    from_pairs = calibrate(model, [(Tensor(b), np.zeros(5)) for b in batches])
    assert from_generator[0].scale == pytest.approx(from_pairs[0].scale, rel=1e-6)


def test_calibrate_errors():
    with pytest.raises(ValueError, match="empty"):
        calibrate(Sequential(Linear(2, 2)), [])
    with pytest.raises(ValueError, match="nothing to quantize"):
        calibrate(Sequential(ReLU(), Flatten()), [np.ones((1, 2))])
    with pytest.raises(TypeError):
        calibrate(Linear(2, 2), [np.ones((1, 2))])
