# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Module 09: Spatial — convolution and pooling
#
# An MLP sees an image as a flat list of numbers: move a digit one pixel to the right and every
# input changes. A **convolution** slides one small filter over the whole image, so the same
# weights look for the same pattern everywhere, and a **pooling** layer keeps the strongest (or
# the average) response of each neighbourhood. Stacked, they make a convolutional network (CNN):
#
# ```
#   digits (N, 1, 8, 8) ─▶ Conv2d(1, 16, 3, padding=1) ─▶ ReLU ─▶ MaxPool2d(2) ─▶ (N, 16, 4, 4)
#                       ─▶ Conv2d(16, 32, 3, padding=1) ─▶ ReLU ─▶ MaxPool2d(2) ─▶ (N, 32, 2, 2)
#                       ─▶ Flatten ─▶ (N, 128) ─▶ Linear(128, 10) ─▶ scores (N, 10)
# ```
#
# Written as loops, a convolution is seven nested `for`s, far too slow to train on anything.
# **im2col** copies every window the filter visits into one row of a matrix, and the whole
# convolution becomes *one* matrix multiplication through module 03's dispatch point, which
# BLAS does at close to the machine's peak. Its gradient is two more matrix products and the
# inverse copy, **col2im**.
#
# | you write | what it is for |
# |---|---|
# | `conv2d_naive(x, weight, stride, padding)` | seven loops: the reference and the oracle |
# | `im2col`, `col2im` | windows to rows, and rows back to pixels (overlaps added) |
# | `conv2d_im2col(x, weight, stride, padding)` | im2col + one GEMM through module 03's `matmul` |
# | `conv2d(x, weight, bias, stride, padding)` | the dispatch point: routes to the current conv2d backend; autograd records it |
# | `conv2d_backward` | the gradient rule for input, weight and bias (module 06's registry) |
# | `Conv2d`, `MaxPool2d`, `AvgPool2d`, `Flatten` | the layers, and the pooling gradients |
#
# Module 15 plugs its backends (naive loops, NumPy im2col, optimized kernels) into this
# module's conv2d dispatch point, exactly as it plugs them into module 03's matmul.

# %%
#| default_exp core.spatial

# %%
#| export
import math
import numbers

import numpy as np

from tinytorch.core.tensor import Tensor, records
from tinytorch.core.layers import matmul                 # every GEMM goes through module 03's dispatch point
from tinytorch.core.autograd import GraphNode, gradient_rule

# %%
from tinytorch.core.activations import ReLU              # the CNN and the tests, not the layers
from tinytorch.core.layers import Linear, Sequential

# %% [markdown]
# ## Shapes: what a convolution accepts
#
# Inputs are 4-D, `(N, C, H, W)`: batch, channels, height, width. A weight is
# `(out_channels, in_channels, kernel_h, kernel_w)`. With `padding` zeros around each side and a
# step of `stride` pixels, a kernel of height `k` fits
#
# ```
#   out_h = (H + 2·padding - k) // stride + 1          (the same rule for the width)
# ```
#
# times. These checks are given: every kernel below calls them first, so a bad call fails with
# an error that names the shapes instead of an `IndexError` deep inside a loop.

# %%
#| export
def as_pair(value, name: str) -> tuple:
    """An int or a pair of ints as (height, width); TypeError otherwise."""
    pair = (value, value) if isinstance(value, numbers.Integral) else tuple(value) if isinstance(value, (tuple, list)) else None
    if pair is None or len(pair) != 2 or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in pair):
        raise TypeError(f"{name} must be an int or a pair of ints (height, width), got {value!r}")
    return int(pair[0]), int(pair[1])


def window_output_size(x_shape: tuple, kernel_hw: tuple, stride: int, padding: int, op: str = "conv2d") -> tuple:
    """(out_h, out_w) of a kernel sliding over a 4-D (N, C, H, W) input; ValueError naming the shapes."""
    if len(x_shape) != 4:
        raise ValueError(f"{op} expects a 4-D input (N, C, H, W), got shape {tuple(x_shape)}; "
                         "for a single image add a batch dimension: x.reshape(1, *x.shape)")
    if isinstance(stride, bool) or not isinstance(stride, numbers.Integral) or stride < 1:
        raise ValueError(f"{op}: stride must be a positive integer, got {stride!r}")
    if isinstance(padding, bool) or not isinstance(padding, numbers.Integral) or padding < 0:
        raise ValueError(f"{op}: padding must be a non-negative integer, got {padding!r}")
    kernel_h, kernel_w = kernel_hw
    padded_h, padded_w = x_shape[2] + 2 * padding, x_shape[3] + 2 * padding
    if kernel_h > padded_h or kernel_w > padded_w or kernel_h < 1 or kernel_w < 1:
        raise ValueError(f"{op}: kernel {kernel_h}x{kernel_w} does not fit the padded input {padded_h}x{padded_w} "
                         f"(input shape {tuple(x_shape)}, padding {padding}); use a smaller kernel or more padding")
    return (padded_h - kernel_h) // stride + 1, (padded_w - kernel_w) // stride + 1


def conv2d_output_shape(x_shape: tuple, weight_shape: tuple, stride: int = 1, padding: int = 0) -> tuple:
    """(N, out_channels, out_h, out_w) of conv2d(x, weight); ValueError naming both shapes."""
    if len(weight_shape) != 4:
        raise ValueError(f"conv2d expects a 4-D weight (out_channels, in_channels, kernel_h, kernel_w), "
                         f"got shape {tuple(weight_shape)}")
    if len(x_shape) == 4 and x_shape[1] != weight_shape[1]:
        raise ValueError(f"conv2d channel mismatch: the input {tuple(x_shape)} has {x_shape[1]} channels but the "
                         f"weight {tuple(weight_shape)} expects {weight_shape[1]}; the input is (N, C, H, W) and "
                         "the weight (out_channels, in_channels, kernel_h, kernel_w)")
    out_h, out_w = window_output_size(x_shape, weight_shape[2:], stride, padding)
    return x_shape[0], weight_shape[0], out_h, out_w


# %% [markdown]
# ## The reference: `conv2d_naive`
#
# Each output value is a dot product between the kernel of one output channel and the window
# of the (zero-padded) input under it:
#
# ```
#   out[n, o, r, c] = Σ_ch Σ_i Σ_j  padded[n, ch, r·stride + i, c·stride + j] · weight[o, ch, i, j]
#
#      padded input (one channel)          kernel           output
#      ┌───┬───┬───┬───┐                  ┌───┬───┐         ┌───┬───┐
#      │ a │ b │ c │ d │   window at       │ p │ q │         │ • │   │  • = a·p + b·q + e·r + f·s
#      ├───┼───┼───┼───┤   (r=0, c=0)      ├───┼───┤         ├───┼───┤
#      │ e │ f │ g │ h │  ───────────▶     │ r │ s │         │   │   │
#      ...                                 └───┴───┘         └───┴───┘
# ```
#
# Write it with explicit loops: over samples, output channels, output rows, output columns,
# and the three sums. Pad with `np.pad` first (zeros), compute the output size with
# `conv2d_output_shape` (which also rejects bad shapes), and accumulate in
# `np.result_type(x, weight)`, so a float32 convolution is a float32 computation.

# %% nbgrader={"grade": false, "grade_id": "conv2d-naive", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def conv2d_naive(x: np.ndarray, weight: np.ndarray, stride: int = 1, padding: int = 0) -> np.ndarray:
    """Cross-correlation of x (N, C, H, W) with weight (O, C, kh, kw) by explicit loops: the reference."""
    ### BEGIN SOLUTION
    x, weight = np.asarray(x), np.asarray(weight)
    batch, out_channels, out_h, out_w = conv2d_output_shape(x.shape, weight.shape, stride, padding)
    in_channels, kernel_h, kernel_w = weight.shape[1:]
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    naive_out = np.zeros((batch, out_channels, out_h, out_w), dtype=np.result_type(x, weight))
    for n in range(batch):
        for o in range(out_channels):
            for row in range(out_h):
                for col in range(out_w):
                    total = naive_out.dtype.type(0)
                    for ch in range(in_channels):
                        for i in range(kernel_h):
                            for j in range(kernel_w):
                                total += padded[n, ch, row * stride + i, col * stride + j] * weight[o, ch, i, j]
                    naive_out[n, o, row, col] = total
    return naive_out
    ### END SOLUTION


# %% [markdown]
# ### Test: `conv2d_naive` on a case worked by hand, and its errors

