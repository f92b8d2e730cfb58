"""Package tests for tinytorch.core.tensor: behaviour checked against NumPy in float64."""

import numpy as np
import pytest

from tinytorch.core.tensor import Tensor

RNG = np.random.default_rng(2024)


def test_float_lists_become_float32():
    t = Tensor([[1.5, 2.5], [3.5, 4.5]])
    assert t.dtype == np.float32
    assert (t.shape, t.size, t.ndim) == ((2, 2), 4, 2)


def test_float64_arrays_become_float32_but_other_dtypes_stay():
    assert Tensor(np.zeros(3)).dtype == np.float32
    assert Tensor(np.zeros(3, dtype=np.float16)).dtype == np.float16
    assert Tensor([1, 2]).dtype == np.int64
    assert Tensor([True, False]).dtype == np.bool_


def test_explicit_dtype_wins_and_rewrapping_keeps_it():
    t64 = Tensor([1.0, 2.0], dtype=np.float64)
    assert t64.dtype == np.float64
    assert Tensor(t64).dtype == np.float64


def test_matching_array_is_wrapped_without_copy():
    source = np.arange(6, dtype=np.float32)
    assert np.shares_memory(Tensor(source).numpy(), source)


@pytest.mark.parametrize("shape_a, shape_b", [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 1), (1, 4)), ((2, 3, 4), (3, 1))])
def test_arithmetic_broadcasts_like_numpy(shape_a, shape_b):
    a64, b64 = RNG.standard_normal(shape_a), RNG.uniform(0.5, 2.0, shape_b)
    a, b = Tensor(a64), Tensor(b64)
    expected = {"add": a64 + b64, "sub": a64 - b64, "mul": a64 * b64, "div": a64 / b64}
    got = {"add": a + b, "sub": a - b, "mul": a * b, "div": a / b}
    for name, value in got.items():
        assert isinstance(value, Tensor) and value.dtype == np.float32, name
        np.testing.assert_allclose(value.data, expected[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_python_scalars_keep_float32():
    t = Tensor([1.0, -2.0])
    for result in (t * 2.5, 2.5 * t, t + 1, 1 - t, 3.0 / t, -t):
        assert result.dtype == np.float32
    np.testing.assert_allclose((1 - t).data, [0.0, 3.0], rtol=0, atol=0)
    np.testing.assert_allclose((3.0 / t).data, [3.0, -1.5], rtol=1e-7)


def test_ndarray_on_the_left_gives_a_tensor():
    result = np.full(3, 10.0) - Tensor([1.0, 2.0, 3.0])
    assert isinstance(result, Tensor)
    np.testing.assert_allclose(result.data, [9.0, 8.0, 7.0], rtol=0)


def test_bad_broadcast_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2,\)"):
        Tensor(np.ones((2, 3))) * Tensor(np.ones(2))


def test_matmul_matches_einsum():
    a64, b64 = RNG.standard_normal((6, 5)), RNG.standard_normal((5, 4))
    for product in (Tensor(a64) @ Tensor(b64), Tensor(a64).matmul(Tensor(b64)), a64 @ Tensor(b64)):
        assert isinstance(product, Tensor) and product.shape == (6, 4)
        np.testing.assert_allclose(product.data, np.einsum("ik,kj->ij", a64, b64), rtol=1e-5, atol=1e-5)


def test_matmul_broadcasts_batch_dimensions():
    a64, b64 = RNG.standard_normal((2, 1, 3, 4)), RNG.standard_normal((5, 4, 2))
    got = (Tensor(a64, dtype=np.float64) @ Tensor(b64, dtype=np.float64)).data
    want = np.einsum("xyik,ykj->xyij", np.broadcast_to(a64, (2, 5, 3, 4)), b64)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_matmul_inner_mismatch_names_shapes_and_fix():
    with pytest.raises(ValueError) as info:
        Tensor(np.ones((3, 4))) @ Tensor(np.ones((3, 4)))
    message = str(info.value)
    assert "(3, 4)" in message and ("transpose" in message or "reshape" in message)


def test_matmul_rejects_zero_dimensional_operand():
    with pytest.raises(ValueError):
        Tensor(np.ones((2, 2))) @ Tensor(2.0)


def test_reshape_accepts_tuple_varargs_and_minus_one():
    t = Tensor(np.arange(24.0))
    assert t.reshape(2, 3, 4).shape == (2, 3, 4)
    assert t.reshape((4, 6)).shape == (4, 6)
    assert t.reshape(-1, 8).shape == (3, 8)
    np.testing.assert_array_equal(t.reshape(4, -1).data, np.arange(24.0).reshape(4, 6))


def test_reshape_of_contiguous_data_is_a_view():
    source = np.arange(12, dtype=np.float32)
    assert np.shares_memory(Tensor(source).reshape(3, 4).data, source)


@pytest.mark.parametrize("bad", [(5, 5), (7, -1), (-1, -1)])
def test_reshape_to_incompatible_size_raises(bad):
    with pytest.raises(ValueError, match="24"):
        Tensor(np.zeros(24)).reshape(*bad)


def test_transpose_and_T():
    values = np.arange(24.0).reshape(2, 3, 4)
    t = Tensor(values)
    assert t.T.shape == (4, 3, 2)
    np.testing.assert_array_equal(t.transpose(2, 0, 1).data, np.moveaxis(values, 2, 0))
    matrix = Tensor([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(matrix.T.data, [[1.0, 3.0], [2.0, 4.0]])


@pytest.mark.parametrize("axis", [None, 0, 1, (0, 2), -1])
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions_match_numpy_float64(axis, keepdims):
    values = RNG.standard_normal((3, 4, 5))
    t = Tensor(values)
    for name in ("sum", "mean", "max"):
        got = getattr(t, name)(axis=axis, keepdims=keepdims)
        want = getattr(np, name)(values.astype(np.float32).astype(np.float64), axis=axis, keepdims=keepdims)
        assert isinstance(got, Tensor) and got.shape == np.shape(want), name
        np.testing.assert_allclose(got.data, want, rtol=1e-5, atol=1e-5, err_msg=name)


def test_indexing_returns_tensors():
    values = np.arange(20.0).reshape(4, 5)
    t = Tensor(values)
    assert isinstance(t[0], Tensor) and t[0].shape == (5,)
    np.testing.assert_array_equal(t[1:3, ::2].data, values[1:3, ::2])
    np.testing.assert_array_equal(t[Tensor([3, 1])].data, values[[3, 1]])
    np.testing.assert_array_equal(t[t.data % 7 == 0].data, [0.0, 7.0, 14.0])
    assert t[2, 4].shape == () and float(t[2, 4].data) == 14.0


def test_numpy_interop_and_len():
    t = Tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    assert len(t) == 3
    np.testing.assert_array_equal(np.asarray(t), t.numpy())
