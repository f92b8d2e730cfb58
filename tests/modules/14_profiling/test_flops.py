"""FLOPCounter against hand-derived formulas for several shapes, and the registry."""

import numpy as np
import pytest

from tinytorch.core.activations import GELU, ReLU, Sigmoid, Softmax, Tanh
from tinytorch.core.layers import Linear, Sequential
from tinytorch.core.tensor import Tensor
from tinytorch.profiling.profiler import FlopCount, FLOPCounter, register_flop_rule


def ones(*shape):
    return Tensor(np.ones(shape, dtype=np.float32))


@pytest.mark.parametrize("x_shape,fan_out", [((1, 1), 1), ((1, 784), 128), ((64, 784), 128), ((3, 7, 5), 9), ((2, 2, 2, 4), 3)])
def test_linear_counts_every_row(x_shape, fan_out):
    fan_in = x_shape[-1]
    rows = int(np.prod(x_shape[:-1]))
    report = FLOPCounter().count(Linear(fan_in, fan_out, seed=0), ones(*x_shape))
    # by hand: each of rows*fan_out outputs is a dot product of length fan_in, then one bias add
    assert report.total_macs == rows * fan_out * fan_in
    assert report.total_flops == rows * fan_out * (2 * fan_in + 1)
    assert report.layers[0].output_shape == (*x_shape[:-1], fan_out)


def test_linear_without_bias_has_no_adds():
    report = FLOPCounter().count(Linear(5, 6, bias=False, seed=0), ones(4, 5))
    assert report.total_flops == 2 * report.total_macs == 2 * 4 * 5 * 6


@pytest.mark.parametrize("layer,per_element", [(ReLU(), 1), (Sigmoid(), 4), (Tanh(), 1), (GELU(), 9)])
@pytest.mark.parametrize("shape", [(1,), (3, 4), (2, 3, 5)])
def test_activation_cost_per_element(layer, per_element, shape):
    report = FLOPCounter().count(layer, ones(*shape))
    assert report.total_flops == per_element * int(np.prod(shape))
    assert report.total_macs == 0


@pytest.mark.parametrize("shape,axis", [((4, 5), -1), ((4, 5), 0), ((2, 3, 6), 1), ((1, 10), -1)])
def test_softmax_per_row(shape, axis):
    n = shape[axis]
    rows = int(np.prod(shape)) // n
    # per row: max (n-1 compares), subtract (n), exp (n), sum (n-1 adds), divide (n)
    expected = rows * ((n - 1) + n + n + (n - 1) + n)
    assert FLOPCounter().count(Softmax(axis=axis), ones(*shape)).total_flops == expected


def test_mlp_total_is_sum_of_layer_formulas():
    batch = 8
    mlp = Sequential(Linear(784, 256, seed=0), ReLU(), Linear(256, 10, seed=1), Softmax())
    report = FLOPCounter().count(mlp, ones(batch, 784))
    expected = [batch * 256 * (2 * 784 + 1), batch * 256, batch * 10 * (2 * 256 + 1), batch * (5 * 10 - 2)]
    assert [entry.flops for entry in report.layers] == expected
    assert [entry.name for entry in report.layers] == ["0 Linear", "1 ReLU", "2 Linear", "3 Softmax"]
    assert report.total_flops == sum(expected)
    assert [entry.output_shape for entry in report.layers] == [(8, 256), (8, 256), (8, 10), (8, 10)]


def test_nested_sequential_is_unrolled_with_dotted_names():
    model = Sequential(Sequential(Linear(3, 4, seed=0), Tanh()), Sequential(Sequential(ReLU())))
    report = FLOPCounter().count(model, ones(2, 3))
    assert [entry.name for entry in report.layers] == ["0.0 Linear", "0.1 Tanh", "1.0.0 ReLU"]
    assert [entry.flops for entry in report.layers] == [2 * 4 * (2 * 3 + 1), 8, 8]


def test_unregistered_layer_raises_with_its_name():
    class Mystery:
        def __call__(self, x):
            return x

    with pytest.raises(TypeError, match="Mystery"):
        FLOPCounter().count(Sequential(ReLU(), Mystery()), ones(2, 2))


def test_registry_accepts_new_layer_types():
    class Scale:
        def __call__(self, x):
            return x * 3.0

    class ScaleAndShift(Scale):
        def __call__(self, x):
            return x * 3.0 + 1.0

    try:
        @FLOPCounter.register(Scale)
        def scale_rule(layer, x, y):
            return FlopCount(flops=y.size)

        counted = FLOPCounter().count(Sequential(Scale(), ScaleAndShift()), ones(4, 5))
        assert [e.flops for e in counted.layers] == [20, 20]  # the subclass falls back to its base's rule

        register_flop_rule(ScaleAndShift, lambda layer, x, y: 2 * y.size)  # a plain int means FLOPs
        counted = FLOPCounter().count(Sequential(Scale(), ScaleAndShift()), ones(4, 5))
        assert [e.flops for e in counted.layers] == [20, 40] and counted.total_macs == 0
    finally:
        FLOPCounter._rules.pop(Scale, None)
        FLOPCounter._rules.pop(ScaleAndShift, None)