# %% nbgrader={"grade": true, "grade_id": "test-conv2d-naive", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def test_unit_conv2d_naive_by_hand():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    weight = np.array([[[[1.0, 0.0], [0.0, -1.0]]]])          # top-left minus bottom-right
    # every 2x2 window of arange: x[r, c] - x[r+1, c+1] = -5
    np.testing.assert_array_equal(conv2d_naive(x, weight), np.full((1, 1, 3, 3), -5.0))
    strided = conv2d_naive(x, weight, stride=2)
    assert strided.shape == (1, 1, 2, 2)
    np.testing.assert_array_equal(strided, np.full((1, 1, 2, 2), -5.0))
    padded = conv2d_naive(x, np.ones((1, 1, 3, 3)), padding=1)
    assert padded.shape == (1, 1, 4, 4)
    assert padded[0, 0, 0, 0] == 0 + 1 + 4 + 5                # the corner sees four real pixels
    assert padded[0, 0, 1, 1] == x[0, 0, :3, :3].sum()

def test_unit_conv2d_naive_channels_and_dtype():
    gen = np.random.default_rng(0)
    x = gen.standard_normal((2, 3, 5, 5)).astype(np.float32)
    weight = gen.standard_normal((4, 3, 3, 3)).astype(np.float32)
    out = conv2d_naive(x, weight)
    assert out.shape == (2, 4, 3, 3) and out.dtype == np.float32
    expected = np.einsum("nchw,ochw->no", x[:, :, 1:4, 2:5].astype(np.float64), weight.astype(np.float64))
    np.testing.assert_allclose(out[:, :, 1, 2], expected, rtol=1e-5, atol=1e-5)

def test_unit_conv2d_naive_errors():
    for bad_x, bad_w, named in [(np.ones((1, 2, 5, 5)), np.ones((1, 3, 3, 3)), "(1, 2, 5, 5)"),
                                (np.ones((2, 5, 5)), np.ones((1, 2, 3, 3)), "(2, 5, 5)"),
                                (np.ones((1, 1, 2, 2)), np.ones((1, 1, 3, 3)), "3x3")]:
        try:
            conv2d_naive(bad_x, bad_w)
        except ValueError as err:
            assert named in str(err), str(err)
        else:
            raise AssertionError(f"conv2d_naive({bad_x.shape}, {bad_w.shape}) must raise ValueError")

test_unit_conv2d_naive_by_hand()
test_unit_conv2d_naive_channels_and_dtype()
test_unit_conv2d_naive_errors()
### BEGIN HIDDEN TESTS
def test_hidden_conv2d_naive_stride_padding_rectangular():
    gen = np.random.default_rng(1)
    x, weight = gen.standard_normal((1, 2, 7, 6)), gen.standard_normal((3, 2, 3, 2))
    out = conv2d_naive(x, weight, stride=2, padding=1)
    assert out.shape == (1, 3, 4, 4)
    padded = np.zeros((1, 2, 9, 8))
    padded[:, :, 1:8, 1:7] = x
    np.testing.assert_allclose(out[0, :, 2, 3], np.einsum("chw,ochw->o", padded[0, :, 4:7, 6:8], weight), rtol=1e-12)
    try:
        conv2d_naive(x, weight, stride=0)
    except ValueError:
        pass
    else:
        raise AssertionError("stride=0 must raise ValueError")

test_hidden_conv2d_naive_stride_padding_rectangular()
### END HIDDEN TESTS

# %% [markdown]
# ## im2col: every window becomes a row
#
# For each output position `(n, r, c)`, copy the window it reads, all channels, into one row of
# length `C·kh·kw`; flatten the weight to `(O, C·kh·kw)`. The convolution is then one product:
#
# ```
#   cols = im2col(x)                (N·out_h·out_w,  C·kh·kw)     one row per output position
#   flat = weight.reshape(O, -1)    (O,              C·kh·kw)     one row per output channel
#   out  = cols @ flat.T            (N·out_h·out_w,  O)  ──reshape──▶ (N, out_h, out_w, O) ──▶ (N, O, out_h, out_w)
# ```
#
# Row order is `(n, r, c)` and column order `(ch, i, j)`, the same order as `weight.reshape(O, -1)`.
#
# You do not need a Python loop per window. Loop over the `kh·kw` kernel offsets instead: for the
# offset `(i, j)` the pixels every window reads are one strided slice of the padded input,
#
# ```
#   padded[:, :, i : i + stride·(out_h - 1) + 1 : stride,  j : j + stride·(out_w - 1) + 1 : stride]   # (N, C, out_h, out_w)
# ```
#
# so `kh·kw` slice copies fill the whole matrix. Write them into an array of shape
# `(N, out_h, out_w, C, kh, kw)` and reshape it to 2-D.
#
# **col2im** goes the other way: given a matrix of that shape (in backward, the gradient with
# respect to each window's pixels), add every row back onto the pixels it came from. Windows
# overlap when `stride < k`, so a pixel receives the *sum* of the rows that read it (`+=`, not `=`),
# and the padding is cut off at the end. It is the adjoint of im2col:
# `<im2col(x), cols> = <x, col2im(cols)>` for any `x` and `cols` — the test checks exactly that.

# %% nbgrader={"grade": false, "grade_id": "im2col", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def im2col(x: np.ndarray, kernel_h: int, kernel_w: int, stride: int = 1, padding: int = 0) -> np.ndarray:
    """(N, C, H, W) -> (N·out_h·out_w, C·kernel_h·kernel_w): each window the kernel visits as one row."""
    ### BEGIN SOLUTION
    x = np.asarray(x)
    out_h, out_w = window_output_size(x.shape, (kernel_h, kernel_w), stride, padding, op="im2col")
    batch, channels = x.shape[:2]
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    windows = np.empty((batch, out_h, out_w, channels, kernel_h, kernel_w), dtype=x.dtype)
    for i in range(kernel_h):
        for j in range(kernel_w):
            offset_pixels = padded[:, :, i:i + stride * (out_h - 1) + 1:stride, j:j + stride * (out_w - 1) + 1:stride]
            windows[:, :, :, :, i, j] = offset_pixels.transpose(0, 2, 3, 1)
    return windows.reshape(batch * out_h * out_w, channels * kernel_h * kernel_w)
    ### END SOLUTION


