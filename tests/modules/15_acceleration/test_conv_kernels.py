"""Package tests for the optimized backend's compiled conv2d: unfold/fold against module 09's im2col/col2im
(bit for bit), its backward against module 09's rule and an einsum oracle, and module 09's backward seam."""

import numpy as np
import pytest

from tinytorch.core.spatial import (
    Conv2d,
    col2im,
    conv2d,
    conv2d_naive,
    get_conv2d_backend,
    im2col,
    register_conv2d,
    set_conv2d_backend,
)
from tinytorch.core.tensor import Tensor
from tinytorch.optimization.acceleration import (
    NumpyBackend,
    OptimizedBackend,
    fold_windows,
    im2col_conv2d_gradients,
    register_backend,
    set_backend,
    unfold_windows,
)

# (x shape, kernel_h, kernel_w, stride, padding): square and non-square kernels, strides that skip
# pixels, kernels that do not divide the input, padding wider than the kernel's reach.
UNFOLD_CASES = [
    ((2, 3, 7, 6), 3, 3, 1, 1),
    ((2, 3, 7, 6), 3, 2, 2, 1),
    ((1, 2, 9, 8), 4, 4, 3, 2),
    ((3, 1, 5, 5), 1, 1, 1, 0),
    ((2, 4, 6, 9), 2, 5, 1, 0),
    ((1, 2, 4, 4), 3, 3, 2, 3),
]
DTYPES = [np.float32, np.float64]


@pytest.fixture(autouse=True)
def back_to_numpy():
    set_backend("numpy")
    yield
    set_backend("numpy")


