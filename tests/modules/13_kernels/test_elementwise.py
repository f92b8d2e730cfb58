"""vectorized_relu, vectorized_operations, parallel_relu, parallel_batch_processing against NumPy oracles."""

import numpy as np
import pytest

from tinytorch.core.kernels import parallel_batch_processing, parallel_relu, vectorized_operations, vectorized_relu


def relu_oracle(x):
    return np.where(x > 0, x, np.zeros((), dtype=x.dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int8, np.int32])
def test_vectorized_relu_matches_where(dtype):
    x = (np.random.default_rng(0).standard_normal((17, 9)) * 50).astype(dtype)
    got = vectorized_relu(x)
    assert got.dtype == x.dtype
    np.testing.assert_array_equal(got, relu_oracle(x))


def test_vectorized_relu_writes_into_out_and_returns_it():
    x = np.linspace(-3, 3, 101, dtype=np.float32)
    out = np.full_like(x, np.nan)
    assert vectorized_relu(x, out=out) is out
    np.testing.assert_array_equal(out, relu_oracle(x))


def test_vectorized_relu_in_place():
    x = np.array([-1.0, 2.0, -3.0])
    vectorized_relu(x, out=x)
    np.testing.assert_array_equal(x, [0.0, 2.0, 0.0])


@pytest.mark.parametrize("bad_out", [np.empty(5, np.float32), np.empty(4, np.float64), np.empty((2, 2), np.float32)])
def test_vectorized_relu_rejects_mismatched_out(bad_out):
    with pytest.raises(ValueError):
        vectorized_relu(np.ones(4, np.float32), out=bad_out)


def test_vectorized_relu_keeps_nan():
    got = vectorized_relu(np.array([np.nan, -np.inf, np.inf]))
    assert np.isnan(got[0]) and got[1] == 0 and got[2] == np.inf


def test_vectorized_operations_against_numpy():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((4, 5, 6)), rng.standard_normal((4, 5, 6))
    got = vectorized_operations(x, y)
    np.testing.assert_allclose(got["multiply"], np.einsum("abc,abc->abc", x, y), rtol=1e-13)
    np.testing.assert_allclose(got["add"], np.add(y, x), rtol=1e-13)
    np.testing.assert_allclose(got["squared_difference"], np.power(y - x, 2), rtol=1e-13)
    np.testing.assert_allclose(got["euclidean_distance"], np.linalg.norm((y - x).ravel()), rtol=1e-12)
    np.testing.assert_allclose(got["dot"], np.tensordot(x, y, axes=3), rtol=1e-12)


def test_vectorized_operations_hand_values():
    got = vectorized_operations([0.0, 3.0], [4.0, 0.0])
    assert got["euclidean_distance"] == 5.0 and got["dot"] == 0.0
    np.testing.assert_array_equal(got["squared_difference"], [16.0, 9.0])


def test_vectorized_operations_rejects_shapes():
    with pytest.raises(ValueError, match=r"\(3,\)"):
        vectorized_operations(np.ones(3), np.ones(4))


@pytest.mark.parametrize("workers", [1, 2, 3, 7, 64])
@pytest.mark.parametrize("shape", [(1,), (5,), (1000,), (13, 31), (2, 3, 4)])
def test_parallel_relu_matches_oracle(workers, shape):
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    got = parallel_relu(x, num_workers=workers)
    assert got.shape == x.shape and got.dtype == x.dtype
    np.testing.assert_array_equal(got, relu_oracle(x))


def test_parallel_relu_uses_given_out_and_noncontiguous_input():
    base = np.random.default_rng(3).standard_normal((30, 40))
    x = base[::3, 1::2]
    out = np.empty(x.shape)
    assert parallel_relu(x, num_workers=3, out=out) is out
    np.testing.assert_array_equal(out, relu_oracle(x))


def test_parallel_relu_rejects_bad_arguments():
    x = np.ones((4, 4))
    with pytest.raises(ValueError):
        parallel_relu(x, num_workers=0)
    with pytest.raises(ValueError):
        parallel_relu(x, out=np.empty((4, 8))[:, ::2])     # right shape, not contiguous
    with pytest.raises(ValueError):
        parallel_relu(x, out=np.empty((4, 4), np.float32))


def test_parallel_batch_processing_keeps_order():
    rng = np.random.default_rng(4)
    batch = [rng.standard_normal((n, n)) for n in (150, 1, 90, 2, 40, 3, 120)]
    expected = [float(np.linalg.norm(m @ m)) for m in batch]
    for workers in (1, 2, 4):
        assert parallel_batch_processing(batch, lambda m: float(np.linalg.norm(m @ m)), workers) == expected


def test_parallel_batch_processing_nested_threads_do_not_deadlock():
    batch = [np.arange(-5.0, 5.0) * i for i in range(6)]
    got = parallel_batch_processing(batch, lambda v: parallel_relu(v, num_workers=2), num_workers=2)
    for item, result in zip(batch, got):
        np.testing.assert_array_equal(result, relu_oracle(item))


def test_parallel_batch_processing_errors():
    with pytest.raises(ValueError):
        parallel_batch_processing([1], abs, num_workers=0)
    with pytest.raises(ZeroDivisionError):
        parallel_batch_processing([1, 0, 2], lambda v: 1 / v, num_workers=2)
    assert parallel_batch_processing(iter([]), abs) == []