def col2im(cols: np.ndarray, x_shape: tuple, kernel_h: int, kernel_w: int, stride: int = 1,
           padding: int = 0) -> np.ndarray:
    """The adjoint of im2col: add each row of cols back onto the pixels of x_shape its window covers."""
    ### BEGIN SOLUTION
    cols = np.asarray(cols)
    out_h, out_w = window_output_size(tuple(x_shape), (kernel_h, kernel_w), stride, padding, op="col2im")
    batch, channels, height, width = x_shape
    expected_shape = (batch * out_h * out_w, channels * kernel_h * kernel_w)
    if cols.shape != expected_shape:
        raise ValueError(f"col2im: cols of shape {cols.shape} do not come from an input {tuple(x_shape)} with a "
                         f"{kernel_h}x{kernel_w} kernel (stride {stride}, padding {padding}); expected {expected_shape}")
    windows = cols.reshape(batch, out_h, out_w, channels, kernel_h, kernel_w)
    padded = np.zeros((batch, channels, height + 2 * padding, width + 2 * padding), dtype=cols.dtype)
    for i in range(kernel_h):
        for j in range(kernel_w):
            padded[:, :, i:i + stride * (out_h - 1) + 1:stride, j:j + stride * (out_w - 1) + 1:stride] += \
                windows[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return padded[:, :, padding:padding + height, padding:padding + width].copy()
    ### END SOLUTION


# %% [markdown]
# ### Test: im2col's rows are the windows; col2im is its adjoint

# %% nbgrader={"grade": true, "grade_id": "test-im2col", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
def test_unit_im2col_rows_are_windows():
    x = np.arange(2 * 3 * 5 * 4, dtype=np.float64).reshape(2, 3, 5, 4)
    cols = im2col(x, 3, 2, stride=2, padding=1)
    out_h, out_w = (5 + 2 - 3) // 2 + 1, (4 + 2 - 2) // 2 + 1
    assert cols.shape == (2 * out_h * out_w, 3 * 3 * 2)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    for n, r, c in [(0, 0, 0), (1, 2, 1), (0, 1, 2)]:
        window = padded[n, :, 2 * r:2 * r + 3, 2 * c:2 * c + 2]
        np.testing.assert_array_equal(cols[(n * out_h + r) * out_w + c], window.reshape(-1))
    assert im2col(x.astype(np.float32), 2, 2).dtype == np.float32

def test_unit_col2im_is_the_adjoint():
    gen = np.random.default_rng(3)
    x = gen.standard_normal((2, 2, 6, 5))
    for kernel, stride, padding in [((3, 3), 1, 1), ((2, 3), 2, 0), ((3, 2), 2, 2)]:
        cols = im2col(x, *kernel, stride=stride, padding=padding)
        other = gen.standard_normal(cols.shape)
        back = col2im(other, x.shape, *kernel, stride=stride, padding=padding)
        assert back.shape == x.shape
        np.testing.assert_allclose(np.sum(cols * other), np.sum(x * back), rtol=1e-10)

def test_unit_col2im_counts_overlaps():
    ones = np.ones((1 * 3 * 3, 1 * 2 * 2))                  # a 4x4 image, 2x2 kernel, stride 1: 3x3 windows
    coverage = col2im(ones, (1, 1, 4, 4), 2, 2)
    np.testing.assert_array_equal(coverage[0, 0], [[1, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2], [1, 2, 2, 1]])

test_unit_im2col_rows_are_windows()
test_unit_col2im_is_the_adjoint()
test_unit_col2im_counts_overlaps()
### BEGIN HIDDEN TESTS
def test_hidden_im2col_errors_and_stride_skip():
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    cols = im2col(x, 2, 2, stride=3)                        # windows at 0 and 3; row/col 2 never read
    np.testing.assert_array_equal(cols, [[0, 1, 5, 6], [3, 4, 8, 9], [15, 16, 20, 21], [18, 19, 23, 24]])
    back = col2im(cols, x.shape, 2, 2, stride=3)
    np.testing.assert_array_equal(back[0, 0, 2], np.zeros(5))
    for bad in [lambda: im2col(np.ones((3, 5, 5)), 2, 2), lambda: im2col(x, 6, 6), lambda: im2col(x, 2, 2, stride=-1)]:
        try:
            bad()
        except ValueError:
            continue
        raise AssertionError("im2col must raise ValueError on a 3-D input, an oversized kernel or a negative stride")

test_hidden_im2col_errors_and_stride_skip()
### END HIDDEN TESTS

# %% [markdown]
# ## `conv2d_im2col`: one GEMM
#
# Put the pieces together: `conv2d_output_shape` for the checks, `im2col`, one product of the
# columns with the flattened weight, then reshape and transpose the `(N·out_h·out_w, O)` result to
# `(N, O, out_h, out_w)` (return a contiguous array: the next layer reads it window by window).
#
# The product goes through `gemm(a, b)`, a function of two 2-D arrays. By default that is
# module 03's `matmul`, so the convolution runs on whatever matmul backend is current; a backend
# object (module 15) passes its own matmul. Hand it contiguous operands: compiled kernels are
# fastest (and some only correct) on them.

# %% nbgrader={"grade": false, "grade_id": "conv2d-im2col", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def conv2d_im2col(x: np.ndarray, weight: np.ndarray, stride: int = 1, padding: int = 0, gemm=None) -> np.ndarray:
    """conv2d as im2col + one matrix product; gemm(a2d, b2d) defaults to module 03's matmul dispatch."""
    ### BEGIN SOLUTION
    x, weight = np.asarray(x), np.asarray(weight)
    batch, out_channels, out_h, out_w = conv2d_output_shape(x.shape, weight.shape, stride, padding)
    gemm = matmul if gemm is None else gemm
    cols = im2col(x, weight.shape[2], weight.shape[3], stride, padding)
    flat_weight_t = np.ascontiguousarray(weight.reshape(out_channels, -1).T)
    rows = gemm(cols, flat_weight_t)                                  # (N·out_h·out_w, O)
    return np.ascontiguousarray(rows.reshape(batch, out_h, out_w, out_channels).transpose(0, 3, 1, 2))
    ### END SOLUTION


# %% [markdown]
# ### Test: `conv2d_im2col` against the loops, float64, random shapes
#
# Kernels that do not divide the input, strides that skip pixels, padding wider than the kernel's
# reach: the oracle is `conv2d_naive`, in float64, to 1e-10.

# %% nbgrader={"grade": true, "grade_id": "test-conv2d-im2col", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def test_unit_conv2d_im2col_matches_loops():
    gen = np.random.default_rng(4)
    for case in range(6):
        batch, in_ch, out_ch = gen.integers(1, 3), gen.integers(1, 4), gen.integers(1, 4)
        height, width = gen.integers(4, 9), gen.integers(4, 9)
        kernel_h, kernel_w = gen.integers(1, 5), gen.integers(1, 5)
        stride, padding = int(gen.integers(1, 4)), int(gen.integers(0, 3))
        x = gen.standard_normal((batch, in_ch, height, width))
        weight = gen.standard_normal((out_ch, in_ch, kernel_h, kernel_w))
        expected = conv2d_naive(x, weight, stride=stride, padding=padding)
        got = conv2d_im2col(x, weight, stride=stride, padding=padding)
        assert got.shape == expected.shape, (case, got.shape, expected.shape)
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)

def test_unit_conv2d_im2col_uses_gemm():
    calls = []
    def recording_gemm(a, b):
        calls.append((a.shape, b.shape))
        return np.dot(a, b)
    x, weight = np.ones((2, 3, 6, 6)), np.ones((5, 3, 3, 3))
    out = conv2d_im2col(x, weight, gemm=recording_gemm)
    assert calls == [((2 * 4 * 4, 27), (27, 5))], calls           # exactly one GEMM
    np.testing.assert_array_equal(out, np.full((2, 5, 4, 4), 27.0))
    assert out.flags["C_CONTIGUOUS"]

test_unit_conv2d_im2col_matches_loops()
test_unit_conv2d_im2col_uses_gemm()

# %% [markdown]
# ## The dispatch point: `conv2d`
#
# Like module 03's matmul, the convolution gets a registry of kernels `fn(x, weight, stride,
# padding) -> ndarray` (4-D arrays in, no bias) and the name of the current one. It starts with
# `"numpy"` (`conv2d_im2col`, the default) and `"naive"` (the loops); module 15 registers a
# backend object's `conv2d` under the backend's name. A kernel may bring its own backward,
# `backward(x, weight, grad, stride, padding, needs_grad) -> (d x, d weight)`, for the backend
# that can do the unfold and fold faster than NumPy; without one, backward is your
# `conv2d_backward` (below). The registry is given:
#
# | function | behaviour |
# |---|---|
# | `register_conv2d(name, fn, backward=None)` | add (or replace) a kernel, and its own backward if it has one |
# | `set_conv2d_backend(name)` | make `name` current; returns the previous name |
# | `get_conv2d_backend()`, `available_conv2d_backends()` | the current name; the registered names, sorted |
#
# **Your task: `conv2d(x, weight, bias=None, stride=1, padding=0)`.** It accepts Tensors or
# arrays and returns a Tensor if any input was one (arrays meeting a Tensor go through `Tensor(...)`,
# as in `matmul`). Check the shapes once with `conv2d_output_shape`, check that a bias has shape
# `(out_channels,)` (a `ValueError` naming both shapes), run the current kernel, and add the bias
# to every pixel of its channel (`bias.reshape(1, -1, 1, 1)`). The `@records` decorator reports
# the call to autograd as one operation, `"conv2d"`, with `stride` and `padding` as parameters.

# %%
#| export
_CONV2D_BACKENDS = {"numpy": conv2d_im2col, "naive": conv2d_naive}   # name -> fn(x, weight, stride, padding)
_CONV2D_BACKWARDS = {}   # name -> backward(x, weight, grad, stride, padding, needs_grad), for kernels that bring one
_current_conv2d_backend = "numpy"


def register_conv2d(name: str, fn, backward=None) -> None:
    """Register fn(x, weight, stride, padding) -> ndarray (N, O, out_h, out_w) as conv2d backend `name`.

    backward: None (gradients by conv2d_backward) or backward(x, weight, grad, stride, padding, needs_grad)
    -> (d x or None, d weight or None), needs_grad a pair of bools for (x, weight).
    """
    if not (isinstance(name, str) and name):
        raise TypeError(f"a backend name must be a non-empty string, got {name!r}")
    if not callable(fn):
        raise TypeError(f"conv2d backend {name!r} must be a function fn(x, weight, stride, padding), "
                        f"got {type(fn).__name__}")
    if backward is not None and not callable(backward):
        raise TypeError(f"the backward of conv2d backend {name!r} must be None or a function "
                        f"backward(x, weight, grad, stride, padding, needs_grad), got {type(backward).__name__}")
    _CONV2D_BACKENDS[name] = fn
    if backward is None:   # a new kernel never inherits the backward of the one it replaces
        _CONV2D_BACKWARDS.pop(name, None)
    else:
        _CONV2D_BACKWARDS[name] = backward


