"""FLOPCounter on module 09's layers, which count themselves (flop_count), against formulas and oracles.

Module 09 comes before this counter, so its layers cannot register a rule; FLOPCounter falls back to a
layer's own flop_count(x, y) -> (flops, macs). Oracles: the GEMM that im2col actually builds (its
rows x columns x output channels are the MACs), hand-counted windows for pooling, and PyTorch's
flop counter where torch is installed (it counts only the matrix products: 2 FLOPs per MAC, no bias).
"""

import numpy as np
import pytest

from tinytorch.core.activations import ReLU
from tinytorch.core.layers import Linear, Sequential
from tinytorch.core.spatial import AvgPool2d, Conv2d, Flatten, MaxPool2d, im2col
from tinytorch.core.tensor import Tensor
from tinytorch.profiling.profiler import FlopCount, FLOPCounter, register_flop_rule

CONV_CASES = [  # (x shape, out channels, kernel, stride, padding)
    ((1, 1, 5, 5), 1, 3, 1, 0),
    ((2, 3, 8, 8), 4, 3, 1, 1),
    ((3, 2, 9, 7), 5, (3, 2), 2, 1),   # rectangular kernel, stride that does not divide the input
    ((2, 16, 32, 32), 32, 3, 1, 1),    # the benchmark's layer
]


def images(shape, seed=0):
    return Tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


@pytest.mark.parametrize("x_shape,out_channels,kernel,stride,padding", CONV_CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_macs_are_the_gemm_that_im2col_builds(x_shape, out_channels, kernel, stride, padding, bias):
    layer = Conv2d(x_shape[1], out_channels, kernel, stride=stride, padding=padding, bias=bias, seed=0)
    x = images(x_shape)
    kh, kw = layer.kernel_size
    cols = im2col(x.data, kh, kw, stride, padding)          # (N·H_out·W_out, C_in·kh·kw)
    gemm_macs = cols.shape[0] * cols.shape[1] * out_channels
    outputs = cols.shape[0] * out_channels                  # one bias add per output element
    report = FLOPCounter().count(layer, x)
    assert report.total_macs == gemm_macs
    assert report.total_flops == 2 * gemm_macs + (outputs if bias else 0)
    assert isinstance(report.total_flops, int) and isinstance(report.total_macs, int)


def test_conv2d_formula_by_hand():
    # N=2, C_in=3, C_out=4, 8x8 input, k=3, padding 1 -> 8x8 output
    report = FLOPCounter().count(Conv2d(3, 4, 3, padding=1, seed=0), images((2, 3, 8, 8)))
    macs = 2 * 4 * 8 * 8 * 3 * 3 * 3
    assert (report.total_macs, report.total_flops) == (macs, 2 * macs + 2 * 4 * 8 * 8)


@pytest.mark.parametrize("x_shape,kernel,stride", [((2, 3, 8, 8), 2, None), ((1, 2, 7, 7), 3, 2), ((2, 1, 6, 9), (2, 3), 1)])
def test_pooling_counts_per_window(x_shape, kernel, stride):
    x = images(x_shape)
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    for layer, per_window in ((MaxPool2d(kernel, stride), kh * kw - 1), (AvgPool2d(kernel, stride), kh * kw)):
        y = layer(x)
        windows = int(np.prod(y.shape))
        report = FLOPCounter().count(layer, x)
        assert report.total_flops == windows * per_window, type(layer).__name__
        assert report.total_macs == 0


def test_pool_window_counts_by_hand():
    x = images((2, 3, 7, 7))       # kernel 3, stride 2 -> 3x3 windows: 2*3*9 = 54 outputs
    assert FLOPCounter().count(MaxPool2d(3, 2), x).total_flops == 54 * 8
    assert FLOPCounter().count(AvgPool2d(3, 2), x).total_flops == 54 * 9


def test_small_cnn_total_is_the_sum_of_its_layers():
    cnn = Sequential(Conv2d(1, 4, 3, padding=1, seed=0), ReLU(), MaxPool2d(2),
                     Conv2d(4, 8, 3, padding=1, seed=1), ReLU(), AvgPool2d(2), Flatten(), Linear(8 * 2 * 2, 10, seed=2))
    report = FLOPCounter().count(cnn, images((5, 1, 8, 8)))
    conv1 = 5 * 4 * 8 * 8 * 1 * 9
    conv2 = 5 * 8 * 4 * 4 * 4 * 9
    by_hand = [2 * conv1 + 5 * 4 * 64, 5 * 4 * 64, 5 * 4 * 16 * 3,
               2 * conv2 + 5 * 8 * 16, 5 * 8 * 16, 5 * 8 * 4 * 4, 0, 2 * 5 * 32 * 10 + 5 * 10]
    assert [entry.flops for entry in report.layers] == by_hand
    assert report.total_macs == conv1 + conv2 + 5 * 32 * 10
    assert [entry.name for entry in report.layers][:3] == ["0 Conv2d", "1 ReLU", "2 MaxPool2d"]


def test_a_registered_rule_overrides_the_layers_own_count():
    class CountedConv(Conv2d):
        pass

    try:
        register_flop_rule(CountedConv, lambda layer, x, y: FlopCount(flops=1, macs=0))
        x = images((1, 1, 4, 4))
        assert FLOPCounter().count(CountedConv(1, 1, 3, seed=0), x).total_flops == 1
        assert FLOPCounter().count(Conv2d(1, 1, 3, seed=0), x).total_flops == 2 * 9 * 4 + 4
    finally:
        FLOPCounter._rules.pop(CountedConv, None)


@pytest.mark.parametrize("x_shape,out_channels,kernel,stride,padding", CONV_CASES)
def test_conv2d_matches_torch_flop_counter(x_shape, out_channels, kernel, stride, padding):
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    layer = Conv2d(x_shape[1], out_channels, kernel, stride=stride, padding=padding, bias=False, seed=0)
    x = images(x_shape)
    with FlopCounterMode(display=False) as torch_counter:
        torch.nn.functional.conv2d(torch.from_numpy(x.data), torch.from_numpy(layer.weight.data),
                                   stride=stride, padding=padding)
    assert FLOPCounter().count(layer, x).total_flops == torch_counter.get_total_flops()
