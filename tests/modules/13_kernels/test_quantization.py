"""int8: saturation (never wrap-around), exact int32 sums (int64 oracle), error budget, integer ReLU."""

import numpy as np
import pytest

from tinytorch.core.kernels import (
    INT8_LIMIT,
    MAX_EXACT_INNER,
    dequantize_int8,
    int8_matmul,
    quantize_int8,
    quantized_matmul,
    quantized_relu,
    symmetric_scale,
)


def int64_product(qA, qB):
    return qA.astype(np.int64) @ qB.astype(np.int64)


def test_large_values_saturate_instead_of_wrapping():
    x = np.array([127.4, 127.6, 128.0, 200.0, 1e9, -127.6, -129.0, -200.0, -1e9, np.inf, -np.inf])
    q = quantize_int8(x, 1.0)
    assert q.dtype == np.int8
    np.testing.assert_array_equal(q, [127, 127, 127, 127, 127, -127, -127, -127, -127, 127, -127])
    # what a bare cast would have produced: the bug this module exists to avoid
    assert np.array([200]).astype(np.int8)[0] == -56


def test_quantize_rounds_to_nearest_code():
    x = np.array([0.24, 0.26, -0.26, 0.74, 10.0])
    np.testing.assert_array_equal(quantize_int8(x, 0.5), [0, 1, -1, 1, 20])


def test_round_trip_error_is_half_a_step():
    x = np.random.default_rng(0).uniform(-3, 3, 5000).astype(np.float32)
    scale = symmetric_scale(x)
    error = np.abs(dequantize_int8(quantize_int8(x, scale), scale) - x)
    assert error.max() <= scale / 2 + 1e-6


@pytest.mark.parametrize("bad_scale", [0.0, -0.1, np.nan])
def test_quantize_rejects_bad_scale(bad_scale):
    with pytest.raises(ValueError):
        quantize_int8(np.ones(3), bad_scale)


def test_symmetric_scale():
    assert symmetric_scale(np.array([-254.0, 3.0])) == 2.0
    assert symmetric_scale(np.zeros(4)) == 1.0


@pytest.mark.parametrize("m, k, n", [(1, 1, 1), (3, 5, 7), (16, 16, 16), (33, 257, 9), (64, 130, 70)])
@pytest.mark.parametrize("block", [1, 7, 128])
def test_int8_matmul_is_exact(m, k, n, block):
    rng = np.random.default_rng(m + k + n)
    qA = rng.integers(-128, 128, size=(m, k)).astype(np.int8)
    qB = rng.integers(-128, 128, size=(k, n)).astype(np.int8)
    got = int8_matmul(qA, qB, block_size=block)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got.astype(np.int64), int64_product(qA, qB))


def test_int8_matmul_sums_beyond_int16_without_wrapping():
    k = 5000                                     # 5000 * 128 * 128 = 81,920,000
    qA = np.full((3, k), -128, dtype=np.int8)
    qB = np.full((k, 2), -128, dtype=np.int8)
    got = int8_matmul(qA, qB)
    np.testing.assert_array_equal(got, np.full((3, 2), 5000 * 128 * 128))
    assert got.min() > 0


def test_int8_matmul_at_the_exact_inner_limit():
    qA = np.full((1, MAX_EXACT_INNER), -128, dtype=np.int8)
    qB = np.full((MAX_EXACT_INNER, 1), -128, dtype=np.int8)
    total = int(int8_matmul(qA, qB)[0, 0])
    assert total == MAX_EXACT_INNER * 128 * 128 and total <= np.iinfo(np.int32).max
    with pytest.raises(ValueError):
        int8_matmul(np.zeros((1, MAX_EXACT_INNER + 1), np.int8), np.zeros((MAX_EXACT_INNER + 1, 1), np.int8))


def test_int8_matmul_refuses_other_dtypes_and_shapes():
    with pytest.raises(TypeError):
        int8_matmul(np.ones((2, 2), np.uint8), np.ones((2, 2), np.int8))
    with pytest.raises(TypeError):
        int8_matmul(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32))
    with pytest.raises(ValueError):
        int8_matmul(np.ones((2, 3), np.int8), np.ones((2, 3), np.int8))


def test_int8_operands_are_four_times_smaller():
    A = np.random.default_rng(1).standard_normal((64, 48)).astype(np.float32)
    assert A.nbytes == 4 * quantize_int8(A, symmetric_scale(A)).nbytes


def test_quantized_matmul_equals_rescaled_integer_product():
    rng = np.random.default_rng(2)
    A = rng.standard_normal((12, 40)).astype(np.float32)
    B = rng.standard_normal((40, 9)).astype(np.float32)
    sA, sB = symmetric_scale(A), symmetric_scale(B)
    got = quantized_matmul(A, B, sA, sB)
    assert got.dtype == np.float32
    exact = int64_product(quantize_int8(A, sA), quantize_int8(B, sB)) * (float(sA) * float(sB))
    np.testing.assert_allclose(got, exact, rtol=2e-6, atol=1e-6)


def test_quantized_matmul_within_hand_derived_error_bound():
    rng = np.random.default_rng(3)
    A = rng.uniform(-2, 2, (30, 100)).astype(np.float32)
    B = rng.uniform(-1, 1, (100, 20)).astype(np.float32)
    sA, sB = symmetric_scale(A), symmetric_scale(B)
    got = quantized_matmul(A, B, sA, sB)
    # each input is off by at most half a step: sum_k |a| sB/2 + |b'| sA/2 bounds the error
    B_dequant = dequantize_int8(quantize_int8(B, sB), sB).astype(np.float64)
    bound = np.abs(A).astype(np.float64).sum(axis=1, keepdims=True) * sB / 2 + np.abs(B_dequant).sum(axis=0) * sA / 2
    error = np.abs(got - A.astype(np.float64) @ B.astype(np.float64))
    assert np.all(error <= bound * 1.001 + 1e-4)
    assert error.max() > 0                       # it is an approximation, not a disguised float matmul


def test_quantized_matmul_saturates_out_of_range_inputs():
    A = np.array([[500.0, -500.0, 1.0]], dtype=np.float32)
    B = np.ones((3, 1), dtype=np.float32)
    # 500 and -500 saturate to the codes 127 and -127, which cancel; a wrapping cast would not cancel
    np.testing.assert_array_equal(quantized_matmul(A, B, 1.0, 1.0), [[1.0]])


def test_quantized_relu_commutes_with_quantization():
    x = np.random.default_rng(4).standard_normal((8, 64)).astype(np.float32) * 4
    scale = symmetric_scale(x)
    got = quantized_relu(x, scale)
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, quantize_int8(np.where(x > 0, x, 0.0), scale))
    assert got.min() >= 0 and got.max() <= INT8_LIMIT


def test_quantized_relu_saturates():
    np.testing.assert_array_equal(quantized_relu(np.array([-1e9, -0.2, 0.2, 0.6, 1e9]), 1.0), [0, 0, 0, 1, 127])