def set_conv2d_backend(name: str) -> str:
    """Make `name` the current conv2d backend; returns the previous name (to restore it later)."""
    global _current_conv2d_backend
    if name not in _CONV2D_BACKENDS:
        raise ValueError(f"unknown conv2d backend {name!r}; registered: {', '.join(available_conv2d_backends())} "
                         "(add one with register_conv2d)")
    previous, _current_conv2d_backend = _current_conv2d_backend, name
    return previous


def get_conv2d_backend() -> str:
    """The name of the current conv2d backend."""
    return _current_conv2d_backend


def available_conv2d_backends() -> list[str]:
    """The registered conv2d backend names, sorted."""
    return sorted(_CONV2D_BACKENDS)

# %% nbgrader={"grade": false, "grade_id": "conv2d-dispatch", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
@records("conv2d", "x", "weight", "bias")   # module 01's seam: autograd records one conv2d
def conv2d(x, weight, bias=None, stride: int = 1, padding: int = 0):
    """Convolution (cross-correlation) of x (N, C, H, W) with weight (O, C, kh, kw) plus bias (O,), on the current backend."""
    ### BEGIN SOLUTION
    return_tensor = any(isinstance(v, Tensor) for v in (x, weight, bias))
    as_array = (lambda v: Tensor(v).data) if return_tensor else np.asarray
    x_values, weight_values = as_array(x), as_array(weight)
    out_channels = conv2d_output_shape(x_values.shape, weight_values.shape, stride, padding)[1]
    convolved = _CONV2D_BACKENDS[_current_conv2d_backend](x_values, weight_values, stride, padding)
    if bias is not None:
        bias_values = as_array(bias)
        if bias_values.shape != (out_channels,):
            raise ValueError(f"conv2d bias of shape {bias_values.shape} does not fit a weight of shape "
                             f"{weight_values.shape}: it needs one value per output channel, shape ({out_channels},)")
        convolved = convolved + bias_values.reshape(1, -1, 1, 1)
    return Tensor(convolved, dtype=convolved.dtype) if return_tensor else convolved
    ### END SOLUTION


# %% [markdown]
# ### Test: `conv2d` routes through the registered backend and adds the bias

# %% nbgrader={"grade": true, "grade_id": "test-conv2d-dispatch", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_conv2d_bias_and_types():
    gen = np.random.default_rng(5)
    x, weight, bias = gen.standard_normal((2, 3, 5, 5)), gen.standard_normal((4, 3, 3, 3)), gen.standard_normal(4)
    by_loops = np.einsum("nchw,ochw->no", x[:, :, 1:4, 0:3], weight) + bias
    got = conv2d(x, weight, bias, padding=0)
    assert isinstance(got, np.ndarray) and got.shape == (2, 4, 3, 3)
    np.testing.assert_allclose(got[:, :, 1, 0], by_loops, rtol=1e-10, atol=1e-10)
    as_tensor = conv2d(Tensor(x), Tensor(weight), Tensor(bias))
    assert isinstance(as_tensor, Tensor) and as_tensor.dtype == np.float32
    np.testing.assert_allclose(as_tensor.data[:, :, 1, 0], by_loops, rtol=1e-4, atol=1e-4)
    try:
        conv2d(x, weight, np.ones(3))
    except ValueError as err:
        assert "(3,)" in str(err)
    else:
        raise AssertionError("a bias of 3 values for 4 output channels must raise ValueError")

def test_unit_conv2d_uses_current_backend():
    calls = []
    def recording_kernel(x, weight, stride, padding):
        calls.append((x.shape, weight.shape, stride, padding))
        return np.zeros((x.shape[0], weight.shape[0], 2, 2))
    register_conv2d("recording", recording_kernel)
    previous = set_conv2d_backend("recording")
    try:
        out = conv2d(np.ones((1, 2, 4, 4)), np.ones((3, 2, 3, 3)), np.arange(3.0), stride=1, padding=0)
    finally:
        set_conv2d_backend(previous)
    assert calls == [((1, 2, 4, 4), (3, 2, 3, 3), 1, 0)]
    np.testing.assert_array_equal(out[0, :, 1, 1], [0.0, 1.0, 2.0])
    assert get_conv2d_backend() == previous

test_unit_conv2d_bias_and_types()
test_unit_conv2d_uses_current_backend()

# %% [markdown]
# ## The gradient of a convolution
#
# Forward is `rows = cols @ flat.T` (plus the bias), so backward is the matmul rule of module 06
# applied to that product, with `G` the upstream gradient laid out as rows, `(N·out_h·out_w, O)`
# (transpose `(N, O, out_h, out_w)` to `(N, out_h, out_w, O)` and reshape):
#
# ```
#   d weight = (G.T @ cols).reshape(weight.shape)      every window, weighted by the gradient at its output
#   d cols   =  G @ flat                               what each window's pixels received
#   d x      = col2im(d cols)                          pixels read by several windows add up
#   d bias   = G summed over N, out_h, out_w           the bias touched every pixel of its channel
# ```
#
# Register it with module 06 under the name the forward reports, `"conv2d"`; `node.inputs` are
# `(x, weight, bias)` (bias may be `None`), `node.params` holds `stride` and `padding`, and the
# rule returns one gradient (or `None`) per input. Compute only what `node.needs_grad` asks for:
# the first layer's input is the data, and its gradient would be a wasted col2im. Do both
# products with module 03's `matmul`, so backward runs on the current backend too.

# %% nbgrader={"grade": false, "grade_id": "conv2d-backward", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
@gradient_rule("conv2d")
def conv2d_backward(node: GraphNode, grad: np.ndarray) -> tuple:
    """Gradients of conv2d(x, weight, bias, stride, padding) for x, weight and bias."""
    ### BEGIN SOLUTION
    x, weight = node.arrays()[:2]
    stride, padding = node.params["stride"], node.params["padding"]
    out_channels, _, kernel_h, kernel_w = weight.shape
    grad = np.asarray(grad)
    grad_rows = np.ascontiguousarray(grad.transpose(0, 2, 3, 1)).reshape(-1, out_channels)
    grad_x = grad_weight = grad_bias = None
    if node.needs_grad[1]:
        cols = im2col(x, kernel_h, kernel_w, stride, padding)
        grad_weight = matmul(np.ascontiguousarray(grad_rows.T), cols).reshape(weight.shape)
    if node.needs_grad[0]:
        grad_cols = matmul(grad_rows, np.ascontiguousarray(weight.reshape(out_channels, -1)))
        grad_x = col2im(grad_cols, x.shape, kernel_h, kernel_w, stride, padding)
    if node.needs_grad[2]:
        grad_bias = grad.sum(axis=(0, 2, 3))
    return grad_x, grad_weight, grad_bias
    ### END SOLUTION


# %% [markdown]
# The rule autograd calls for `"conv2d"` is given: it hands the gradients of `x` and `weight` to
# the current backend's own backward when its kernel registered one (module 15's optimized
# backend does the unfold and fold in compiled code), and otherwise calls your `conv2d_backward`.
# Either way the bias gradient is the sum above.

# %%
#| export
@gradient_rule("conv2d")
def conv2d_backward_on_backend(node: GraphNode, grad: np.ndarray) -> tuple:
    """conv2d's gradient rule: the current conv2d backend's own backward if it has one, else conv2d_backward."""
    backward = _CONV2D_BACKWARDS.get(_current_conv2d_backend)
    if backward is None:
        return conv2d_backward(node, grad)
    x, weight = node.arrays()[:2]
    grad = np.asarray(grad)
    grad_x, grad_weight = backward(x, weight, grad, node.params["stride"], node.params["padding"],
                                   tuple(node.needs_grad[:2]))
    grad_bias = grad.sum(axis=(0, 2, 3)) if node.needs_grad[2] else None
    return grad_x, grad_weight, grad_bias


# %% [markdown]
# ### Test: gradients against central finite differences (float64)
#
# For a random upstream gradient `g` and the scalar `L = Σ g · conv2d(x, w, b)`, the derivative of
# `L` along one coordinate is `(L(θ + ε) − L(θ − ε)) / 2ε`, accurate to `O(ε²)` in float64. The
# forward for the differences is `conv2d_naive`, so the oracle shares no code with the rule.

