"""INT8Quantizer, observers and requantize against hand-derived formulas and NumPy oracles."""

import numpy as np
import pytest

from tinytorch.core.tensor import Tensor
from tinytorch.optimization.quantization import (INT8Quantizer, MinMaxObserver, PercentileObserver,
                                                 requantize)


@pytest.mark.parametrize("symmetric,dtype", [(True, "int8"), (False, "int8"), (False, "uint8")])
@pytest.mark.parametrize("per_channel", [False, True])
def test_round_trip_error_at_most_half_a_step(symmetric, dtype, per_channel):
    x = np.random.default_rng(0).standard_normal((300, 5)) * np.array([0.01, 0.3, 1.0, 4.0, 20.0]) + 0.5
    quantizer = INT8Quantizer(symmetric=symmetric, per_channel=per_channel, axis=1, dtype=dtype).fit(x)
    codes = quantizer.quantize(x)
    assert codes.dtype == np.dtype(dtype)
    scale = np.asarray(quantizer.scale, dtype=np.float64)
    error = np.abs(quantizer.dequantize(codes) - x)
    assert np.all(error <= scale / 2 * (1 + 1e-5) + 1e-6 * np.abs(x))


@pytest.mark.parametrize("dtype,q_min,q_max", [("int8", -128, 127), ("uint8", 0, 255)])
def test_asymmetric_saturates_beyond_the_range(dtype, q_min, q_max):
    quantizer = INT8Quantizer(symmetric=False, dtype=dtype).fit(np.array([-1.0, 1.0]))
    codes = quantizer.quantize(np.array([-1e6, -3.0, 3.0, 1e6, np.float32(2.0**30)]))
    np.testing.assert_array_equal(codes, [q_min, q_min, q_max, q_max, q_max])


def test_symmetric_never_uses_minus_128():
    quantizer = INT8Quantizer().fit(np.array([-1.0, 1.0]))
    assert quantizer.quantize(np.array([-1e9])).item() == -127


def test_zero_is_exact_for_every_asymmetric_range():
    gen = np.random.default_rng(1)
    for _ in range(50):
        low, high = sorted(gen.uniform(-10, 10, 2))
        quantizer = INT8Quantizer(symmetric=False).fit(np.array([low, high]))
        assert quantizer.dequantize(quantizer.quantize(np.zeros(1)))[0] == 0.0
        assert -128 <= quantizer.zero_point <= 127


def test_zero_point_formula():
    quantizer = INT8Quantizer(symmetric=False).fit(np.array([-0.5, 7.5]))
    scale = 8.0 / 255
    assert quantizer.scale == pytest.approx(scale, rel=1e-12)
    assert quantizer.zero_point == -128 + round(0.5 / scale)


def test_rounding_is_to_nearest_not_truncation():
    quantizer = INT8Quantizer().fit(np.array([12.7]))          # scale 0.1
    np.testing.assert_array_equal(quantizer.quantize(np.array([0.29, -0.29, 0.21, -0.21])), [3, -3, 2, -2])


def test_quantize_accepts_tensors_and_keeps_shape():
    quantizer = INT8Quantizer(per_channel=True, axis=0).fit(np.ones((3, 2, 2)))
    codes = quantizer.quantize(Tensor(np.full((3, 2, 2), 0.5)))
    assert codes.shape == (3, 2, 2) and np.all(codes == 64)


def test_observe_invalidates_the_scale_until_recomputed():
    quantizer = INT8Quantizer().fit(np.array([1.0]))
    quantizer.observe(np.array([5.0]))
    with pytest.raises(RuntimeError, match="calibrat"):
        quantizer.quantize(np.ones(2))
    scale, zero_point = quantizer.compute_qparams()
    assert scale == pytest.approx(5.0 / 127) and zero_point == 0


def test_observers_do_not_alias_the_input():
    batch = np.array([1.0, 2.0])
    observer = PercentileObserver(percentile=100.0)
    observer.observe(batch)
    batch[:] = 100.0
    assert observer.range() == (1.0, 2.0)


def test_percentile_matches_numpy_per_channel():
    x = np.random.default_rng(2).standard_normal((4, 1000))
    observer = PercentileObserver(percentile=99.0, axis=0)
    observer.observe(x[:, :400])
    observer.observe(x[:, 400:])
    low, high = observer.range()
    np.testing.assert_allclose(low, np.percentile(x, 1.0, axis=1))
    np.testing.assert_allclose(high, np.percentile(x, 99.0, axis=1))


@pytest.mark.parametrize("make", [lambda: INT8Quantizer(dtype="int16"), lambda: INT8Quantizer(dtype="uint8"),
                                  lambda: INT8Quantizer(observer="histogram"), lambda: PercentileObserver(40.0),
                                  lambda: MinMaxObserver(axis=3).observe(np.ones((2, 2)))])
def test_bad_configuration_is_a_value_error(make):
    with pytest.raises(ValueError):
        make()


def test_quantize_before_calibration_says_what_to_do():
    with pytest.raises(RuntimeError, match="calibrate"):
        INT8Quantizer(symmetric=False).quantize(np.ones(2))
    with pytest.raises(RuntimeError, match="observe"):
        MinMaxObserver().range()


def test_requantize_matches_the_float_detour():
    gen = np.random.default_rng(3)
    acc = gen.integers(-50_000, 50_000, (20, 7)).astype(np.int32)
    multiplier = gen.uniform(1e-4, 1e-2, 7)
    expected = np.clip(np.rint(acc * multiplier) + 3, -128, 127)
    np.testing.assert_array_equal(requantize(acc, multiplier, zero_point=3), expected)
    with pytest.raises(ValueError):
        requantize(acc, 0.1, dtype="int4")