def per_image_transposed(cols_09: np.ndarray, batch: int) -> np.ndarray:
    """Module 09's (N·P, K) matrix as (N, K, P): each image's rows, transposed."""
    return cols_09.reshape(batch, -1, cols_09.shape[1]).transpose(0, 2, 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", UNFOLD_CASES)
def test_unfold_windows_is_module09_im2col_transposed_bit_for_bit(case, dtype):
    x_shape, kh, kw, stride, padding = case
    x = np.random.default_rng(sum(x_shape) + kh).standard_normal(x_shape).astype(dtype)
    expected = per_image_transposed(im2col(x.copy(), kh, kw, stride, padding), x_shape[0])
    got = unfold_windows(x, kh, kw, stride, padding)
    assert got.dtype == dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    window_major = unfold_windows(x, kh, kw, stride, padding, window_major=True)
    np.testing.assert_array_equal(window_major, expected.transpose(1, 0, 2))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", UNFOLD_CASES)
def test_fold_windows_is_module09_col2im_bit_for_bit(case, dtype):
    x_shape, kh, kw, stride, padding = case
    cols_09 = im2col(np.zeros(x_shape), kh, kw, stride, padding)
    cols_09 = np.random.default_rng(len(cols_09)).standard_normal(cols_09.shape).astype(dtype)
    expected = col2im(cols_09.copy(), x_shape, kh, kw, stride, padding)
    got = fold_windows(per_image_transposed(cols_09, x_shape[0]), x_shape, kh, kw, stride, padding)
    assert got.dtype == dtype and got.shape == x_shape
    np.testing.assert_array_equal(got, expected)        # same additions in the same order: exact


def test_fold_windows_counts_overlaps():
    # stride 1, 3x3, no padding on 4x4: pixel (r, c) is read by (windows covering row r) x (covering col c)
    ones = np.ones((1, 9, 4))                            # 1 image, 1 channel x 3x3 offsets, 2x2 windows
    covering = np.array([1, 2, 2, 1])
    np.testing.assert_array_equal(fold_windows(ones, (1, 1, 4, 4), 3, 3)[0, 0], np.outer(covering, covering))


def test_unfold_and_fold_errors_say_what_to_do():
    with pytest.raises(ValueError, match=r"\(1, 8, 4\)"):
        fold_windows(np.ones((1, 8, 4)), (1, 1, 4, 4), 3, 3)
    with pytest.raises(TypeError, match="im2col"):
        unfold_windows(np.ones((1, 1, 4, 4), np.int64), 3, 3)
    with pytest.raises(TypeError, match="col2im"):
        fold_windows(np.ones((1, 9, 4), np.float16), (1, 1, 4, 4), 3, 3)
    with pytest.raises(ValueError):
        unfold_windows(np.ones((1, 4, 4)), 3, 3)         # 3-D: module 09's shape check names it


def einsum_gradients(x, weight, grad, stride, padding):
    """float64 oracle for (d x, d weight), from the definition of the convolution, by explicit offsets."""
    kh, kw = weight.shape[2:]
    out_h, out_w = grad.shape[2:]
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    grad_padded = np.zeros_like(padded)
    grad_weight = np.zeros_like(weight)
    for i in range(kh):
        for j in range(kw):
            rows = slice(i, i + stride * (out_h - 1) + 1, stride)
            cols = slice(j, j + stride * (out_w - 1) + 1, stride)
            grad_weight[:, :, i, j] = np.einsum("nohw,nchw->oc", grad, padded[:, :, rows, cols])
            grad_padded[:, :, rows, cols] += np.einsum("nohw,oc->nchw", grad, weight[:, :, i, j])
    height, width = x.shape[2:]
    return grad_padded[:, :, padding:padding + height, padding:padding + width], grad_weight


GRAD_CASES = [((2, 3, 7, 6), (4, 3, 3, 2), 2, 1), ((1, 2, 5, 5), (3, 2, 3, 3), 1, 0), ((2, 1, 9, 8), (2, 1, 4, 4), 3, 2)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", GRAD_CASES)
def test_optimized_conv2d_backward_matches_oracle(case, dtype):
    x_shape, w_shape, stride, padding = case
    rng = np.random.default_rng(sum(w_shape))
    x, weight = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    grad = rng.standard_normal(conv2d_naive(x, weight, stride, padding).shape)
    expected_x, expected_w = einsum_gradients(x, weight, grad, stride, padding)
    got_x, got_w = OptimizedBackend().conv2d_backward(x.astype(dtype), weight.astype(dtype), grad.astype(dtype),
                                                      stride, padding, (True, True))
    tolerance = 1e-4 if dtype == np.float32 else 1e-10
    assert got_x.dtype == dtype and got_w.dtype == dtype
    np.testing.assert_allclose(got_x, expected_x, rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(got_w, expected_w, rtol=tolerance, atol=tolerance)
    fallback_x, fallback_w = im2col_conv2d_gradients(x, weight, grad, stride, padding, (True, True))
    np.testing.assert_allclose(fallback_x, expected_x, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(fallback_w, expected_w, rtol=1e-10, atol=1e-10)


def test_optimized_conv2d_backward_computes_only_what_is_asked():
    x, weight = np.ones((1, 2, 5, 5), np.float32), np.ones((3, 2, 3, 3), np.float32)
    grad = np.ones((1, 3, 3, 3), np.float32)
    backend = OptimizedBackend()
    only_x = backend.conv2d_backward(x, weight, grad, 1, 0, (True, False))
    only_w = backend.conv2d_backward(x, weight, grad, 1, 0, (False, True))
    assert only_x[1] is None and only_w[0] is None
    np.testing.assert_array_equal(only_w[1], np.full((3, 2, 3, 3), 9.0))      # 9 windows, each all ones
    assert only_x[0][0, 0, 2, 2] == 27.0                                        # centre: 9 windows x 3 channels out


def test_optimized_conv2d_backward_other_dtypes_fall_back():
    rng = np.random.default_rng(12)
    x, weight = rng.standard_normal((1, 2, 5, 4)).astype(np.float32), rng.standard_normal((2, 2, 2, 2))
    grad = rng.standard_normal((1, 2, 4, 3))
    expected_x, expected_w = einsum_gradients(x.astype(np.float64), weight, grad, 1, 0)
    got_x, got_w = OptimizedBackend().conv2d_backward(x, weight, grad, 1, 0, (True, True))
    np.testing.assert_allclose(got_x, expected_x, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got_w, expected_w, rtol=1e-6, atol=1e-6)


# --- module 09's backward seam -------------------------------------------------------------------

def test_set_backend_hands_conv_backward_to_the_backend():
    calls = []
    backend = OptimizedBackend()
    original = backend.conv2d_backward
    backend.conv2d_backward = lambda *args: calls.append(args[5]) or original(*args)
    register_backend(backend)
    rng = np.random.default_rng(3)
    x_values = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    layer = Conv2d(3, 4, 3, padding=1, seed=0)
    try:
        set_backend("optimized")
        x = Tensor(x_values, requires_grad=True)
        layer(x).sum().backward()
        grads = [x.grad.data.copy(), layer.weight.grad.data.copy(), layer.bias.grad.data.copy()]
    finally:
        set_backend("numpy")
        register_backend(OptimizedBackend())
    assert calls == [(True, True)]
    layer.weight.grad = layer.bias.grad = None
    x = Tensor(x_values, requires_grad=True)
    layer(x).sum().backward()                          # numpy backend: module 09's conv2d_backward
    for got, expected in zip(grads, [x.grad.data, layer.weight.grad.data, layer.bias.grad.data]):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_reregistering_a_kernel_without_backward_drops_the_old_backward():
    def never(*args):
        raise AssertionError("a replaced kernel's backward must not run")
    register_conv2d("seam-test", conv2d_naive, backward=never)
    register_conv2d("seam-test", conv2d_naive)
    previous = set_conv2d_backend("seam-test")
    try:
        weight = Tensor(np.ones((1, 1, 2, 2)), dtype=np.float64, requires_grad=True)
        conv2d(Tensor(np.ones((1, 1, 3, 3)), dtype=np.float64), weight).sum().backward()
    finally:
        set_conv2d_backend(previous)
    np.testing.assert_array_equal(weight.grad.data, np.full((1, 1, 2, 2), 4.0))
    assert get_conv2d_backend() == previous
    with pytest.raises(TypeError, match="backward"):
        register_conv2d("seam-test", conv2d_naive, backward=42)


def test_numpy_backend_keeps_module09_backward():
    assert NumpyBackend().conv2d_backward is None