# %% nbgrader={"grade": true, "grade_id": "test-conv2d-backward", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
def central_differences(loss_of, values, eps=1e-6):
    """d loss / d values, one coordinate at a time (values is changed and restored in place)."""
    grad = np.zeros_like(values)
    flat, grad_flat = values.reshape(-1), grad.reshape(-1)
    for k in range(flat.size):
        kept = flat[k]
        flat[k] = kept + eps
        up = loss_of()
        flat[k] = kept - eps
        down = loss_of()
        flat[k] = kept
        grad_flat[k] = (up - down) / (2 * eps)
    return grad

def check_conv_gradients(seed, x_shape, w_shape, stride, padding):
    gen = np.random.default_rng(seed)
    x_values, w_values, b_values = gen.standard_normal(x_shape), gen.standard_normal(w_shape), gen.standard_normal(w_shape[0])
    upstream = gen.standard_normal(conv2d_naive(x_values, w_values, stride, padding).shape)
    def loss_of():
        return float(np.sum(upstream * (conv2d_naive(x_values, w_values, stride, padding) + b_values.reshape(1, -1, 1, 1))))
    expected = [central_differences(loss_of, v) for v in (x_values, w_values, b_values)]
    x = Tensor(x_values, dtype=np.float64, requires_grad=True)
    weight = Tensor(w_values, dtype=np.float64, requires_grad=True)
    bias = Tensor(b_values, dtype=np.float64, requires_grad=True)
    out = conv2d(x, weight, bias, stride=stride, padding=padding)
    out.backward(upstream)
    for name, tensor, oracle in zip(("x", "weight", "bias"), (x, weight, bias), expected):
        assert tensor.grad is not None, f"no gradient for {name}"
        np.testing.assert_allclose(tensor.grad.data, oracle, rtol=1e-6, atol=1e-6, err_msg=name)

def test_unit_conv2d_backward_finite_differences():
    check_conv_gradients(6, (2, 2, 5, 5), (3, 2, 3, 3), stride=1, padding=1)
    check_conv_gradients(7, (1, 3, 6, 5), (2, 3, 2, 3), stride=2, padding=0)   # stride skips pixels

def test_unit_conv2d_backward_input_only_when_asked():
    x = Tensor(np.ones((1, 1, 4, 4)), dtype=np.float64)                      # data: no gradient wanted
    weight = Tensor(np.ones((1, 1, 3, 3)), dtype=np.float64, requires_grad=True)
    conv2d(x, weight).sum().backward()
    assert x.grad is None
    np.testing.assert_array_equal(weight.grad.data, np.full((1, 1, 3, 3), 4.0))

test_unit_conv2d_backward_finite_differences()
test_unit_conv2d_backward_input_only_when_asked()
### BEGIN HIDDEN TESTS
def test_hidden_conv2d_backward_overlapping_stride_and_padding():
    check_conv_gradients(8, (2, 1, 7, 6), (2, 1, 4, 3), stride=3, padding=2)
    check_conv_gradients(9, (1, 2, 4, 4), (1, 2, 1, 1), stride=1, padding=0)

def test_hidden_conv2d_backward_frozen_weight():
    # the input wants a gradient, the weight (frozen, e.g. a fixed filter) does not
    gen = np.random.default_rng(10)
    x_values, w_values = gen.standard_normal((1, 2, 5, 4)), gen.standard_normal((3, 2, 2, 2))
    upstream = gen.standard_normal((1, 3, 4, 3))
    expected = central_differences(lambda: float(np.sum(upstream * conv2d_naive(x_values, w_values))), x_values)
    x = Tensor(x_values, dtype=np.float64, requires_grad=True)
    weight = Tensor(w_values, dtype=np.float64)
    conv2d(x, weight).backward(upstream)
    assert x.grad is not None and weight.grad is None, "only the input asked for a gradient"
    np.testing.assert_allclose(x.grad.data, expected, rtol=1e-6, atol=1e-6)

test_hidden_conv2d_backward_overlapping_stride_and_padding()
test_hidden_conv2d_backward_frozen_weight()
### END HIDDEN TESTS

# %% [markdown]
# ## The layer: `Conv2d`
#
# `Conv2d(in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True, seed=None)`
# holds `weight`, a float32 Tensor `(out_channels, in_channels, kh, kw)` (`kernel_size` is an int
# or a pair; `as_pair` is given), and `bias`, float32 zeros `(out_channels,)` or `None`.
#
# **He (Kaiming) uniform initialisation.** Each output sums `fan_in = in_channels·kh·kw` products,
# and ReLU zeroes half of what follows, so He et al. (2015) keep the variance of the activations
# constant with `Var(w) = 2 / fan_in`; a uniform `U(-a, a)` has variance `a²/3`, so
# `a = sqrt(6 / fan_in)`. Draw with `np.random.default_rng(seed)`.
#
# `forward(x)` takes a Tensor (used as it is, so the graph is kept) or an array, checks that it is
# 4-D with `in_channels` channels (a `ValueError` naming the layer and the shape), and returns
# `conv2d(x, weight, bias, stride, padding)`.

