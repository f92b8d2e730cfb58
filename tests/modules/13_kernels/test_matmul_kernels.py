"""Every matmul kernel against the module 03 reference (matmul_naive) and NumPy, over shapes and tile sizes."""

import numba
import numpy as np
import pytest

from tinytorch.core.kernels import (
    cache_friendly_matmul,
    ijk_matmul,
    ikj_matmul,
    matmul_baseline,
    parallel_matmul,
)
from tinytorch.core.layers import get_matmul_backend, matmul_naive, register_matmul, set_matmul_backend

SHAPES = [(1, 1, 1), (1, 7, 1), (2, 3, 4), (4, 4, 4), (5, 9, 3), (17, 33, 19), (64, 64, 64), (70, 5, 130)]


def operands(m, k, n, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed + 1000 * m + 10 * k + n)
    return rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)


def assert_close_float32(got, A, B):
    """float32 kernels sum in their own order: compare with a float64 product, tolerance growing with k."""
    exact = A.astype(np.float64) @ B.astype(np.float64)
    k = A.shape[1]
    np.testing.assert_allclose(got, exact, rtol=1e-5, atol=2e-6 * k)


@pytest.mark.parametrize("m, k, n", SHAPES)
def test_baseline_matches_naive_reference(m, k, n):
    A, B = operands(m, k, n)
    np.testing.assert_allclose(matmul_baseline(A, B), matmul_naive(A, B), rtol=1e-5, atol=1e-5)


def test_baseline_goes_through_the_dispatch_point():
    seen = []

    def recording(a, b):
        seen.append((a.shape, b.shape))
        return np.einsum("ik,kj->ij", a, b)

    register_matmul("recording-kernels-test", recording)
    previous = set_matmul_backend("recording-kernels-test")
    try:
        A, B = operands(3, 4, 5)
        out = matmul_baseline(A, B)
    finally:
        set_matmul_backend(previous)
    assert seen == [((3, 4), (4, 5))]
    assert isinstance(out, np.ndarray)
    assert_close_float32(out, A, B)


@pytest.mark.parametrize("kernel", [ijk_matmul, ikj_matmul, cache_friendly_matmul, parallel_matmul])
@pytest.mark.parametrize("m, k, n", SHAPES)
def test_every_kernel_float32(kernel, m, k, n):
    A, B = operands(m, k, n)
    got = kernel(A, B)
    assert got.dtype == np.float32 and got.shape == (m, n)
    assert_close_float32(got, A, B)


@pytest.mark.parametrize("block", [1, 2, 3, 4, 5, 8, 13, 64, 1000])
def test_tiled_every_block_size(block):
    A, B = operands(37, 29, 41)
    assert_close_float32(cache_friendly_matmul(A, B, block_size=block), A, B)
    assert_close_float32(parallel_matmul(A, B, block_size=block), A, B)


@pytest.mark.parametrize("kernel", [ijk_matmul, ikj_matmul, cache_friendly_matmul, parallel_matmul])
def test_float64_stays_float64(kernel):
    A, B = operands(9, 11, 6, dtype=np.float64)
    got = kernel(A, B)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, matmul_naive(A, B), rtol=1e-12, atol=1e-12)


def test_integer_and_mixed_inputs_become_float64():
    ints = np.arange(20).reshape(4, 5)
    got = cache_friendly_matmul(ints, ints.T, block_size=3)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, matmul_naive(ints, ints.T))


def test_noncontiguous_views():
    base = np.random.default_rng(5).standard_normal((50, 60)).astype(np.float32)
    A, B = base[::2, :30], base[10:40, ::4].copy(order="F")
    for kernel in (ikj_matmul, cache_friendly_matmul, parallel_matmul):
        assert_close_float32(kernel(A, B), A, B)


def test_nan_and_inf_propagate_like_ieee():
    A = np.array([[1.0, np.nan], [1.0, 1.0]], dtype=np.float32)
    B = np.array([[1.0, 2.0], [3.0, np.inf]], dtype=np.float32)
    expected = A.astype(np.float64) @ B.astype(np.float64)
    for kernel in (ikj_matmul, cache_friendly_matmul, parallel_matmul):
        np.testing.assert_array_equal(kernel(A, B), expected.astype(np.float32))


@pytest.mark.parametrize("kernel", [ijk_matmul, ikj_matmul, cache_friendly_matmul, parallel_matmul])
def test_shape_errors(kernel):
    with pytest.raises(ValueError):
        kernel(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError):
        kernel(np.ones(3), np.ones((3, 2)))


@pytest.mark.parametrize("kernel", [cache_friendly_matmul, parallel_matmul])
def test_block_size_must_be_positive(kernel):
    for block in (0, -1):
        with pytest.raises(ValueError):
            kernel(np.ones((2, 2)), np.ones((2, 2)), block_size=block)


def test_complex_inputs_are_refused():
    with pytest.raises(TypeError):
        cache_friendly_matmul(np.ones((2, 2), complex), np.ones((2, 2)))


def test_parallel_matmul_is_correct_on_one_and_all_threads():
    A, B = operands(96, 40, 72)
    previous = numba.get_num_threads()
    try:
        for threads in sorted({1, previous}):
            numba.set_num_threads(threads)
            assert_close_float32(parallel_matmul(A, B, block_size=16), A, B)
    finally:
        numba.set_num_threads(previous)


def test_kernels_do_not_change_the_backend():
    before = get_matmul_backend()
    A, B = operands(8, 8, 8)
    cache_friendly_matmul(A, B)
    parallel_matmul(A, B)
    assert get_matmul_backend() == before
