"""Package tests for the GELUs of tinytorch.optimization.acceleration: oracle values, dtype, memory, SIMD."""

import re

import numpy as np
import pytest

from tinytorch.optimization.acceleration import (
    fused_gelu,
    fused_gelu_kernel,
    one_expression_gelu,
    tanh_rational,
    unfused_gelu,
)
from tinytorch.profiling.profiler import MemoryProfiler

TOL32 = dict(rtol=1e-5, atol=2e-6)   # float32 GELU against the float64 oracle


def gelu_oracle(x):
    """float64 GELU via 0.5 (1 + tanh u) = sigmoid(2u): a different formula from the code under test."""
    x = np.asarray(x, dtype=np.float64)
    u = np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)
    return x / (1.0 + np.exp(-2.0 * u))


@pytest.fixture
def inputs():
    rng = np.random.default_rng(10)
    return (rng.standard_normal((64, 96)) * 4).astype(np.float32)


@pytest.mark.parametrize("gelu", [unfused_gelu, fused_gelu, one_expression_gelu])
def test_every_gelu_matches_oracle_in_float32(gelu, inputs):
    got = gelu(inputs)
    assert got.dtype == np.float32 and got.shape == inputs.shape
    np.testing.assert_allclose(got, gelu_oracle(inputs), **TOL32)


def test_gelus_agree_on_a_dense_grid():
    x = np.linspace(-12, 12, 24001, dtype=np.float32)
    np.testing.assert_allclose(fused_gelu(x), unfused_gelu(x), **TOL32)
    np.testing.assert_allclose(fused_gelu(x), gelu_oracle(x), **TOL32)


def test_unfused_gelu_float64_to_double_precision():
    x = np.random.default_rng(1).standard_normal(500) * 3
    got = unfused_gelu(x)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, gelu_oracle(x), rtol=1e-12, atol=1e-14)


def test_tanh_rational_within_float32_accuracy():
    u = np.linspace(-20, 20, 40001, dtype=np.float32)
    got = np.array([tanh_rational(v) for v in u[::40]], dtype=np.float64)
    np.testing.assert_allclose(got, np.tanh(u[::40].astype(np.float64)), rtol=0, atol=1e-6)
    assert tanh_rational(np.float32(50.0)) == 1.0 and tanh_rational(np.float32(-50.0)) == -1.0


@pytest.mark.parametrize("view", ["transposed", "strided", "3d", "scalar-shaped", "empty"])
def test_fused_gelu_any_layout(view, inputs):
    x = {"transposed": inputs.T, "strided": inputs[::2, ::3], "3d": inputs.reshape(4, 16, 96),
         "scalar-shaped": np.array(1.5, dtype=np.float32), "empty": inputs[:0]}[view]
    got = fused_gelu(x)
    assert got.shape == x.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, gelu_oracle(x), **TOL32)


def test_fused_gelu_does_not_modify_its_input(inputs):
    before = inputs.copy()
    fused_gelu(inputs)
    np.testing.assert_array_equal(inputs, before)


def test_fused_gelu_rejects_other_dtypes_with_advice():
    with pytest.raises(TypeError, match="float32"):
        fused_gelu(np.ones(4))
    with pytest.raises(TypeError):
        fused_gelu(np.ones(4, dtype=np.float16))


def test_fused_gelu_extremes():
    x = np.array([1e4, -1e4, -3e38, np.inf, np.nan], dtype=np.float32)
    got = fused_gelu(x)
    assert got[0] == np.float32(1e4) and got[1] == 0.0 and abs(got[2]) < 1e-30
    assert got[3] == np.inf and np.isnan(got[4])


def test_fused_gelu_peak_memory_is_one_output():
    x = np.random.default_rng(2).standard_normal((256, 1024)).astype(np.float32)
    fused_gelu(x)   # compile first: compilation allocates, the kernel must not
    stats = MemoryProfiler().measure(fused_gelu, x)
    assert x.nbytes <= stats.peak_bytes <= x.nbytes + 64 * 1024


def test_unfused_gelu_really_holds_temporaries():
    """The baseline is honest too: its peak is several outputs, which is what fusion removes."""
    x = np.random.default_rng(3).standard_normal((256, 1024)).astype(np.float32)
    stats = MemoryProfiler().measure(unfused_gelu, x)
    assert stats.peak_bytes >= 3 * x.nbytes


def test_fused_kernel_body_is_vectorised_by_llvm():
    """The claim behind 'fused for real': LLVM turned the loop body into SIMD float arithmetic."""
    x = np.ones(64, dtype=np.float32)
    result = np.zeros_like(x)
    fused_gelu_kernel(x, result)
    ir = "".join(fused_gelu_kernel.inspect_llvm().values())
    assert re.search(r"= fdiv(?: \w+)* <\d+ x float>", ir), "the division did not vectorise"
    assert re.search(r"= fmul(?: \w+)* <\d+ x float>", ir), "the multiplies did not vectorise"
    assert not re.search(r"<\d+ x double>", ir), "a float64 constant promoted the float32 arithmetic"