# %% nbgrader={"grade": false, "grade_id": "conv2d-layer", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
class Conv2d:
    """A 2-D convolution layer with He-uniform weights (out, in, kh, kw) and a bias per output channel.

    seed: seeds np.random.default_rng for the weights; the same seed gives the same layer.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride: int = 1, padding: int = 0,
                 bias: bool = True, seed: int | None = None):
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = as_pair(kernel_size, "kernel_size")
        self.stride, self.padding = stride, padding
        ### BEGIN SOLUTION
        fan_in = in_channels * self.kernel_size[0] * self.kernel_size[1]
        he_bound = math.sqrt(6.0 / fan_in)
        draws = np.random.default_rng(seed).uniform(-he_bound, he_bound,
                                                    size=(out_channels, in_channels, *self.kernel_size))
        self.weight = Tensor(draws, dtype=np.float32)
        self.bias = Tensor(np.zeros(out_channels), dtype=np.float32) if bias else None
        ### END SOLUTION
        for trainable in self.parameters():
            trainable.requires_grad = True

    def forward(self, x) -> Tensor:
        ### BEGIN SOLUTION
        images = x if isinstance(x, Tensor) else Tensor(x)
        if images.ndim != 4 or images.shape[1] != self.in_channels:
            raise ValueError(f"{self!r} expects a 4-D input (N, {self.in_channels}, H, W), got shape {images.shape}")
        return conv2d(images, self.weight, self.bias, stride=self.stride, padding=self.padding)
        ### END SOLUTION

    def __call__(self, x) -> Tensor:
        return self.forward(x)

    def parameters(self) -> list:
        return [self.weight] if self.bias is None else [self.weight, self.bias]

    def flop_count(self, x, y) -> tuple:
        """(FLOPs, MACs) of one call, for module 14's FLOPCounter (a later module: it cannot be registered there).

        One MAC per weight per output element, padded zeros included (the GEMM multiplies them too);
        1 MAC = 2 FLOPs, plus one bias add per output element, as for Linear.
        """
        batch, out_channels, out_h, out_w = y.shape
        outputs = batch * out_channels * out_h * out_w
        macs = outputs * self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        return 2 * macs + (outputs if self.bias is not None else 0), macs

    def __repr__(self) -> str:
        return (f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None})")


# %% nbgrader={"grade": true, "grade_id": "test-conv2d-layer", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_conv2d_layer_init():
    layer = Conv2d(16, 32, 3, seed=0)
    assert layer.weight.shape == (32, 16, 3, 3) and layer.weight.dtype == np.float32
    assert layer.bias.shape == (32,) and np.all(layer.bias.data == 0)
    bound = (6.0 / (16 * 9)) ** 0.5
    assert np.all(np.abs(layer.weight.data) <= np.float32(bound))
    np.testing.assert_allclose(layer.weight.data.var(), bound**2 / 3, rtol=0.05)
    np.testing.assert_array_equal(Conv2d(16, 32, 3, seed=0).weight.data, layer.weight.data)
    assert Conv2d(2, 3, (2, 5), bias=False).weight.shape == (3, 2, 2, 5)
    assert Conv2d(2, 3, 1, bias=False).bias is None

def test_unit_conv2d_layer_forward():
    layer = Conv2d(3, 4, 3, stride=2, padding=1, seed=1)
    layer.bias = Tensor(np.arange(4.0))
    x = np.random.default_rng(2).standard_normal((2, 3, 7, 7))
    y = layer(Tensor(x))
    assert isinstance(y, Tensor) and y.shape == (2, 4, 4, 4) and y.dtype == np.float32
    expected = conv2d_naive(x, layer.weight.data.astype(np.float64), stride=2, padding=1) + np.arange(4.0).reshape(1, -1, 1, 1)
    np.testing.assert_allclose(y.data, expected, rtol=1e-4, atol=1e-4)
    for bad_shape in ((2, 5, 7, 7), (3, 7, 7)):
        try:
            layer(Tensor(np.ones(bad_shape)))
        except ValueError as err:
            assert str(bad_shape) in str(err) and "Conv2d(3, 4" in str(err), f"name the layer and the shape: {err}"
        else:
            raise AssertionError(f"an input of shape {bad_shape} into Conv2d(3, ...) must raise ValueError")

test_unit_conv2d_layer_init()
test_unit_conv2d_layer_forward()

# %% [markdown]
# ## Pooling and `Flatten`
#
# Pooling reduces each `kh × kw` window of each channel to one number, with a step of `stride`
# (default: the kernel size, so windows tile the image). It is im2col again, one channel at a
# time: view `(N, C, H, W)` as `(N·C, 1, H, W)`, and every row of `im2col` is one window.
#
# ```
#   max pool 2x2, stride 2            backward: the whole gradient goes to the arg-max
#   ┌───┬───┬───┬───┐                 ┌───┬───┬───┬───┐
#   │ 1 │ 3 │ 2 │ 0 │   ┌───┬───┐     │ 0 │ g │ h │ 0 │    (for a tie, to the first maximum in
#   │ 0 │ 2 │ 1 │ 1 │─▶ │ 3 │ 2 │     │ 0 │ 0 │ 0 │ 0 │     row-major order inside the window:
#   ...                 ...            ...                 the same choice as PyTorch's CPU kernel)
# ```
#
# * `max_pool2d` forward: the maximum of each row; backward: the upstream gradient goes to the
#   position of `argmax` in the row (`np.argmax` returns the first maximum: that is the tie rule),
#   zeros elsewhere, and `col2im` adds rows back onto pixels (windows may overlap if `stride < k`).
#   This is a *subgradient* choice: at a tie the maximum is not differentiable, and sending the
#   whole gradient to one element (not splitting it as module 06's `max` does) matches PyTorch.
# * `avg_pool2d` forward: the mean of each row; backward: every element of the window gets
#   `g / (kh·kw)`, again through `col2im`.
# * `Flatten` keeps the batch dimension and reshapes the rest, `(N, C, H, W) -> (N, C·H·W)`, with
#   `Tensor.reshape`, which module 06 already differentiates.
#
# `pooling_windows` is given; you write the four functions below it.

# %%
#| export
def pooling_windows(x: np.ndarray, kernel_size, stride, op: str) -> tuple:
    """(rows, out_shape, kernel_hw, stride): each channel's windows as rows of im2col, for pooling."""
    kernel_hw = as_pair(kernel_size, "kernel_size")
    if stride is None:
        if kernel_hw[0] != kernel_hw[1]:
            raise ValueError(f"{op}: a {kernel_hw[0]}x{kernel_hw[1]} kernel has no single default stride; "
                             "pass stride= explicitly")
        stride = kernel_hw[0]
    out_h, out_w = window_output_size(x.shape, kernel_hw, stride, 0, op=op)
    batch, channels, height, width = x.shape
    rows = im2col(x.reshape(batch * channels, 1, height, width), *kernel_hw, stride=stride)
    return rows, (batch, channels, out_h, out_w), kernel_hw, stride


def _pool_values(x):
    return x.data if isinstance(x, Tensor) else np.asarray(x)


def _pool_result(x, pooled: np.ndarray):
    return Tensor(pooled, dtype=pooled.dtype) if isinstance(x, Tensor) else pooled

# %% nbgrader={"grade": false, "grade_id": "pooling", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
@records("max_pool2d", "x")
def max_pool2d(x, kernel_size, stride=None):
    """The maximum of each kernel_size window of each channel (stride defaults to kernel_size)."""
    ### BEGIN SOLUTION
    rows, out_shape, _, _ = pooling_windows(_pool_values(x), kernel_size, stride, "max_pool2d")
    return _pool_result(x, rows.max(axis=1).reshape(out_shape))
    ### END SOLUTION


@records("avg_pool2d", "x")
def avg_pool2d(x, kernel_size, stride=None):
    """The mean of each kernel_size window of each channel (stride defaults to kernel_size)."""
    ### BEGIN SOLUTION
    rows, out_shape, _, _ = pooling_windows(_pool_values(x), kernel_size, stride, "avg_pool2d")
    return _pool_result(x, rows.mean(axis=1).reshape(out_shape))
    ### END SOLUTION


@gradient_rule("max_pool2d")
def max_pool2d_backward(node: GraphNode, grad: np.ndarray) -> tuple:
    """The upstream gradient of each window goes to its first maximum."""
    ### BEGIN SOLUTION
    (x,) = node.arrays()
    rows, _, kernel_hw, stride = pooling_windows(x, node.params["kernel_size"], node.params["stride"], "max_pool2d")
    winners = rows.argmax(axis=1)                                  # the first maximum: ties go to one element
    grad_rows = np.zeros(rows.shape, dtype=np.result_type(grad, x))
    grad_rows[np.arange(len(rows)), winners] = np.asarray(grad).reshape(-1)
    batch, channels, height, width = x.shape
    return (col2im(grad_rows, (batch * channels, 1, height, width), *kernel_hw, stride=stride).reshape(x.shape),)
    ### END SOLUTION


@gradient_rule("avg_pool2d")
def avg_pool2d_backward(node: GraphNode, grad: np.ndarray) -> tuple:
    """Each window's upstream gradient, shared equally by its kh·kw elements."""
    ### BEGIN SOLUTION
    (x,) = node.arrays()
    rows, _, kernel_hw, stride = pooling_windows(x, node.params["kernel_size"], node.params["stride"], "avg_pool2d")
    share = np.asarray(grad).reshape(-1, 1) / rows.shape[1]
    grad_rows = np.broadcast_to(share, rows.shape).astype(np.result_type(grad, x))
    batch, channels, height, width = x.shape
    return (col2im(grad_rows, (batch * channels, 1, height, width), *kernel_hw, stride=stride).reshape(x.shape),)
    ### END SOLUTION


# %%
#| export
class MaxPool2d:
    """Max pooling over kernel_size windows; stride defaults to kernel_size."""

    def __init__(self, kernel_size, stride: int | None = None):
        self.kernel_size, self.stride = kernel_size, stride

    def __call__(self, x):
        return max_pool2d(x, self.kernel_size, self.stride)

    def flop_count(self, x, y) -> tuple:
        """(FLOPs, MACs) for module 14's FLOPCounter: kh·kw − 1 comparisons per output element."""
        kernel_h, kernel_w = as_pair(self.kernel_size, "kernel_size")
        return y.size * (kernel_h * kernel_w - 1), 0

    def __repr__(self) -> str:
        return f"MaxPool2d(kernel_size={self.kernel_size}, stride={self.stride})"


class AvgPool2d:
    """Average pooling over kernel_size windows; stride defaults to kernel_size."""

    def __init__(self, kernel_size, stride: int | None = None):
        self.kernel_size, self.stride = kernel_size, stride

    def __call__(self, x):
        return avg_pool2d(x, self.kernel_size, self.stride)

    def flop_count(self, x, y) -> tuple:
        """(FLOPs, MACs) for module 14's FLOPCounter: kh·kw − 1 adds and one divide per output element."""
        kernel_h, kernel_w = as_pair(self.kernel_size, "kernel_size")
        return y.size * kernel_h * kernel_w, 0

    def __repr__(self) -> str:
        return f"AvgPool2d(kernel_size={self.kernel_size}, stride={self.stride})"

# %% [markdown]
# ### Test: pooling against a loop reference, ties included

# %% nbgrader={"grade": true, "grade_id": "test-pooling-forward", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def pool_loops(x, kernel, stride, reduce):
    """Loop reference: reduce(window) for every window of every channel."""
    batch, channels, height, width = x.shape
    out_h, out_w = (height - kernel[0]) // stride + 1, (width - kernel[1]) // stride + 1
    out = np.zeros((batch, channels, out_h, out_w))
    for n in range(batch):
        for ch in range(channels):
            for r in range(out_h):
                for c in range(out_w):
                    out[n, ch, r, c] = reduce(x[n, ch, r * stride:r * stride + kernel[0], c * stride:c * stride + kernel[1]])
    return out

def test_unit_pooling_matches_loops():
    gen = np.random.default_rng(10)
    x = gen.standard_normal((2, 3, 7, 6))
    for kernel, stride in [((2, 2), 2), ((3, 2), 1), ((3, 3), 2)]:
        np.testing.assert_allclose(max_pool2d(x, kernel, stride), pool_loops(x, kernel, stride, np.max), rtol=0, atol=0)
        np.testing.assert_allclose(avg_pool2d(x, kernel, stride), pool_loops(x, kernel, stride, np.mean), rtol=1e-12, atol=1e-12)
    assert max_pool2d(x, 2).shape == (2, 3, 3, 3)            # stride defaults to the kernel size
    out = MaxPool2d(2)(Tensor(x))
    assert isinstance(out, Tensor) and out.dtype == np.float32 and out.shape == (2, 3, 3, 3)
    assert AvgPool2d(3, stride=1)(Tensor(x)).shape == (2, 3, 5, 4)

def test_unit_pooling_errors():
    for bad in [lambda: max_pool2d(np.ones((3, 4, 4)), 2), lambda: avg_pool2d(np.ones((1, 1, 2, 2)), 3),
                lambda: max_pool2d(np.ones((1, 1, 4, 4)), 2, stride=0)]:
        try:
            bad()
        except ValueError:
            continue
        raise AssertionError("pooling must raise ValueError on a 3-D input, an oversized kernel or stride 0")

test_unit_pooling_matches_loops()
test_unit_pooling_errors()

# %% nbgrader={"grade": true, "grade_id": "test-pooling-backward", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def test_unit_max_pool_gradient_goes_to_first_argmax():
    values = np.array([[[[1.0, 3.0, 2.0, 2.0],
                         [0.0, 2.0, 1.0, 2.0],
                         [5.0, 5.0, 0.0, 0.0],
                         [5.0, 4.0, 0.0, 0.0]]]])          # windows: 3 unique, 2 tied x3, 5 tied x3, 0 tied x4
    x = Tensor(values, dtype=np.float64, requires_grad=True)
    max_pool2d(x, 2).backward(np.array([[[[10.0, 20.0], [30.0, 40.0]]]]))
    expected = np.zeros((1, 1, 4, 4))
    expected[0, 0, 0, 1] = 10.0     # the maximum 3
    expected[0, 0, 0, 2] = 20.0     # ties 2, 2, 2: the first in row-major order
    expected[0, 0, 2, 0] = 30.0     # ties 5, 5, 5: the first
    expected[0, 0, 2, 2] = 40.0     # all four equal: the first
    np.testing.assert_array_equal(x.grad.data, expected)

def test_unit_avg_pool_gradient_is_shared():
    x = Tensor(np.arange(16.0).reshape(1, 1, 4, 4), dtype=np.float64, requires_grad=True)
    avg_pool2d(x, 2).backward(np.array([[[[4.0, 8.0], [12.0, 16.0]]]]))
    np.testing.assert_array_equal(x.grad.data[0, 0], [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]])

def test_unit_overlapping_pool_gradients_add_up():
    gen = np.random.default_rng(11)
    values = gen.standard_normal((2, 2, 5, 5))             # no ties: the arg-max is unique
    upstream = gen.standard_normal((2, 2, 3, 3))
    expected = np.zeros_like(values)                       # loop reference: scatter to each window's arg-max
    for n in range(2):
        for ch in range(2):
            for r in range(3):
                for c in range(3):
                    window = values[n, ch, r:r + 3, c:c + 3]
                    i, j = np.unravel_index(np.argmax(window), window.shape)
                    expected[n, ch, r + i, c + j] += upstream[n, ch, r, c]
    x = Tensor(values, dtype=np.float64, requires_grad=True)
    max_pool2d(x, 3, stride=1).backward(upstream)
    np.testing.assert_allclose(x.grad.data, expected, rtol=1e-12, atol=1e-12)

test_unit_max_pool_gradient_goes_to_first_argmax()
test_unit_avg_pool_gradient_is_shared()
test_unit_overlapping_pool_gradients_add_up()
### BEGIN HIDDEN TESTS
def test_hidden_avg_pool_finite_differences():
    gen = np.random.default_rng(12)
    values, upstream = gen.standard_normal((1, 2, 5, 5)), gen.standard_normal((1, 2, 2, 2))
    x = Tensor(values, dtype=np.float64, requires_grad=True)
    avg_pool2d(x, (2, 3), stride=2).backward(upstream)
    expected = np.zeros_like(values)
    for r in range(2):
        for c in range(2):
            expected[0, :, 2 * r:2 * r + 2, 2 * c:2 * c + 3] += upstream[0, :, r, c].reshape(2, 1, 1) / 6
    np.testing.assert_allclose(x.grad.data, expected, rtol=1e-12, atol=1e-12)

test_hidden_avg_pool_finite_differences()
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "flatten", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
class Flatten:
    """(N, d1, d2, ...) -> (N, d1·d2·...): keeps the batch dimension, for a Linear head after convolutions."""

    def __call__(self, x) -> Tensor:
        ### BEGIN SOLUTION
        batch = x if isinstance(x, Tensor) else Tensor(x)
        if batch.ndim < 2:
            raise ValueError(f"Flatten needs a batch dimension and at least one more, got shape {batch.shape}")
        return batch.reshape(batch.shape[0], -1)
        ### END SOLUTION

    def flop_count(self, x, y) -> tuple:
        """(FLOPs, MACs) for module 14's FLOPCounter: a reshape does no arithmetic."""
        return 0, 0

    def __repr__(self) -> str:
        return "Flatten()"


# %% nbgrader={"grade": true, "grade_id": "test-flatten", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_flatten_keeps_batch_and_gradient():
    values = np.arange(2 * 3 * 2 * 2, dtype=np.float64).reshape(2, 3, 2, 2)
    x = Tensor(values, dtype=np.float64, requires_grad=True)
    flat = Flatten()(x)
    assert flat.shape == (2, 12)
    np.testing.assert_array_equal(flat.data, values.reshape(2, 12))
    (flat * Tensor(np.arange(24.0).reshape(2, 12), dtype=np.float64)).sum().backward()
    np.testing.assert_array_equal(x.grad.data, np.arange(24.0).reshape(2, 3, 2, 2))

test_unit_flatten_keeps_batch_and_gradient()

# %% [markdown]
# ## A CNN reads the digits
#
# The 1,797 8×8 digits of module 05, the same stratified 80/20 split and training-set
# standardisation as module 08's MLP, now kept as images `(N, 1, 8, 8)`. The model is the one
# drawn at the top: two conv–ReLU–pool blocks and a linear head, with far fewer parameters than
# the MLP (printed below: the same filters serve every position). AdamW, a cosine schedule with a warm-up epoch, clipping at norm 5, one BLAS thread
# (these matrices are too small to share). The test images are never used for training or
# choosing anything; the accuracy printed is measured now, on your machine, and deterministic.

# %%
import os
import time

import matplotlib.pyplot as plt
from threadpoolctl import threadpool_info, threadpool_limits

from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.optimizers import AdamW
from tinytorch.core.training import Trainer, cosine_schedule
from tinytorch.data.loader import DataLoader, Standardizer, TensorDataset, load_digits_dataset, train_test_split

QUICK = os.environ.get("TITO_AUTOGRADING") == "1"   # train briefly and shrink the measurements while grading

EPOCHS = 3 if QUICK else 15
BATCH_SIZE = 32
threadpool_limits(limits=1, user_api="blas")


def digit_images():
    """Standardised digits as images: (x_train (N, 1, 8, 8), y_train, x_test, y_test), the same split every run."""
    images, digit_labels = load_digits_dataset()
    x_train, x_test, y_train, y_test = train_test_split(images, digit_labels, test_fraction=0.2, seed=0,
                                                        stratify=digit_labels)
    scaler = Standardizer().fit(x_train)
    return (scaler.apply(x_train).reshape(-1, 1, 8, 8), y_train, scaler.apply(x_test).reshape(-1, 1, 8, 8), y_test)


def digits_cnn(seed: int = 0) -> Sequential:
    return Sequential(Conv2d(1, 16, 3, padding=1, seed=seed), ReLU(), MaxPool2d(2),
                      Conv2d(16, 32, 3, padding=1, seed=seed + 1), ReLU(), MaxPool2d(2),
                      Flatten(), Linear(32 * 2 * 2, 10, seed=seed + 2))


x_train, y_train, x_test, y_test = digit_images()
model = digits_cnn()
loader = DataLoader(TensorDataset(x_train, y_train), batch_size=BATCH_SIZE, shuffle=True, seed=0)
test_loader = DataLoader(TensorDataset(x_test, y_test), batch_size=256)
total_steps = EPOCHS * len(loader)
trainer = Trainer(model, AdamW(model.parameters(), lr=1e-2, weight_decay=1e-3), CrossEntropyLoss(), loader,
                  schedule=lambda step: cosine_schedule(step, total_steps, 1e-2, min_lr=1e-4, warmup_steps=len(loader)),
                  max_grad_norm=5.0)
print(model)
print(f"parameters: {sum(p.size for p in model.parameters()):,}; train {x_train.shape}, test {x_test.shape}")
start = time.perf_counter()
history = trainer.fit(EPOCHS, eval_loader=test_loader)
seconds = time.perf_counter() - start
print(f"{EPOCHS} epochs, {trainer.step} steps of batch {BATCH_SIZE} in {seconds:.2f} s "
      f"({seconds / trainer.step * 1e3:.2f} ms per step)")
for record in history:
    print(f"  epoch {record['epoch']:3d}  lr {record['lr']:.2e}  train loss {record['train_loss']:.4f}  "
          f"train acc {record['train_accuracy']:.2%}  test loss {record['eval_loss']:.4f}  "
          f"test acc {record['eval_accuracy']:.2%}")
print(f"held-out test accuracy: {history[-1]['eval_accuracy']:.2%} "
      f"({round(history[-1]['eval_accuracy'] * len(y_test))} of {len(y_test)} test digits)")

# %%
epochs_axis = [record["epoch"] for record in history]
fig, (loss_ax, accuracy_ax) = plt.subplots(1, 2, figsize=(10, 4))
loss_ax.plot(epochs_axis, [r["train_loss"] for r in history], label="train")
loss_ax.plot(epochs_axis, [r["eval_loss"] for r in history], label="test (held out)")
loss_ax.set_yscale("log")
loss_ax.set_xlabel("epoch")
loss_ax.set_ylabel("cross entropy")
loss_ax.legend()
accuracy_ax.plot(epochs_axis, [r["train_accuracy"] for r in history], label="train")
accuracy_ax.plot(epochs_axis, [r["eval_accuracy"] for r in history], label="test (held out)")
accuracy_ax.set_xlabel("epoch")
accuracy_ax.set_ylabel("accuracy")
accuracy_ax.legend()
fig.suptitle("conv-relu-pool x2 + linear on the 8x8 digits, trained from scratch")
plt.show()

# %% [markdown]
# ## Analysis 1: im2col's memory blow-up
#
# im2col copies each input pixel into every window that reads it: with stride 1 and "same"
# padding, about `kh·kw` times. The price of one big GEMM is a matrix `k²` times the input. Below,
# tracemalloc measures the peak allocation of `im2col` (and of a whole `conv2d_im2col`) against the
# input's bytes, for a few kernel sizes on a 32×32 batch. The peak also holds the zero-padded copy
# of the input that im2col reads from (one input's worth, hence 2x for a 1×1 kernel), and
# `conv2d_im2col` adds its output and the transposed copy it returns.

# %%
import tracemalloc


def peak_bytes(fn, *args):
    """Peak bytes traced while fn(*args) runs (after one untraced call to warm up)."""
    fn(*args)
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn(*args)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


images = np.random.default_rng(0).standard_normal((8 if QUICK else 32, 16, 32, 32)).astype(np.float32)
print(f"input {images.shape} float32: {images.nbytes / 2**20:.2f} MiB")
print(f"{'kernel':>7} {'im2col peak':>12} {'x input':>8} {'k^2':>5} {'conv2d peak':>12} {'x input':>8}")
for k in (1, 3, 5, 7):
    weight = np.random.default_rng(k).standard_normal((32, 16, k, k)).astype(np.float32)
    cols_peak = peak_bytes(im2col, images, k, k, 1, k // 2)
    conv_peak = peak_bytes(conv2d_im2col, images, weight, 1, k // 2)
    print(f"{k:>5}x{k} {cols_peak / 2**20:>10.2f}Mi {cols_peak / images.nbytes:>7.1f}x {k * k:>5} "
          f"{conv_peak / 2**20:>10.2f}Mi {conv_peak / images.nbytes:>7.1f}x")

# %% [markdown]
# ## Analysis 2: GFLOP/s of each convolution against a BLAS matmul of the same FLOPs
#
# A convolution with output `(N, O, out_h, out_w)` and weight `(O, C, kh, kw)` does
# `2·N·O·out_h·out_w·C·kh·kw` FLOPs, exactly those of the GEMM `(N·out_h·out_w, C·kh·kw) @
# (C·kh·kw, O)` that im2col builds. So that GEMM alone, on operands already in place, is the
# ceiling the im2col convolution can approach: the gap is the cost of building the columns and
# of the final transpose. The loops are timed on a slice of the problem (they would take minutes)
# and their GFLOP/s is per FLOP, so the ratio is like for like. One BLAS thread throughout.

# %%
import statistics
import timeit


def median_seconds(fn, repeats=5, number=1):
    fn()
    return statistics.median(timeit.repeat(fn, number=number, repeat=repeats)) / number


blas = [f"{p.get('internal_api')} {p.get('version')} ({p.get('architecture')}, {p.get('num_threads')} threads)"
        for p in threadpool_info() if p.get("user_api") == "blas"]
print("BLAS:", "; ".join(blas) or "not found")

batch, in_ch, out_ch, size, k = (4, 8, 16, 16, 3) if QUICK else (32, 16, 32, 32, 3)
gen = np.random.default_rng(0)
x = gen.standard_normal((batch, in_ch, size, size)).astype(np.float32)
weight = gen.standard_normal((out_ch, in_ch, k, k)).astype(np.float32)
flops = 2 * batch * out_ch * size * size * in_ch * k * k            # padding=1: out = size x size
cols = im2col(x, k, k, 1, 1)
flat_t = np.ascontiguousarray(weight.reshape(out_ch, -1).T)
naive_slice = (x[:1, :, :6, :6], weight[:2])                          # a few output values only
naive_flops = 2 * 1 * 2 * 6 * 6 * in_ch * k * k
timings = {
    "conv2d_naive (loops)": (median_seconds(lambda: conv2d_naive(*naive_slice, 1, 1), repeats=1 if QUICK else 3), naive_flops),
    "im2col alone": (median_seconds(lambda: im2col(x, k, k, 1, 1)), None),
    "conv2d_im2col": (median_seconds(lambda: conv2d_im2col(x, weight, 1, 1)), flops),
    "BLAS GEMM, same FLOPs": (median_seconds(lambda: np.matmul(cols, flat_t)), flops),
}
ceiling_seconds = timings["BLAS GEMM, same FLOPs"][0]
print(f"conv {x.shape} * {weight.shape}, padding 1: {flops / 1e6:.1f} MFLOP")
print(f"{'implementation':>24} {'time (ms)':>11} {'GFLOP/s':>9} {'share of BLAS':>14}")
for name, (seconds, work) in timings.items():
    gflops = "" if work is None else f"{work / seconds / 1e9:9.3f}"
    share = "" if work is None else f"{(work / seconds) / (flops / ceiling_seconds):13.1%}"
    print(f"{name:>24} {seconds * 1e3:>11.3f} {gflops:>9} {share:>14}")
loops_rate = naive_flops / timings["conv2d_naive (loops)"][0]
im2col_rate = flops / timings["conv2d_im2col"][0]
print(f"im2col convolution is {im2col_rate / loops_rate:,.0f}x the loops' FLOP rate; building the columns is "
      f"{timings['im2col alone'][0] / timings['conv2d_im2col'][0]:.0%} of its time")

# %% [markdown]
# ## What you built
#
# * `conv2d_naive`, the oracle; `im2col`/`col2im`, which turn a convolution and its gradient
#   into matrix products; `conv2d`, a dispatch point like matmul's, recorded as one operation.
# * Gradient rules for convolution and pooling, checked by finite differences and loop
#   references; `Conv2d`, `MaxPool2d`, `AvgPool2d`, `Flatten`.
# * A CNN trained on the digits with far fewer parameters than module 08's MLP, and the measured price
#   of im2col: `k²` times the memory, for most of BLAS's speed.
