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
# # Module 15: Acceleration
#
# Module 13 wrote fast kernels and module 14 measured them. Neither made a *model* faster: a
# `Sequential` from module 03 still calls `np.matmul` through the dispatch point module 03 built.
# This module connects the two. At the end, one call makes the same model run on other kernels,
# and its code does not change:
#
# ```python
# model = Sequential(Linear(784, 256), ReLU(), Linear(256, 10))
# tinytorch.set_backend("optimized")       # every matmul now goes to the optimized backend
# model(x)                                  # warm-up: the first call per shape measures the kernels
# with tinytorch.benchmark() as b:
#     y = model(x)                          # unchanged model code
# print(b.seconds, b.peak_bytes)
# ```
#
# ```
#   model code (never edited)
#     Linear.forward ──▶ layers.matmul ──▶ module 03's dispatch point ──▶ current backend
#                                                    ▲                       ├── naive      Python loops: the oracle
#                                set_backend(name) ──┘                       ├── numpy      one BLAS call (the default)
#                                                                            └── optimized  tuned kernels, fused GELU, threads
# ```
#
# Four ideas carry the speed-ups, and you build one piece for each:
#
# | idea | what you build | the systems point |
# |---|---|---|
# | **vectorise** | `vectorized_matmul` | one call into compiled code for a whole batch, not a Python loop |
# | **fuse** | `unfused_gelu`, `fused_gelu` | one pass over memory instead of one pass per operator |
# | **tile** | `tiled_matmul` | work on blocks small enough to stay in cache; the block size is a real knob |
# | **dispatch** | `ComputeBackend`, `NaiveBackend`, `NumpyBackend`, `OptimizedBackend`, `set_backend`, `benchmark` | choose kernels at run time behind one seam |
#
# Correctness is tested against an oracle (the naive backend, NumPy, or a formula). Speed is only
# *measured*, in the analysis cells on your machine and in `benchmarks/bench_acceleration.py`.
#
# Like NumPy's own functions, every function and backend method you write here takes anything
# `np.asarray` takes (a nested list too) and converts it first, then checks it.

# %%
#| default_exp optimization.acceleration

# %%
#| export
import math
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import numba
import numpy as np
from numba import njit
from threadpoolctl import ThreadpoolController

from tinytorch.core.tensor import Tensor, record_op
from tinytorch.core.activations import GELU, ReLU, register_activation_kernel
from tinytorch.core.layers import Linear, Sequential, get_matmul_backend, matmul_naive, register_matmul, set_matmul_backend
from tinytorch.core.kernels import cache_friendly_matmul, parallel_matmul, vectorized_relu
from tinytorch.core.spatial import (col2im, conv2d_im2col, conv2d_naive, conv2d_output_shape, im2col, register_conv2d,
                                    set_conv2d_backend, window_output_size)
from tinytorch.profiling.profiler import MemoryProfiler, Timer

# %%
import os
import re

QUICK = os.environ.get("TITO_AUTOGRADING") == "1"   # shrink sizes and repeats while grading


# %% [markdown]
# ## Part 1: Vectorise — one call for the whole batch
#
# A Python loop pays the interpreter on every iteration: fetch a bytecode, look up a name, box a
# float. That is tens of nanoseconds per step, while a compiled kernel does several FLOPs per
# nanosecond. So the first rule of acceleration is to hand a *whole* computation to compiled code
# in one call. `np.matmul` accepts stacks of matrices and broadcasts the leading (batch)
# dimensions, so a batch of matrix products is one call, not a loop:
#
# ```
#   a: (B, 1, m, k)      b: (H, k, n)    ->  batch dims (B, 1) and (H,) broadcast to (B, H)
#   result: (B, H, m, n)                     inner dims must agree: a.shape[-1] == b.shape[-2]
# ```
#
# NumPy's own error for a bad pair (`matmul: Input operand 1 has a mismatch in its core
# dimension 0, with gufunc signature (n?,k),(k,m?)->(n?,m?)`) does not say which numbers
# disagree. Yours should: a `ValueError` that names both shapes and the rule that failed.
#
# **Your task.** `vectorized_matmul(a, b)` for operands with at least two dimensions:
# 1. fewer than 2 dimensions on either side → `ValueError` naming both shapes;
# 2. `a.shape[-1] != b.shape[-2]` → `ValueError` naming both shapes and both inner sizes;
# 3. batch dimensions that do not broadcast → `ValueError` naming both batch shapes;
# 4. otherwise one call to `np.matmul`.

# %% nbgrader={"grade": false, "grade_id": "vectorized-matmul", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def vectorized_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(..., m, k) @ (..., k, n) -> (..., m, n) in one call; batch dimensions broadcast like NumPy's."""
    ### BEGIN SOLUTION
    a, b = np.asarray(a), np.asarray(b)
    if min(a.ndim, b.ndim) < 2:
        raise ValueError(f"vectorized_matmul needs operands with at least 2 dimensions, got shapes {a.shape} and {b.shape}")
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"cannot multiply shapes {a.shape} and {b.shape}: inner dimensions differ "
                         f"({a.shape[-1]} != {b.shape[-2]}); a.shape[-1] must equal b.shape[-2]")
    batch_a, batch_b = a.shape[:-2], b.shape[:-2]
    # broadcasting rule, compared from the right: equal sizes, or one of them is 1
    if not all(p == q or 1 in (p, q) for p, q in zip(reversed(batch_a), reversed(batch_b))):
        raise ValueError(f"cannot multiply shapes {a.shape} and {b.shape}: batch dimensions "
                         f"{batch_a} and {batch_b} do not broadcast")
    return np.matmul(a, b)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-vectorized-matmul", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# Test helpers live in test cells: the grader runs test cells in its own process, apart from your code.
def expect_error(error_type, fn, *args, **kw):
    """Call fn and return the message of the error_type it raises; fail if it raises nothing."""
    try:
        fn(*args, **kw)
    except error_type as error:
        return str(error)
    raise AssertionError(f"{getattr(fn, '__name__', fn)} should raise {error_type.__name__}")


def test_unit_vectorized_matmul_broadcasts_batches():
    rng = np.random.default_rng(10)
    a = rng.standard_normal((2, 1, 3, 4))
    b = rng.standard_normal((5, 4, 6))
    expected = np.einsum("...ik,...kj->...ij", a, b)   # the oracle: an explicit sum over k
    got = vectorized_matmul(a, b)
    assert got.shape == (2, 5, 3, 6)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_unit_vectorized_matmul_names_the_shapes():
    message = expect_error(ValueError, vectorized_matmul, np.ones((3, 4)), np.ones((5, 2)))
    assert "(3, 4)" in message and "(5, 2)" in message
    message = expect_error(ValueError, vectorized_matmul, np.ones((2, 3, 4)), np.ones((3, 4, 2)))
    assert "(2,)" in message and "(3,)" in message      # the two batch shapes
    expect_error(ValueError, vectorized_matmul, np.ones(4), np.ones((4, 2)))


test_unit_vectorized_matmul_broadcasts_batches()
test_unit_vectorized_matmul_names_the_shapes()
### BEGIN HIDDEN TESTS
def test_hidden_vectorized_matmul_float32_and_plain_2d():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((7, 3)).astype(np.float32)
    b = rng.standard_normal((3, 5)).astype(np.float32)
    got = vectorized_matmul(a, b)
    assert got.dtype == np.float32
    expected = np.einsum("ik,kj->ij", a.astype(np.float64), b.astype(np.float64))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    message = expect_error(ValueError, vectorized_matmul, np.ones((2, 3)), np.ones(3))
    assert "(3,)" in message


def test_hidden_vectorized_matmul_names_the_inner_sizes_and_takes_lists():
    message = expect_error(ValueError, vectorized_matmul, np.ones((3, 4)), np.ones((5, 2)))
    rest = message.replace("(3, 4)", "").replace("(5, 2)", "")   # the sizes apart from the two shapes
    assert re.search(r"\b4\b", rest) and re.search(r"\b5\b", rest), f"both inner sizes, 4 and 5: {message!r}"
    np.testing.assert_array_equal(vectorized_matmul([[1, 2], [3, 4]], [[1], [1]]), [[3], [7]])


test_hidden_vectorized_matmul_float32_and_plain_2d()
test_hidden_vectorized_matmul_names_the_inner_sizes_and_takes_lists()
### END HIDDEN TESTS

# %% [markdown]
# ### Analysis: a loop over the batch against one call
#
# The same 64 small products, once as a Python loop that calls `np.matmul` per matrix and once
# as one batched call. The arithmetic is identical; the difference is per-call overhead.

# %%
batch_a = np.random.default_rng(0).standard_normal((64, 32, 32)).astype(np.float32)
batch_b = np.random.default_rng(1).standard_normal((64, 32, 32)).astype(np.float32)


def loop_over_batch(a, b):
    return np.stack([np.matmul(a[i], b[i]) for i in range(a.shape[0])])


batch_timer = Timer(warmup=2, repeats=3 if QUICK else 15, min_time_s=0.002)
loop_s = batch_timer.measure(loop_over_batch, batch_a, batch_b).median_s
one_call_s = batch_timer.measure(vectorized_matmul, batch_a, batch_b).median_s
print(f"64 x (32x32 @ 32x32): Python loop {loop_s * 1e6:.0f} us, one call {one_call_s * 1e6:.0f} us "
      f"-> the loop is {loop_s / one_call_s:.1f}x slower for the same FLOPs")

# %% [markdown]
# ## Part 2: Fuse — one pass over memory instead of one per operator
#
# GELU (tanh approximation), as transformers use it:
#
# `gelu(x) = 0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³)))`
#
# Written in NumPy, every operator is a separate compiled loop over the *whole* array, and every
# one writes a fresh array the size of `x`:
#
# ```
#   x*x ─▶ ·*x ─▶ 0.044715*· ─▶ x+· ─▶ √(2/π)*· ─▶ tanh(·) ─▶ 1+· ─▶ 0.5*x ─▶ ·*· ─▶ y
#   each step: one compiled loop over all of x, one new array the size of x  (9 loops, 9 arrays)
# ```
#
# For a 2000×2000 float32 input (16 MB), that is about 88 bytes read or written per element
# (counted below) instead of the minimum of 8 (read `x`, write `y`), and several 16 MB buffers
# alive at once. Each temporary is larger than a core's private L1 and L2 caches, so every pass
# streams through the shared last-level cache or DRAM, and every fresh buffer is new memory the
# operating system must map in.
# Putting it on one line does not help: `0.5 * x * (1 + np.tanh(...))` still runs operator by
# operator. (NumPy reuses a temporary in place when it can prove nobody else holds it, which
# saves some memory but no passes.) The previous version of this course called that one-liner
# "fused"; the analysis below measures it.
#
# **Fusion** means one loop that reads `x[i]` once, computes the whole formula in registers, and
# writes `y[i]` once. NumPy cannot do that; a compiler can. With numba, the loop is Python syntax
# compiled by LLVM. For it to be *fast*, LLVM must also **vectorise** it: process 8 (AVX2) or 16
# (AVX-512) floats per instruction. The loop vectoriser does that only if every operation in the
# body has a SIMD form:
#
# | in the loop body | vectorises? | why |
# |---|---|---|
# | `+ - *`, `min`, `max`, fused multiply-add | yes | one SIMD instruction each |
# | `math.tanh(u)` | **no** | a call to the C library's scalar `tanh`: one number in, one out. LLVM can only vectorise it with a vector math library (Intel SVML), which numba uses only when the `icc_rt` package is installed |
# | `a / b` under numba's default `error_model="python"` | **no** | Python raises `ZeroDivisionError`, so numba tests every divisor and branches to raise; `error_model="numpy"` gives inf/nan like NumPy and the branch disappears |
# | `0.5 * v` with `v` float32 | yes, but half width | the literal `0.5` is float64, so the product is promoted to float64; write `np.float32(0.5)` |
# | `a * b + c` | yes; one instruction only if allowed | IEEE rules round after the multiply; `fastmath={"contract"}` lets LLVM use a fused multiply-add (one rounding, twice the FLOPs per instruction), as module 13's kernels do |
#
# So the fused kernel computes tanh from `+ - * /` and comparisons alone: a rational
# approximation (a degree-13 odd polynomial over a degree-6 even one), and exactly ±1 beyond
# |u| = 7.9, where tanh is within a few float32 ulps of ±1. It is the rational approximation the
# Eigen library uses for float32 tanh. It is given below; you write the loop.

# %%
#| export
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)   # GELU's tanh-approximation constants
GELU_CUBIC = 0.044715

# float32 copies for compiled code: a Python float in a numba loop is float64 and would promote
# every float32 operation to float64 (half as many SIMD lanes).
SQRT_2_OVER_PI_F32 = np.float32(SQRT_2_OVER_PI)
GELU_CUBIC_F32 = np.float32(GELU_CUBIC)
HALF_F32 = np.float32(0.5)
ONE_F32 = np.float32(1.0)
TANH_CLAMP_F32 = np.float32(7.90531110763549805)   # from here on tanh(u) is 1 within 3e-7 (5 float32 ulps)


@njit(error_model="numpy", fastmath={"contract"})
def tanh_rational(u):
    """tanh(u) from + - * / and comparisons only, so that a loop calling it vectorises (float32 accuracy)."""
    # Saturated: exactly +-1 (the rational function, rounded with FMAs, can land one ulp short,
    # and then GELU's 1 + tanh(u) would leave 1e-7 * x instead of 0 for very negative x).
    # LLVM turns these branches into vector selects; NaN fails both tests and stays NaN.
    if u >= TANH_CLAMP_F32:
        return ONE_F32
    if u <= -TANH_CLAMP_F32:
        return -ONE_F32
    u2 = u * u
    # odd numerator u * p(u^2), even denominator q(u^2), both by Horner's rule (one FMA per step)
    p = np.float32(-2.76076847742355e-16)
    p = p * u2 + np.float32(2.00018790482477e-13)
    p = p * u2 + np.float32(-8.60467152213735e-11)
    p = p * u2 + np.float32(5.12229709037114e-08)
    p = p * u2 + np.float32(1.48572235717979e-05)
    p = p * u2 + np.float32(6.37261928875436e-04)
    p = p * u2 + np.float32(4.89352455891786e-03)
    q = np.float32(1.19825839466702e-06)
    q = q * u2 + np.float32(1.18534705686654e-04)
    q = q * u2 + np.float32(2.26843463243900e-03)
    q = q * u2 + np.float32(4.89352518554385e-03)
    return u * p / q


def one_expression_gelu(x: np.ndarray) -> np.ndarray:
    """GELU as one NumPy expression: what the earlier course called 'fused'. It is not: see above."""
    return 0.5 * x * (1.0 + np.tanh(SQRT_2_OVER_PI * (x + GELU_CUBIC * x**3)))


# %% [markdown]
# **Your task (1).** `unfused_gelu(x)`: the formula with every intermediate in its own named
# array, one NumPy operation per line (the baseline that fusion removes). Use the Python-float
# constants `SQRT_2_OVER_PI` and `GELU_CUBIC`, so a float32 input stays float32 (NumPy keeps the
# array's dtype when the other operand is a Python number).

# %% nbgrader={"grade": false, "grade_id": "unfused-gelu", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def unfused_gelu(x: np.ndarray) -> np.ndarray:
    """GELU (tanh approximation) as one NumPy pass per operation, each result in a new array."""
    ### BEGIN SOLUTION
    x_squared = x * x
    x_cubed = x_squared * x
    cubic_term = GELU_CUBIC * x_cubed
    tanh_argument = SQRT_2_OVER_PI * (x + cubic_term)
    tanh_value = np.tanh(tanh_argument)
    gate = 1.0 + tanh_value
    half_x = 0.5 * x
    return half_x * gate
    ### END SOLUTION


# %% [markdown]
# The oracle in the tests below is written differently on purpose: `0.5·(1 + tanh(u))` equals
# the logistic sigmoid `1 / (1 + e^(-2u))`, so `gelu(x) = x / (1 + e^(-2u))`, computed in float64.

# %% nbgrader={"grade": true, "grade_id": "test-unfused-gelu", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def gelu_oracle(x):
    """GELU in float64 through the sigmoid identity: x * sigmoid(2u), u = sqrt(2/pi)(x + 0.044715 x^3)."""
    x64 = np.asarray(x, dtype=np.float64)
    u = np.sqrt(2.0 / np.pi) * (x64 + 0.044715 * np.power(x64, 3))
    return x64 / (1.0 + np.exp(-2.0 * u))


def test_unit_unfused_gelu_matches_oracle_and_keeps_float32():
    x = np.linspace(-6, 6, 1203, dtype=np.float32).reshape(3, 401)
    y = unfused_gelu(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y, gelu_oracle(x), rtol=1e-5, atol=2e-6)


test_unit_unfused_gelu_matches_oracle_and_keeps_float32()
### BEGIN HIDDEN TESTS
def test_hidden_unfused_gelu_float64_exact_and_known_points():
    x = np.random.default_rng(3).standard_normal(1000) * 3
    np.testing.assert_allclose(unfused_gelu(x), gelu_oracle(x), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(unfused_gelu(np.array([0.0, 30.0, -30.0])), [0.0, 30.0, 0.0], atol=1e-12)


test_hidden_unfused_gelu_float64_exact_and_known_points()
### END HIDDEN TESTS

# %% [markdown]
# **Your task (2).** The fused kernel and its wrapper.
#
# * `fused_gelu_kernel(x, out)` loops over two flat float32 arrays and writes `out[i] = gelu(x[i])`,
#   reading `x[i]` once and writing `out[i]` once, with `tanh_rational` for the tanh and the
#   `*_F32` constants for every literal (see the table above: a float64 constant halves the SIMD
#   width). It is compiled with `error_model="numpy"` so its divisions vectorise, and with
#   `fastmath={"contract"}` so `a * b + c` becomes one FMA.
# * `fused_gelu(x)` accepts float32 only (a `TypeError` says what to do otherwise: the kernel is a
#   float32 kernel), allocates the one output array of `x`'s shape, runs the kernel on flat views
#   and returns the output. A non-contiguous input must still work (`np.ascontiguousarray` makes
#   the flat copy the kernel needs; a contiguous input is not copied).

# %% nbgrader={"grade": false, "grade_id": "fused-gelu", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
@njit(error_model="numpy", fastmath={"contract"})
def fused_gelu_kernel(x, out):
    """out[i] = gelu(x[i]) over flat float32 arrays, in one pass whose body LLVM can vectorise."""
    ### BEGIN SOLUTION
    for i in range(x.size):
        v = x[i]
        tanh_arg = SQRT_2_OVER_PI_F32 * (v + GELU_CUBIC_F32 * v * v * v)
        out[i] = HALF_F32 * v * (ONE_F32 + tanh_rational(tanh_arg))
    ### END SOLUTION


def fused_gelu(x: np.ndarray) -> np.ndarray:
    """GELU of a float32 array in one compiled pass: no temporaries, the output is the only allocation."""
    ### BEGIN SOLUTION
    x = np.asarray(x)
    if x.dtype != np.float32:
        raise TypeError(f"fused_gelu is a float32 kernel, got {x.dtype}; "
                        "convert with x.astype(np.float32) or use unfused_gelu for other dtypes")
    gelu_out = np.empty(x.shape, dtype=np.float32)
    fused_gelu_kernel(np.ascontiguousarray(x).reshape(-1), gelu_out.reshape(-1))
    return gelu_out
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-fused-gelu", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
def test_unit_fused_gelu_matches_oracle_and_keeps_float32():
    x = np.linspace(-9, 9, 4001, dtype=np.float32)
    y = fused_gelu(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y, gelu_oracle(x), rtol=1e-5, atol=2e-6)


def test_unit_fused_gelu_any_shape_and_strides():
    x = np.random.default_rng(0).standard_normal((6, 40)).astype(np.float32) * 3
    for view in (x, x.T, x[:, ::3], x.reshape(2, 3, 40)):
        np.testing.assert_allclose(fused_gelu(view), gelu_oracle(view), rtol=1e-5, atol=2e-6)


def test_unit_fused_gelu_allocates_only_its_output():
    x = np.random.default_rng(1).standard_normal((512, 512)).astype(np.float32)
    fused_gelu(x)   # first call compiles the kernel; compilation allocates, the kernel must not
    stats = MemoryProfiler().measure(fused_gelu, x)
    assert stats.peak_bytes <= x.nbytes + 64 * 1024, f"peak {stats.peak_bytes} B for a {x.nbytes} B output"


test_unit_fused_gelu_matches_oracle_and_keeps_float32()
test_unit_fused_gelu_any_shape_and_strides()
test_unit_fused_gelu_allocates_only_its_output()
### BEGIN HIDDEN TESTS
def test_hidden_fused_gelu_rejects_float64_and_handles_extremes():
    expect_error(TypeError, fused_gelu, np.ones(3))
    x = np.array([0.0, 1e4, -1e4, 3e38, -3e38, np.inf, np.nan], dtype=np.float32)
    y = fused_gelu(x)
    np.testing.assert_array_equal(y[:4], np.array([0.0, 1e4, 0.0, 3e38], dtype=np.float32))
    assert abs(y[4]) <= 1e-30 and y[5] == np.inf and np.isnan(y[6])
    assert fused_gelu(np.zeros((0, 3), dtype=np.float32)).shape == (0, 3)
    assert "float32" in expect_error(TypeError, fused_gelu, [0.5, 1.0])   # a list of floats is float64


test_hidden_fused_gelu_rejects_float64_and_handles_extremes()
### END HIDDEN TESTS

# %% [markdown]
# ### Analysis: time, bandwidth and peak memory of the three GELUs
#
# Each version runs on the same float32 input. Time comes from module 14's `Timer`, peak extra
# memory from its `MemoryProfiler` (tracemalloc sees NumPy's buffers). "Useful GB/s" counts only
# the 8 bytes per element any GELU must move (read `x`, write `y`), so it compares directly with
# `np.copyto`, which moves the same 8 bytes per element and nothing else.

# %%
gelu_n = 512 if QUICK else 2000
gelu_x = np.random.default_rng(0).standard_normal((gelu_n, gelu_n)).astype(np.float32)
gelu_timer = Timer(warmup=2, repeats=3 if QUICK else 10)
copy_target = np.empty_like(gelu_x)
copy_s = gelu_timer.measure(np.copyto, copy_target, gelu_x).median_s
useful_bytes = 2 * gelu_x.nbytes
print(f"{gelu_n}x{gelu_n} float32; np.copyto: {copy_s * 1e3:.2f} ms = {useful_bytes / copy_s / 1e9:.1f} GB/s")
print(f"{'version':<22}{'ms':>8}{'useful GB/s':>13}{'% of copyto':>13}{'peak extra (outputs)':>22}")
gelu_ms = {}
for name, fn in [("unfused_gelu", unfused_gelu), ("one_expression_gelu", one_expression_gelu), ("fused_gelu", fused_gelu)]:
    seconds = gelu_timer.measure(fn, gelu_x).median_s
    peak = MemoryProfiler().measure(fn, gelu_x).peak_bytes
    gelu_ms[name] = seconds * 1e3
    print(f"{name:<22}{seconds * 1e3:>8.2f}{useful_bytes / seconds / 1e9:>13.1f}{100 * copy_s / seconds:>12.0f}%"
          f"{peak / gelu_x.nbytes:>22.2f}")
print(f"fused is {gelu_ms['unfused_gelu'] / gelu_ms['fused_gelu']:.1f}x faster than unfused, "
      f"{gelu_ms['one_expression_gelu'] / gelu_ms['fused_gelu']:.1f}x faster than the one-liner")

# %% [markdown]
# **Traffic, counted from the code.** Each NumPy operation in `unfused_gelu` reads its array
# operands and writes one result array, 4 bytes each per element. The table counts them; the
# measured time then gives the traffic rate the unfused version would need if every pass went to
# DRAM. (The one-liner's `x**3` calls the general power function, which the table above shows is
# far slower than two multiplies; that, not memory, is most of its time.)

# %%
unfused_passes = [   # (operation in unfused_gelu, arrays read, arrays written)
    ("x * x", 2, 1), ("x_squared * x", 2, 1), ("GELU_CUBIC * x_cubed", 1, 1), ("x + cubic_term", 2, 1),
    ("SQRT_2_OVER_PI * (...)", 1, 1), ("np.tanh", 1, 1), ("1.0 + tanh_value", 1, 1), ("0.5 * x", 1, 1),
    ("half_x * gate", 2, 1),
]
unfused_bytes_per_element = sum(4 * (reads + writes) for _, reads, writes in unfused_passes)
print(f"unfused: {len(unfused_passes)} passes, {unfused_bytes_per_element} bytes per element counted; fused: 1 pass, 8 bytes")
implied = unfused_bytes_per_element * gelu_x.size / (gelu_ms["unfused_gelu"] / 1e3) / 1e9
print(f"unfused at the measured {gelu_ms['unfused_gelu']:.2f} ms would move {implied:.1f} GB/s "
      f"if every pass went to DRAM (np.copyto: {useful_bytes / copy_s / 1e9:.1f} GB/s)")

# %% [markdown]
# ### Analysis: what vectorises inside numba
#
# Three compiled GELU loops that differ in one detail each. For each we count the vector float
# operations in LLVM's optimised IR (types like `<8 x float>`), the references to the C library's
# `tanh`/`tanhf` left in the machine code, and the time per element. Watch the library-`tanh`
# loop closely: LLVM may vectorise it *on paper*, with a vector `llvm.tanh` intrinsic, but with no
# vector math library to implement that intrinsic the code generator splits it back into one
# scalar `tanhf` call per element; the time says which happened. The Python-division loop keeps
# its zero-divisor branch, and with it a scalar loop.

# %%
tanh_rational_checked_division = njit(error_model="python", fastmath={"contract"})(tanh_rational.py_func)


@njit(error_model="numpy", fastmath={"contract"})
def gelu_loop_library_tanh(x, out):
    for i in range(x.size):
        v = x[i]
        out[i] = HALF_F32 * v * (ONE_F32 + math.tanh(SQRT_2_OVER_PI_F32 * (v + GELU_CUBIC_F32 * v * v * v)))


@njit(error_model="python", fastmath={"contract"})
def gelu_loop_checked_division(x, out):
    for i in range(x.size):
        v = x[i]
        out[i] = HALF_F32 * v * (ONE_F32 + tanh_rational_checked_division(SQRT_2_OVER_PI_F32 * (v + GELU_CUBIC_F32 * v * v * v)))


loop_x = gelu_x.reshape(-1)
loop_out = np.empty_like(loop_x)
print(f"{'compiled loop':<36}{'vector ops in IR':>18}{'library tanh in asm':>21}{'ns per element':>16}")
for name, kernel in [("math.tanh (library call)", gelu_loop_library_tanh),
                     ("rational tanh, error_model=python", gelu_loop_checked_division),
                     ("fused_gelu_kernel", fused_gelu_kernel)]:
    seconds = gelu_timer.measure(kernel, loop_x, loop_out).median_s
    ir = "".join(kernel.inspect_llvm().values())
    vector_ops = len(re.findall(r"= f(?:add|sub|mul|div)(?: \w+)* <\d+ x float>", ir))
    asm = "".join(kernel.inspect_asm().values())
    library_calls = len(re.findall(r"\btanhf?\b", asm))   # `tanh_rational` does not match: no word boundary
    print(f"{name:<36}{vector_ops:>18}{library_calls:>21}{seconds / loop_x.size * 1e9:>16.2f}")

# %% [markdown]
# ## Part 3: Tile — blocks that fit in cache
#
# A matmul reads each element of `A` and `B` many times (`2·m·k·n` FLOPs over `m·k + k·n` inputs).
# Whether those re-reads come from cache or from DRAM decides its speed. **Tiling** computes the
# output one `T × T` block at a time, walking the shared dimension in steps of `T`:
#
# ```
#   for each output tile C[i:i+T, j:j+T]:            working set per step:
#       for k in steps of T:                          A tile T×T + B tile T×T + C tile T×T
#           C_tile += A[i:i+T, k:k+T] @ B[k:k+T, j:j+T]      = 3·T²·4 bytes (T=64: 48 KiB)
# ```
#
# The tile size is a real knob: it sets how many tile products run (`⌈m/T⌉·⌈n/T⌉·⌈k/T⌉`) and how
# big each one is. Here each tile product is one `tile_kernel` call (`np.matmul` by default), so
# small tiles pay Python and call overhead many times, and large tiles hand BLAS bigger blocks
# that it tiles again internally. Module 13's `cache_friendly_matmul` does the same blocking
# inside compiled code, where the overhead per tile is gone.
#
# **Your task.** `tiled_matmul(a, b, tile_size=64, tile_kernel=np.matmul)` for 2-D operands:
# `ValueError` for a `tile_size` below 1 or shapes that do not multiply (name both shapes);
# otherwise a zero output of `np.result_type(a, b)`, filled tile by tile in the loop order above,
# calling `tile_kernel(a_tile, b_tile)` once per tile product and accumulating into the output
# tile in place. Edge tiles are smaller when `T` does not divide a dimension (slicing handles it).

# %% nbgrader={"grade": false, "grade_id": "tiled-matmul", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def tiled_matmul(a: np.ndarray, b: np.ndarray, tile_size: int = 64, tile_kernel=np.matmul) -> np.ndarray:
    """a @ b computed one tile_size x tile_size output block at a time.

    tile_kernel(a_tile, b_tile): multiplies one pair of tiles (np.matmul, or your own to watch the tiles).
    """
    ### BEGIN SOLUTION
    a, b = np.asarray(a), np.asarray(b)
    if tile_size < 1:
        raise ValueError(f"tile_size must be at least 1, got {tile_size}")
    both_2d = a.ndim == 2 and b.ndim == 2
    if not (both_2d and a.shape[1] == b.shape[0]):
        raise ValueError(f"tiled_matmul needs 2-D operands with a.shape[1] == b.shape[0], got {a.shape} and {b.shape}")
    rows, depth = a.shape
    cols = b.shape[1]
    product = np.zeros((rows, cols), dtype=np.result_type(a, b))
    for r in range(0, rows, tile_size):
        for c in range(0, cols, tile_size):
            out_tile = product[r:r + tile_size, c:c + tile_size]   # a view: += writes into product
            for d in range(0, depth, tile_size):
                out_tile += tile_kernel(a[r:r + tile_size, d:d + tile_size], b[d:d + tile_size, c:c + tile_size])
    return product
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-tiled-matmul", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def test_unit_tiled_matmul_matches_oracle_for_every_tile_size():
    rng = np.random.default_rng(10)
    a = rng.standard_normal((37, 50))
    b = rng.standard_normal((50, 29))
    expected = np.einsum("ik,kj->ij", a, b)
    for tile in (1, 7, 16, 50, 64):
        np.testing.assert_allclose(tiled_matmul(a, b, tile_size=tile), expected, rtol=1e-10, atol=1e-10)


def test_unit_tiled_matmul_tile_size_sets_the_work():
    a = np.ones((37, 50))
    b = np.ones((50, 29))
    tiles_seen = []

    def recording_kernel(a_tile, b_tile):   # a real multiply that also records the tile shapes
        tiles_seen.append((a_tile.shape, b_tile.shape))
        return a_tile @ b_tile

    result = tiled_matmul(a, b, tile_size=16, tile_kernel=recording_kernel)
    np.testing.assert_array_equal(result, np.full((37, 29), 50.0))
    assert len(tiles_seen) == math.ceil(37 / 16) * math.ceil(29 / 16) * math.ceil(50 / 16)   # 3 * 2 * 4
    assert max(max(sa + sb) for sa, sb in tiles_seen) == 16
    tiles_seen.clear()
    tiled_matmul(a, b, tile_size=64, tile_kernel=recording_kernel)
    assert tiles_seen == [((37, 50), (50, 29))]   # one tile covers everything


test_unit_tiled_matmul_matches_oracle_for_every_tile_size()
test_unit_tiled_matmul_tile_size_sets_the_work()
### BEGIN HIDDEN TESTS
def test_hidden_tiled_matmul_errors_and_integer_exactness():
    expect_error(ValueError, tiled_matmul, np.ones((2, 2)), np.ones((2, 2)), tile_size=0)
    message = expect_error(ValueError, tiled_matmul, np.ones((3, 4)), np.ones((5, 2)))
    assert "(3, 4)" in message and "(5, 2)" in message
    rng = np.random.default_rng(5)
    a = rng.integers(-9, 9, (20, 33))
    b = rng.integers(-9, 9, (33, 11))
    got = tiled_matmul(a, b, tile_size=8)
    assert got.dtype == np.result_type(a, b)
    np.testing.assert_array_equal(got, np.einsum("ik,kj->ij", a, b))


test_hidden_tiled_matmul_errors_and_integer_exactness()


def test_hidden_tiled_matmul_checks_before_looping():
    assert "tile_size" in expect_error(ValueError, tiled_matmul, np.ones((2, 2)), np.ones((2, 2)), tile_size=0)
    expect_error(ValueError, tiled_matmul, np.ones((2, 2)), np.ones((2, 2)), tile_size=-3)   # no empty loop, no zeros
    expect_error(ValueError, tiled_matmul, np.ones((2, 3)), np.ones(3))                      # b is 1-D
    np.testing.assert_array_equal(tiled_matmul([[1, 2], [3, 4]], [[1], [1]], tile_size=1), [[3], [7]])


test_hidden_tiled_matmul_checks_before_looping()
### END HIDDEN TESTS

# %% [markdown]
# ### Analysis: the tile-size knob, and every matmul against this machine's BLAS ceiling
#
# First the knob: one size, several tile sizes. Then GFLOP/s against matrix size for each matmul
# in this course, all with one thread (BLAS limited by threadpoolctl, numba by
# `numba.set_num_threads`), next to the ceiling module 14 measures: 1-thread BLAS at a large size.

# %%
from threadpoolctl import threadpool_limits
from tinytorch.profiling.profiler import measure_ceilings

tile_n = 128 if QUICK else 512
tile_a = np.random.default_rng(0).standard_normal((tile_n, tile_n)).astype(np.float32)
tile_b = np.random.default_rng(1).standard_normal((tile_n, tile_n)).astype(np.float32)
tile_timer = Timer(warmup=1, repeats=3 if QUICK else 5)
with threadpool_limits(limits=1):
    print(f"tiled_matmul on {tile_n}x{tile_n}, 1 thread")
    for tile in ([16, 64] if QUICK else [16, 32, 64, 128, 256, 512]):
        seconds = tile_timer.measure(tiled_matmul, tile_a, tile_b, tile).median_s
        products = math.ceil(tile_n / tile) ** 3
        print(f"  tile {tile:>4}: {products:>7} tile products, {2 * tile_n**3 / seconds / 1e9:7.2f} GFLOP/s")

# %%
ceilings = measure_ceilings(matmul_n=256 if QUICK else 1024, copy_bytes=(16 if QUICK else 256) * 2**20,
                            repeats=3 if QUICK else 5)
matmul_sizes = [64, 128] if QUICK else [64, 128, 256, 512, 1024]
matmul_kernels = {
    "numpy (BLAS)": vectorized_matmul,
    "tiled_matmul T=64": lambda a, b: tiled_matmul(a, b, 64),
    "cache_friendly (m13)": cache_friendly_matmul,
    "parallel (m13)": parallel_matmul,
}
gflops = {name: [] for name in matmul_kernels}
numba_threads = numba.get_num_threads()
numba.set_num_threads(1)
try:
    with threadpool_limits(limits=1):
        for n in matmul_sizes:
            a = np.random.default_rng(n).standard_normal((n, n)).astype(np.float32)
            b = np.random.default_rng(n + 1).standard_normal((n, n)).astype(np.float32)
            for name, kernel in matmul_kernels.items():
                gflops[name].append(2 * n**3 / tile_timer.measure(kernel, a, b).median_s / 1e9)
finally:
    numba.set_num_threads(numba_threads)
print(f"ceiling: 1-thread BLAS {ceilings.blas_gflops_1thread:.1f} GFLOP/s (measured by module 14)")
print(f"{'n':>6}" + "".join(f"{name:>22}" for name in matmul_kernels))
for i, n in enumerate(matmul_sizes):
    print(f"{n:>6}" + "".join(f"{gflops[name][i]:>9.1f} ({100 * gflops[name][i] / ceilings.blas_gflops_1thread:>4.0f}%)    "
                              for name in matmul_kernels))

# %%
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(7, 4))
for name, values in gflops.items():
    ax.plot(matmul_sizes, values, "o-", label=name)
ax.axhline(ceilings.blas_gflops_1thread, color="k", linestyle="--", label="1-thread BLAS ceiling")
ax.set_xscale("log", base=2)
ax.set_xlabel("n (n x n @ n x n, float32)")
ax.set_ylabel("GFLOP/s (measured, 1 thread)")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ### Analysis: arithmetic intensity and the roofline
#
# Arithmetic intensity is FLOPs per byte moved. Below the ridge of module 14's roofline a kernel
# is capped by memory bandwidth, above it by compute. FLOPs and bytes are *counted* from each
# operation (minimum traffic: every input read once, the output written once); time is
# *measured*. GELU's FLOPs are counted from `fused_gelu_kernel` (its rational tanh included) and
# charged to both GELUs, so the unfused one's lower GFLOP/s is its extra traffic, not less work.

# %%
from tinytorch.profiling.profiler import roofline_point

elems = gelu_x.size
other = np.random.default_rng(9).standard_normal(gelu_x.shape).astype(np.float32)
gelu_flops_per_element = 29   # counted in fused_gelu_kernel: 5 before tanh, 21 in tanh_rational (comparisons not counted), 3 after
mm_n = 256 if QUICK else 1024
mm_a = np.random.default_rng(3).standard_normal((mm_n, mm_n)).astype(np.float32)
mm_b = np.random.default_rng(4).standard_normal((mm_n, mm_n)).astype(np.float32)
roof_ops = [  # label, function, args, FLOPs, minimum bytes moved
    ("add", np.add, (gelu_x, other), elems, 12 * elems),
    ("multiply", np.multiply, (gelu_x, other), elems, 12 * elems),
    ("unfused GELU", unfused_gelu, (gelu_x,), gelu_flops_per_element * elems, 8 * elems),
    ("fused GELU", fused_gelu, (gelu_x,), gelu_flops_per_element * elems, 8 * elems),
    (f"matmul {mm_n}", np.matmul, (mm_a, mm_b), 2 * mm_n**3, 3 * 4 * mm_n**2),
]
points = []
with threadpool_limits(limits=1):   # the ceilings are 1-thread ceilings
    for label, fn, args, flops, nbytes in roof_ops:
        points.append(roofline_point(flops, nbytes, gelu_timer.measure(fn, *args).median_s, ceilings, label=label))
print(f"ridge: {ceilings.ridge_intensity:.1f} FLOP/byte ({ceilings.blas_gflops_1thread:.1f} GFLOP/s / {ceilings.copy_gbs:.1f} GB/s)")
print(f"{'operation':<16}{'FLOP/byte':>10}{'bound':>9}{'attainable':>12}{'measured':>10}{'of roof':>9}")
for p in points:
    print(f"{p.label:<16}{p.intensity:>10.3f}{p.bound:>9}{p.attainable_gflops:>12.1f}{p.achieved_gflops:>10.1f}"
          f"{100 * p.fraction_of_roof:>8.0f}%")

# %% [markdown]
# (A point above 100% of its roof ran from cache: the copy ceiling is measured on arrays larger
# than the caches, and smaller arrays can beat it.)
#
# Add and multiply sit far left of the ridge: no kernel can make them compute-bound, only fewer
# bytes help. GELU does ~29 FLOPs per 8 bytes, several times more intense; fused, it can come
# close to its roof, and unfused it cannot: its code reads and writes eleven times the bytes the
# roofline charges it for (88 against 8 per element, counted above). Matmul sits right of the
# ridge: there the work is to keep the compute units fed, which is what tiling and BLAS do.
#
# ## Part 4: Dispatch — the backend seam
#
# Module 03 made `matmul` call whatever function is registered as the current backend
# (`register_matmul`, `set_matmul_backend`). A **backend** bundles one implementation of each
# operation a framework can speed up, so a whole model switches at once:
#
# | backend | matmul | relu, gelu | linear (+ activation) | role |
# |---|---|---|---|---|
# | `NaiveBackend` ("naive") | `matmul_naive`: three Python loops | Python loops, `math.tanh` | matmul, then `+ bias`, then the activation | the learning reference and correctness oracle |
# | `NumpyBackend` ("numpy") | `vectorized_matmul`: one BLAS call | NumPy expressions | the same three steps, each a new array | the default |
# | `OptimizedBackend` ("optimized") | the fastest of BLAS and module 13's kernels, **measured** once per shape | module 13's `vectorized_relu`, `fused_gelu` | matmul, then bias and activation **fused** into one in-place pass | speed, with a thread-count knob |
#
# `ComputeBackend` is the interface. Its `conv2d(x, weight, stride, padding)` is module 09's
# im2col followed by one GEMM on the backend's own `matmul` (so the optimized backend's GEMM is
# the kernel it measured fastest for that shape); the naive backend overrides it with module
# 09's loops, and the optimized backend with compiled unfold/fold kernels (given, below). A
# backend may also define `conv2d_backward`; where it is `None` (the base class), backward is
# module 09's rule, whose GEMMs go through module 03's matmul. `set_backend` plugs both into
# module 09's conv2d dispatch point, so a CNN's convolutions, forward and backward, follow the
# backend too. It has two hooks, `activate` and
# `deactivate`, that `set_backend` calls so a backend can change process settings (thread
# counts) and put them back.
#
# `linear(x, weight, bias, activation)` is one layer and the activation after it. The base class
# does it in three steps (every backend gets it for free); the optimized backend overrides it.
#
# Activations have a dispatch point too, in module 02 (`register_activation_kernel`): once a
# backend is set, `model(x)` runs its matmuls *and* its ReLU/GELU on that backend. What a
# per-layer dispatch point cannot do is fuse across layers: `backend_forward(model, x)` (below)
# walks a `Sequential` and hands each `Linear` and the activation after it to the backend's
# `linear` as one operation, so the bias and the activation happen in one in-place pass.

# %%
#| export
ACTIVATIONS = {None: 0, "relu": 1, "gelu": 2}   # activations a backend's linear can apply; codes for the epilogue kernel


class ComputeBackend:
    """The seam: one implementation of each operation a backend can speed up. Arrays in, arrays out."""

    name = "base"

    def matmul(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"backend {self.name!r} does not implement matmul")

    def relu(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"backend {self.name!r} does not implement relu")

    def gelu(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"backend {self.name!r} does not implement gelu")

    def linear(self, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
               activation: str | None = None) -> np.ndarray:
        """x @ weight (+ bias), then activation ("relu", "gelu" or None): a Linear layer and what follows it."""
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; use one of {list(ACTIVATIONS)}")
        x = np.asarray(x)
        y = self.matmul(x.reshape(-1, x.shape[-1]), weight)
        y = y.reshape(*x.shape[:-1], y.shape[-1])
        if bias is not None:
            y = y + bias
        if activation == "relu":
            y = self.relu(y)
        elif activation == "gelu":
            y = self.gelu(y)
        return y

    def conv2d(self, x: np.ndarray, weight: np.ndarray, stride: int = 1, padding: int = 0) -> np.ndarray:
        """x (N, C, H, W) convolved with weight (O, C, kh, kw): module 09's im2col, then one GEMM on self.matmul."""
        return conv2d_im2col(x, weight, stride, padding, gemm=self.matmul)

    # A backend may define conv2d_backward(x, weight, grad, stride, padding, needs_grad) -> (d x, d weight)
    # to take over conv2d's backward too; None: module 09's conv2d_backward (im2col, col2im, module 03's matmul).
    conv2d_backward = None

    def activate(self) -> None:
        """Called by set_backend when this backend becomes current (e.g. to set thread counts)."""

    def deactivate(self) -> None:
        """Called by set_backend when another backend replaces this one: undo what activate changed."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


# %% [markdown]
# **Your task.** The two reference backends.
#
# * `NaiveBackend`: `matmul` is module 03's `matmul_naive` (2-D only); `relu` and `gelu` are
#   Python loops over the elements of the flattened input, writing into a new array of the
#   input's shape and dtype (`math.tanh` for GELU). Slow on purpose: their only job is to be
#   obviously right.
# * `NumpyBackend`: `matmul` is your `vectorized_matmul`, `gelu` your `unfused_gelu`, and `relu`
#   one NumPy call that keeps the dtype.

# %% nbgrader={"grade": false, "grade_id": "reference-backends", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
class NaiveBackend(ComputeBackend):
    """Python loops over elements: slow on purpose, the oracle the other backends are checked against."""

    name = "naive"

    def matmul(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ### BEGIN SOLUTION
        return matmul_naive(np.asarray(a), np.asarray(b))
        ### END SOLUTION

    def relu(self, x: np.ndarray) -> np.ndarray:
        ### BEGIN SOLUTION
        x = np.asarray(x)
        relu_values = np.empty(x.shape, dtype=x.dtype)
        relu_flat, source_flat = relu_values.reshape(-1), x.reshape(-1)
        for i in range(source_flat.size):
            relu_flat[i] = source_flat[i] if source_flat[i] > 0 else 0
        return relu_values
        ### END SOLUTION

    def gelu(self, x: np.ndarray) -> np.ndarray:
        ### BEGIN SOLUTION
        x = np.asarray(x)
        gelu_values = np.empty(x.shape, dtype=x.dtype)
        gelu_flat, source_flat = gelu_values.reshape(-1), x.reshape(-1)
        for i in range(source_flat.size):
            v = float(source_flat[i])
            gelu_flat[i] = 0.5 * v * (1.0 + math.tanh(SQRT_2_OVER_PI * (v + GELU_CUBIC * v * v * v)))
        return gelu_values
        ### END SOLUTION

    def conv2d(self, x: np.ndarray, weight: np.ndarray, stride: int = 1, padding: int = 0) -> np.ndarray:
        return conv2d_naive(x, weight, stride, padding)   # module 09's seven loops: the oracle


class NumpyBackend(ComputeBackend):
    """One NumPy call per operation: BLAS for matmul, ufuncs for activations. The default backend."""

    name = "numpy"

    def matmul(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ### BEGIN SOLUTION
        return vectorized_matmul(a, b)
        ### END SOLUTION

    def relu(self, x: np.ndarray) -> np.ndarray:
        ### BEGIN SOLUTION
        return np.maximum(np.asarray(x), 0)   # a Python 0 keeps the array's dtype
        ### END SOLUTION

    def gelu(self, x: np.ndarray) -> np.ndarray:
        ### BEGIN SOLUTION
        return unfused_gelu(np.asarray(x))
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-reference-backends", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def relu_oracle(x):
    return np.where(x > 0, x, np.zeros_like(x))


def test_unit_reference_backends_match_oracles():
    rng = np.random.default_rng(10)
    a = rng.standard_normal((4, 5)).astype(np.float32)
    b = rng.standard_normal((5, 3)).astype(np.float32)
    x = rng.standard_normal((3, 7)).astype(np.float32) * 3
    expected_mm = np.einsum("ik,kj->ij", a.astype(np.float64), b.astype(np.float64))
    for backend in (NaiveBackend(), NumpyBackend()):
        np.testing.assert_allclose(backend.matmul(a, b), expected_mm, rtol=1e-5, atol=1e-5)
        relu = backend.relu(x)
        assert relu.dtype == np.float32 and relu.shape == x.shape
        np.testing.assert_array_equal(relu, relu_oracle(x))
        gelu = backend.gelu(x)
        assert gelu.dtype == np.float32 and gelu.shape == x.shape
        np.testing.assert_allclose(gelu, gelu_oracle(x), rtol=1e-5, atol=2e-6)


test_unit_reference_backends_match_oracles()
### BEGIN HIDDEN TESTS
def test_hidden_reference_backends_float64_and_3d():
    x = np.random.default_rng(2).standard_normal((2, 3, 4))
    for backend in (NaiveBackend(), NumpyBackend()):
        assert backend.relu(x).dtype == np.float64
        np.testing.assert_array_equal(backend.relu(x), relu_oracle(x))
        np.testing.assert_allclose(backend.gelu(x), gelu_oracle(x), rtol=1e-12, atol=1e-14)
    images, kernels = np.random.default_rng(3).standard_normal((2, 2, 5, 4)), np.random.default_rng(4).standard_normal((3, 2, 3, 2))
    np.testing.assert_allclose(NumpyBackend().conv2d(images, kernels, 2, 1), NaiveBackend().conv2d(images, kernels, 2, 1),
                               rtol=1e-10, atol=1e-10)
    for backend in (NaiveBackend(), NumpyBackend()):
        np.testing.assert_array_equal(backend.relu([-1.5, 0.0, 2.5]), [0.0, 0.0, 2.5])
        np.testing.assert_allclose(backend.gelu([-1.5, 0.0, 2.5]), gelu_oracle(np.array([-1.5, 0.0, 2.5])), rtol=1e-12)
        np.testing.assert_array_equal(backend.matmul([[1.0, 2.0]], [[3.0], [4.0]]), [[11.0]])


test_hidden_reference_backends_float64_and_3d()
### END HIDDEN TESTS

# %% [markdown]
# ### The optimized backend
#
# Which matmul is fastest depends on the machine and the shape: BLAS is hard to beat on large
# float32 matrices, a compiled kernel without BLAS's per-call set-up can win on others, and the
# answer changes with the thread count. So `OptimizedBackend` does not guess: the first time it
# sees a shape, `kernel_for` **times** each candidate with module 14's `Timer` on the real
# operands and remembers the fastest (`backend.tuned` shows its choices). This is what
# cuDNN's benchmark mode and ATLAS-style autotuners do. It compares the *minimum* of a few runs:
# interference from other processes only ever adds time, so the minimum is the best estimate of
# what a kernel can do (on a busy machine, force a kernel with `matmul_kernel=` instead).
# Other operands (batched, non-float32) go to `vectorized_matmul`. The price: the first call for
# each shape runs every candidate a few times (and compiles module 13's kernels the first time
# they run), so always warm up before timing.
#
# `threads=N` limits BLAS (threadpoolctl) and numba to N threads while the backend is active;
# `activate`/`deactivate` set and restore them.
#
# **A fused epilogue.** After a layer's matmul, the base `linear` makes two more full passes and
# two more arrays (`y + bias`, then the activation). `bias_activation_kernel` (given below) does
# both in one compiled pass, *in place* on the matmul's output, so the layer allocates nothing
# but that output. GPU libraries call this an epilogue (cuBLASLt) or a post-op (oneDNN). It reuses
# your fused GELU formula and `tanh_rational`, so it vectorises for the same reasons.
#
# **Your task.** `matmul`, `relu`, `gelu` and `linear` of `OptimizedBackend`:
# * `matmul`: 2-D float32 operands go to `MATMUL_KERNELS[self.kernel_for(a, b)]`; everything
#   else (and any shape error) to `vectorized_matmul`.
# * `relu`: module 13's `vectorized_relu`.
# * `gelu`: `fused_gelu` for float32, `unfused_gelu` for any other dtype.
# * `linear`: unknown activation → `ValueError`; operands that are not both float32 → the base
#   class's `linear` (`super().linear(...)`). Otherwise fold `x`'s leading dimensions into rows,
#   `self.matmul` them with `weight` (the one allocation), check that the bias (zeros when `None`)
#   has shape `(out_features,)` (a `ValueError` naming both shapes: the kernel does not check
#   bounds), run `bias_activation_kernel` on the output with `ACTIVATIONS[activation]`, and unfold
#   the rows back to `x`'s leading shape.

# %%
#| export
# Candidates for a 2-D float32 matmul; OptimizedBackend measures them and keeps the fastest per shape.
MATMUL_KERNELS = {
    "blas": np.matmul,
    "cache_friendly": cache_friendly_matmul,
    "parallel": parallel_matmul,
}
ZERO_F32 = np.float32(0.0)


@njit(error_model="numpy", fastmath={"contract"})
def bias_activation_kernel(out, bias, activation):
    """out[i, j] = act(out[i, j] + bias[j]) in place, in one pass (activation: a code from ACTIVATIONS)."""
    rows, cols = out.shape
    for i in range(rows):
        for j in range(cols):   # contiguous; LLVM hoists the activation test out of the loop and vectorises it
            v = out[i, j] + bias[j]
            if activation == 1:
                if v < ZERO_F32:   # not max(v, 0): NaN must stay NaN, as in np.maximum
                    v = ZERO_F32
            elif activation == 2:
                v = HALF_F32 * v * (ONE_F32 + tanh_rational(SQRT_2_OVER_PI_F32 * (v + GELU_CUBIC_F32 * v * v * v)))
            out[i, j] = v

# %% [markdown]
# **Compiled unfold and fold for conv2d.** Module 09's `im2col` is `kh·kw` strided NumPy copies
# and `col2im` as many strided `+=` passes, each a full sweep over the data; profiled on a CNN
# layer (the benchmark below), they cost more than the three GEMMs of forward and backward
# together. Compiled, each is one pass. The optimized backend also lays the windows out **per
# image, transposed**: `(N, C·kh·kw, out_h·out_w)`, row `(ch, i, j)` and column `(r, c)`, which
# is module 09's matrix of one image, transposed. Then forward is one batched GEMM,
# `flat (O, C·kh·kw) @ cols[n]`, whose result `(N, O, out_h·out_w)` already *is* the NCHW output
# (no transpose copy), and backward reads the upstream gradient `(N, O, out_h·out_w)` as it comes:
#
# ```
#   d cols[n] = flat.T @ grad[n]      d x = fold(d cols)
#   d weight  = grad (O, N·out_h·out_w) @ cols (C·kh·kw, N·out_h·out_w).T     one GEMM for the batch
# ```
#
# (for `d weight` the unfold writes the batch inside, `window_major=True`, and the gradient is
# transposed to `(O, N, out_h·out_w)`: one large GEMM is faster than N small ones and a sum).
#
# Both kernels read or write a padded copy of the image, so the loops have no bounds tests, and
# `fold` adds the windows' contributions to each pixel in the same `(i, j)` order as `col2im`,
# so its result is bit-identical to module 09's.

# %%
#| export
@njit(cache=True, inline="always")
def unfold_window_row(image_row_source, window_row, i, j, stride, out_h, out_w):
    """window_row[(r, c)] = image_row_source[r·stride + i, c·stride + j]: one kernel offset of one image channel."""
    for r in range(out_h):
        image_row = image_row_source[r * stride + i]
        start = r * out_w
        if stride == 1:   # a contiguous copy LLVM vectorises; the general case gathers
            for c in range(out_w):
                window_row[start + c] = image_row[c + j]
        else:
            for c in range(out_w):
                window_row[start + c] = image_row[c * stride + j]


@njit(cache=True)
def unfold_windows_kernel(padded, kernel_h, kernel_w, stride, out_h, out_w, cols, window_major):
    """cols[n, (ch, i, j), (r, c)] = padded[n, ch, r·stride + i, c·stride + j] for every window
    (window_major: cols[(ch, i, j), n, (r, c)] instead). Writes go through cols in memory order."""
    batch, channels = padded.shape[0], padded.shape[1]
    for ch in range(channels):
        for i in range(kernel_h):
            for j in range(kernel_w):
                window = (ch * kernel_h + i) * kernel_w + j
                if window_major:
                    for n in range(batch):
                        unfold_window_row(padded[n, ch], cols[window, n], i, j, stride, out_h, out_w)
    if not window_major:
        for n in range(batch):
            for ch in range(channels):
                for i in range(kernel_h):
                    for j in range(kernel_w):
                        window = (ch * kernel_h + i) * kernel_w + j
                        unfold_window_row(padded[n, ch], cols[n, window], i, j, stride, out_h, out_w)


@njit(cache=True)
def fold_windows_kernel(cols, kernel_h, kernel_w, stride, out_h, out_w, padded):
    """The adjoint of unfold_windows_kernel: padded[n, ch, r·stride + i, c·stride + j] += cols[n, (ch, i, j), (r, c)]."""
    batch, channels = padded.shape[0], padded.shape[1]
    for n in range(batch):
        for ch in range(channels):
            for i in range(kernel_h):
                for j in range(kernel_w):
                    window_row = cols[n, (ch * kernel_h + i) * kernel_w + j]
                    for r in range(out_h):
                        image_row = padded[n, ch, r * stride + i]
                        start = r * out_w
                        if stride == 1:
                            for c in range(out_w):
                                image_row[c + j] += window_row[start + c]
                        else:
                            for c in range(out_w):
                                image_row[c * stride + j] += window_row[start + c]


COMPILED_CONV_DTYPES = (np.float32, np.float64)   # what the compiled unfold/fold take; other dtypes use module 09's


def unfold_windows(x: np.ndarray, kernel_h: int, kernel_w: int, stride: int = 1, padding: int = 0,
                   window_major: bool = False) -> np.ndarray:
    """(N, C, H, W) -> (N, C·kernel_h·kernel_w, out_h·out_w): module 09's im2col of each image, transposed.

    window_major: return (C·kernel_h·kernel_w, N, out_h·out_w) instead (the same numbers, the batch
    inside), so that reshaped to 2-D it is one GEMM operand for the whole batch.
    """
    x = np.asarray(x)
    out_h, out_w = window_output_size(x.shape, (kernel_h, kernel_w), stride, padding, op="unfold_windows")
    if x.dtype not in COMPILED_CONV_DTYPES:
        raise TypeError(f"unfold_windows takes float32 or float64 images, got {x.dtype}; use module 09's im2col")
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    batch, width = x.shape[0], x.shape[1] * kernel_h * kernel_w
    shape = (width, batch, out_h * out_w) if window_major else (batch, width, out_h * out_w)
    cols = np.empty(shape, dtype=x.dtype)
    unfold_windows_kernel(padded, kernel_h, kernel_w, stride, out_h, out_w, cols, window_major)
    return cols


def fold_windows(cols: np.ndarray, x_shape: tuple, kernel_h: int, kernel_w: int, stride: int = 1,
                 padding: int = 0) -> np.ndarray:
    """The adjoint of unfold_windows: add each window's column back onto the pixels of x_shape it covers."""
    cols = np.asarray(cols)
    out_h, out_w = window_output_size(tuple(x_shape), (kernel_h, kernel_w), stride, padding, op="fold_windows")
    batch, channels, height, width = x_shape
    expected_shape = (batch, channels * kernel_h * kernel_w, out_h * out_w)
    if cols.shape != expected_shape:
        raise ValueError(f"fold_windows: cols of shape {cols.shape} do not come from an input {tuple(x_shape)} with a "
                         f"{kernel_h}x{kernel_w} kernel (stride {stride}, padding {padding}); expected {expected_shape}")
    if cols.dtype not in COMPILED_CONV_DTYPES:
        raise TypeError(f"fold_windows takes float32 or float64 columns, got {cols.dtype}; use module 09's col2im")
    padded = np.zeros((batch, channels, height + 2 * padding, width + 2 * padding), dtype=cols.dtype)
    fold_windows_kernel(np.ascontiguousarray(cols), kernel_h, kernel_w, stride, out_h, out_w, padded)
    return padded[:, :, padding:padding + height, padding:padding + width].copy()


def im2col_conv2d_gradients(x, weight, grad, stride: int, padding: int, needs_grad: tuple) -> tuple:
    """(d x, d weight) by module 09's im2col and col2im, for dtypes the compiled kernels do not take."""
    out_channels, _, kernel_h, kernel_w = weight.shape
    grad_rows = np.ascontiguousarray(grad.transpose(0, 2, 3, 1)).reshape(-1, out_channels)
    grad_x = grad_weight = None
    if needs_grad[1]:
        grad_weight = (grad_rows.T @ im2col(x, kernel_h, kernel_w, stride, padding)).reshape(weight.shape)
    if needs_grad[0]:
        grad_cols = grad_rows @ weight.reshape(out_channels, -1)
        grad_x = col2im(grad_cols, x.shape, kernel_h, kernel_w, stride, padding)
    return grad_x, grad_weight

# %% nbgrader={"grade": false, "grade_id": "optimized-backend", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
class OptimizedBackend(ComputeBackend):
    """Module 13's kernels and fused activations, the matmul kernel chosen by measurement, thread control.

    threads: BLAS and numba threads while active (None: leave them as they are).
    matmul_kernel: "auto" (measure once per shape) or a name in MATMUL_KERNELS to force one.
    """

    name = "optimized"

    def __init__(self, threads: int | None = None, matmul_kernel: str = "auto", tuning_repeats: int = 5):
        if matmul_kernel != "auto" and matmul_kernel not in MATMUL_KERNELS:
            raise ValueError(f"unknown matmul_kernel {matmul_kernel!r}; use 'auto' or one of {sorted(MATMUL_KERNELS)}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be a positive number or None, got {threads}")
        self.threads = threads
        self.matmul_kernel = matmul_kernel
        self.tuning_timer = Timer(warmup=1, repeats=tuning_repeats)
        self.tuned: dict[tuple, str] = {}   # (a.shape, b.shape) -> name of the fastest kernel measured
        self._restore = None   # (BLAS limiter, numba threads) saved by activate

    def kernel_for(self, a: np.ndarray, b: np.ndarray) -> str:
        """Name of the matmul kernel for these float32 operands: forced, or the fastest measured for their shapes."""
        if self.matmul_kernel != "auto":
            return self.matmul_kernel
        key = (a.shape, b.shape)
        if key not in self.tuned:
            seconds = {name: self.tuning_timer.measure(kernel, a, b).min_s for name, kernel in MATMUL_KERNELS.items()}
            self.tuned[key] = min(seconds, key=seconds.get)
        return self.tuned[key]

    def activate(self) -> None:
        if self.threads is None:
            return
        numba_threads = numba.get_num_threads()
        blas_limiter = ThreadpoolController().limit(limits=self.threads, user_api="blas")
        self._restore = (blas_limiter, numba_threads)
        numba.set_num_threads(min(self.threads, numba.config.NUMBA_NUM_THREADS))

    def deactivate(self) -> None:
        if self._restore is None:
            return
        blas_limiter, numba_threads = self._restore
        blas_limiter.restore_original_limits()
        numba.set_num_threads(numba_threads)
        self._restore = None

    def matmul(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ### BEGIN SOLUTION
        a, b = np.asarray(a), np.asarray(b)
        takes_kernels = (a.ndim == 2 and b.ndim == 2 and a.dtype == np.float32 and b.dtype == np.float32
                         and a.shape[1] == b.shape[0])
        if not takes_kernels:
            return vectorized_matmul(a, b)
        return MATMUL_KERNELS[self.kernel_for(a, b)](a, b)
        ### END SOLUTION

    def relu(self, x: np.ndarray) -> np.ndarray:
        ### BEGIN SOLUTION
        return vectorized_relu(np.asarray(x))
        ### END SOLUTION

    def gelu(self, x: np.ndarray) -> np.ndarray:
        ### BEGIN SOLUTION
        x = np.asarray(x)
        return fused_gelu(x) if x.dtype == np.float32 else unfused_gelu(x)
        ### END SOLUTION

    def linear(self, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
               activation: str | None = None) -> np.ndarray:
        ### BEGIN SOLUTION
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; use one of {list(ACTIVATIONS)}")
        x, weight = np.asarray(x), np.asarray(weight)
        if x.dtype != np.float32 or weight.dtype != np.float32:
            return super().linear(x, weight, bias, activation)
        layer_out = self.matmul(x.reshape(-1, x.shape[-1]), weight)
        width = layer_out.shape[1]
        shift = np.zeros(width, np.float32) if bias is None else np.ascontiguousarray(bias, dtype=np.float32)
        if shift.shape != (width,):
            raise ValueError(f"bias of shape {shift.shape} does not fit a layer output of shape {layer_out.shape}")
        bias_activation_kernel(layer_out, shift, ACTIVATIONS[activation])
        return layer_out.reshape(*x.shape[:-1], width)
        ### END SOLUTION

    def conv2d(self, x: np.ndarray, weight: np.ndarray, stride: int = 1, padding: int = 0) -> np.ndarray:
        """Compiled unfold, then one batched GEMM whose result is already NCHW (other dtypes: the base class)."""
        x, weight = np.asarray(x), np.asarray(weight)
        if not (x.dtype == weight.dtype and x.dtype in COMPILED_CONV_DTYPES):
            return super().conv2d(x, weight, stride, padding)
        out_channels, _, kernel_h, kernel_w = weight.shape
        out_h, out_w = conv2d_output_shape(x.shape, weight.shape, stride, padding)[2:]
        cols = unfold_windows(x, kernel_h, kernel_w, stride, padding)
        flat = np.ascontiguousarray(weight.reshape(out_channels, -1))
        return np.matmul(flat, cols).reshape(x.shape[0], out_channels, out_h, out_w)

    def conv2d_backward(self, x: np.ndarray, weight: np.ndarray, grad: np.ndarray, stride: int, padding: int,
                        needs_grad: tuple) -> tuple:
        """(d x, d weight) of conv2d, each None unless asked for: the same products as module 09, on the layout above."""
        x, weight, grad = np.asarray(x), np.asarray(weight), np.asarray(grad)
        out_channels, _, kernel_h, kernel_w = weight.shape
        if not (x.dtype == weight.dtype == grad.dtype and x.dtype in COMPILED_CONV_DTYPES):
            return im2col_conv2d_gradients(x, weight, grad, stride, padding, needs_grad)
        grad_images = np.ascontiguousarray(grad.reshape(grad.shape[0], out_channels, -1))   # (N, O, out_h·out_w)
        flat_width = weight[0].size
        grad_x = grad_weight = None
        if needs_grad[1]:   # one GEMM over the whole batch: (O, N·P) @ (N·P, C·kh·kw)
            cols = unfold_windows(x, kernel_h, kernel_w, stride, padding, window_major=True).reshape(flat_width, -1)
            grad_by_channel = np.ascontiguousarray(grad_images.transpose(1, 0, 2)).reshape(out_channels, -1)
            grad_weight = np.matmul(grad_by_channel, cols.T).reshape(weight.shape)
        if needs_grad[0]:
            flat_t = np.ascontiguousarray(weight.reshape(out_channels, -1).T)
            grad_x = fold_windows(np.matmul(flat_t, grad_images), x.shape, kernel_h, kernel_w, stride, padding)
        return grad_x, grad_weight


# %% nbgrader={"grade": true, "grade_id": "test-optimized-backend", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
def test_unit_optimized_backend_every_kernel_matches_oracle():
    rng = np.random.default_rng(10)
    a = rng.standard_normal((9, 13)).astype(np.float32)
    b = rng.standard_normal((13, 6)).astype(np.float32)
    expected = NaiveBackend().matmul(a.astype(np.float64), b.astype(np.float64))
    for kernel in ["auto", *MATMUL_KERNELS]:
        backend = OptimizedBackend(matmul_kernel=kernel)
        np.testing.assert_allclose(backend.matmul(a, b), expected, rtol=1e-4, atol=1e-4)
    auto = OptimizedBackend()
    auto.matmul(a, b)
    assert auto.tuned[((9, 13), (13, 6))] in MATMUL_KERNELS   # the choice is recorded per shape


def test_unit_optimized_backend_activations_and_fallbacks():
    backend = OptimizedBackend()
    x = np.random.default_rng(1).standard_normal((5, 8)).astype(np.float32) * 3
    np.testing.assert_array_equal(backend.relu(x), relu_oracle(x))
    assert backend.gelu(x).dtype == np.float32
    np.testing.assert_allclose(backend.gelu(x), gelu_oracle(x), rtol=1e-5, atol=2e-6)
    np.testing.assert_allclose(backend.gelu(x.astype(np.float64)), gelu_oracle(x), rtol=1e-12, atol=1e-14)
    batched = np.random.default_rng(2).standard_normal((2, 3, 4))
    np.testing.assert_allclose(backend.matmul(batched, np.eye(4)), batched, rtol=0, atol=0)


def test_unit_optimized_linear_fuses_bias_and_activation():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 20)).astype(np.float32)
    weight = rng.standard_normal((20, 9)).astype(np.float32)
    bias = rng.standard_normal(9).astype(np.float32)
    pre = np.einsum("bi,io->bo", x.astype(np.float64), weight.astype(np.float64)) + bias
    expected = {None: pre, "relu": relu_oracle(pre), "gelu": gelu_oracle(pre)}
    for activation, oracle in expected.items():
        got = OptimizedBackend().linear(x, weight, bias, activation)
        assert got.dtype == np.float32 and got.shape == (6, 9)
        np.testing.assert_allclose(got, oracle, rtol=1e-4, atol=1e-5, err_msg=str(activation))
    big_x = rng.standard_normal((256, 64)).astype(np.float32)
    big_w = rng.standard_normal((64, 512)).astype(np.float32)
    backend = OptimizedBackend(matmul_kernel="blas")
    backend.linear(big_x, big_w, None, "gelu")   # compile first
    stats = MemoryProfiler().measure(backend.linear, big_x, big_w, np.zeros(512, np.float32), "gelu")
    output_bytes = 256 * 512 * 4
    assert stats.peak_bytes <= output_bytes + 64 * 1024, "bias and activation must not allocate"


test_unit_optimized_backend_every_kernel_matches_oracle()
test_unit_optimized_backend_activations_and_fallbacks()
test_unit_optimized_linear_fuses_bias_and_activation()
### BEGIN HIDDEN TESTS
def test_hidden_optimized_backend_shape_error_names_shapes():
    message = expect_error(ValueError, OptimizedBackend().matmul, np.ones((3, 4), np.float32), np.ones((5, 2), np.float32))
    assert "(3, 4)" in message and "(5, 2)" in message
    backend = OptimizedBackend()
    x, weight = np.ones((2, 3, 4), np.float32), np.ones((4, 5), np.float32)
    message = expect_error(ValueError, backend.linear, x, weight, np.ones(4, np.float32))
    assert "(4,)" in message
    expect_error(ValueError, backend.linear, x, weight, None, "swish")
    np.testing.assert_array_equal(backend.linear(x, weight, None, "relu"), np.full((2, 3, 5), 4.0))
    np.testing.assert_allclose(backend.linear(x.astype(np.float64), weight, np.ones(5), "relu"), np.full((2, 3, 5), 5.0))


def test_hidden_optimized_backend_lists_and_float64_accuracy():
    backend = OptimizedBackend()
    np.testing.assert_array_equal(backend.matmul([[1.0, 2.0]], [[3.0], [4.0]]), [[11.0]])
    np.testing.assert_allclose(backend.gelu([-1.5, 0.0, 2.5]), gelu_oracle(np.array([-1.5, 0.0, 2.5])), rtol=1e-12)
    np.testing.assert_allclose(backend.linear([[1.0, 2.0]], [[3.0], [4.0]], None, "relu"), [[11.0]])
    # operands that are not both float32 take the base class's float64 path, not the float32 epilogue
    rng = np.random.default_rng(12)
    x64, w64, b64 = rng.standard_normal((5, 7)), rng.standard_normal((7, 4)), rng.standard_normal(4)
    for weight in (w64, w64.astype(np.float32)):
        got = backend.linear(x64, weight, b64, "gelu")
        expected = gelu_oracle(np.einsum("bi,io->bo", x64, weight.astype(np.float64)) + b64)
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12, err_msg=str(weight.dtype))


test_hidden_optimized_backend_shape_error_names_shapes()
test_hidden_optimized_backend_lists_and_float64_accuracy()
### END HIDDEN TESTS

# %% [markdown]
# ### Switching backends
#
# The registry maps names to backend objects. **Your task.**
#
# * `set_backend(name)`: unknown name → `ValueError` listing `available_backends()`. Otherwise
#   call `deactivate()` on the current backend (if the current matmul backend is one of ours),
#   plug the new backend's `matmul` into module 03's dispatch point under its name
#   (`register_matmul`, then `set_matmul_backend`), and its `conv2d` into module 09's
#   (`register_conv2d` with `backward=` the backend's `conv2d_backward`, then
#   `set_conv2d_backend`), route module 02's activations listed in `ROUTED_ACTIVATIONS` to the
#   backend's methods of the same name (`register_activation_kernel`), call its `activate()`,
#   and return the name of the previous matmul backend.
# * `get_backend()`: the `ComputeBackend` whose name is module 03's current matmul backend; if
#   module 03 is on a matmul that was registered there directly (not through `set_backend`), a
#   `RuntimeError` saying so.
#
# The default (before any `set_backend`) is module 03's own "numpy", so `get_backend()` returns
# the `NumpyBackend` then.

# %%
#| export
_BACKENDS: dict[str, ComputeBackend] = {}
ROUTED_ACTIVATIONS = ("relu", "gelu")   # module 02 activations a backend takes over (by class name)


def register_backend(backend: ComputeBackend) -> None:
    """Make a backend available to set_backend under backend.name (replacing one of that name)."""
    _BACKENDS[backend.name] = backend


def available_backends() -> list[str]:
    return sorted(_BACKENDS)


for _backend in (NaiveBackend(), NumpyBackend(), OptimizedBackend()):
    register_backend(_backend)

# %% nbgrader={"grade": false, "grade_id": "set-backend", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def get_backend() -> ComputeBackend:
    """The ComputeBackend that module 03's matmul currently dispatches to."""
    ### BEGIN SOLUTION
    current_name = get_matmul_backend()
    if current_name not in _BACKENDS:
        raise RuntimeError(f"matmul runs on {current_name!r}, which was registered with module 03 directly, "
                           f"not through set_backend; call set_backend with one of {available_backends()}")
    return _BACKENDS[current_name]
    ### END SOLUTION


def set_backend(name: str) -> str:
    """Run every matmul (and backend_forward's layers) on backend `name`; returns the previous name."""
    ### BEGIN SOLUTION
    if name not in _BACKENDS:
        raise ValueError(f"unknown backend {name!r}; available: {', '.join(available_backends())}")
    outgoing = _BACKENDS.get(get_matmul_backend())
    if outgoing is not None:
        outgoing.deactivate()
    incoming = _BACKENDS[name]
    register_matmul(name, incoming.matmul)
    previous_name = set_matmul_backend(name)
    register_conv2d(name, incoming.conv2d, backward=incoming.conv2d_backward)
    set_conv2d_backend(name)
    for activation in ROUTED_ACTIVATIONS:
        register_activation_kernel(activation, getattr(incoming, activation))
    incoming.activate()
    return previous_name
    ### END SOLUTION


# %% [markdown]
# **`benchmark()`**, a context manager for a quick look: wall time of the block (`time.perf_counter`)
# and, with `trace_memory=True` (the default), its peak traced allocation above the start (module
# 14's `MemoryProfiler.track`). tracemalloc slows Python-level allocation, so for a clean time of
# allocation-heavy Python code pass `trace_memory=False`; for a distribution instead of one
# sample, use module 14's `Timer`. **Your task:** fill in a `BenchmarkResult` with the current
# backend's name, `seconds`, and `peak_bytes` (`None` when memory is not traced). An exception in
# the block still propagates.

# %%
#| export
@dataclass
class BenchmarkResult:
    """What `with benchmark() as b:` measured: one run of the block."""

    backend: str
    seconds: float = float("nan")
    peak_bytes: int | None = None   # peak traced allocation above the start; None if not traced


# %% nbgrader={"grade": false, "grade_id": "benchmark", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
@contextmanager
def benchmark(trace_memory: bool = True):
    """`with benchmark() as b:` times the block and (optionally) its peak memory; b is a BenchmarkResult."""
    ### BEGIN SOLUTION
    measured = BenchmarkResult(backend=get_backend().name)
    tracker = MemoryProfiler().track() if trace_memory else nullcontext()
    with tracker as memory:
        block_start = time.perf_counter()
        try:
            yield measured
        finally:
            measured.seconds = time.perf_counter() - block_start
    if memory is not None:
        measured.peak_bytes = memory.peak_bytes
    ### END SOLUTION


# %% [markdown]
# **`backend_forward(model, x)`** runs a model with every layer the backend knows on the backend.
# Walk the layers of a `Sequential` (a single layer counts as a one-layer model) and keep the data
# as a NumPy array between them:
#
# * a `Linear` (exactly that type: a subclass may have its own `forward`) goes to
#   `backend.linear(data, weight, bias, activation)`; when the *next* layer is a `ReLU` or `GELU`,
#   its name ("relu" / "gelu") is passed as `activation` and that layer is skipped, so the
#   optimized backend fuses it into the epilogue;
# * a `ReLU` or `GELU` on its own goes to `backend.relu` / `backend.gelu`;
# * any other layer is called as usual, on a `Tensor` of the data.
#
# The input may be a `Tensor` or an array (wrap it in a `Tensor` first, for the dtype rules); the
# output is a `Tensor`. The model is never modified.
#
# Fusion must not cut the gradient graph. Keep a `Tensor` between the layers and report each
# step through module 01's seam, so autograd (module 06) can differentiate the fused model: a
# fused layer as `record_op("linear", out, (x, weight, bias), activation=name)` (module 06 has
# the rule for it), a lone activation as `record_op("relu", out, (x,))`, and other layers are
# simply called on the Tensor (they record themselves). Without autograd loaded, reporting costs
# one `if`.

# %% nbgrader={"grade": false, "grade_id": "backend-forward", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def backend_forward(model, x) -> Tensor:
    """model(x) with Linear, ReLU and GELU layers run by the current backend (Linear + activation fused)."""
    ### BEGIN SOLUTION
    backend = get_backend()
    activation_names = {ReLU: "relu", GELU: "gelu"}
    layers = model.layers if isinstance(model, Sequential) else [model]
    current = x if isinstance(x, Tensor) else Tensor(x)
    position = 0
    while position < len(layers):
        layer = layers[position]
        successor = layers[position + 1] if position + 1 < len(layers) else None
        if type(layer) is Linear:
            fused_activation = activation_names.get(type(successor))
            layer_bias = None if layer.bias is None else layer.bias.data
            data = backend.linear(current.data, layer.weight.data, layer_bias, fused_activation)
            current = record_op("linear", Tensor(data), (current, layer.weight, layer.bias), activation=fused_activation)
            position += 2 if fused_activation else 1
            continue
        if type(layer) in activation_names:
            name = activation_names[type(layer)]
            data = backend.relu(current.data) if name == "relu" else backend.gelu(current.data)
            current = record_op(name, Tensor(data), (current,))
        else:
            current = layer(current)
        position += 1
    return current
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-set-backend", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def tiny_mlp():
    return Sequential(Linear(6, 5, seed=0), ReLU(), Linear(5, 4, seed=1), GELU(), Linear(4, 3, seed=2))


def mlp_oracle(model, x):
    """The same model by hand in float64: einsum for the products, np.where for ReLU, the sigmoid form of GELU."""
    first, _, second, _, third = model.layers
    h = np.asarray(x, dtype=np.float64)
    h = np.einsum("bi,io->bo", h, first.weight.data.astype(np.float64)) + first.bias.data
    h = np.where(h > 0, h, 0.0)
    h = np.einsum("bi,io->bo", h, second.weight.data.astype(np.float64)) + second.bias.data
    h = gelu_oracle(h)
    return np.einsum("bi,io->bo", h, third.weight.data.astype(np.float64)) + third.bias.data


def test_unit_set_backend_switches_and_reports():
    original = get_matmul_backend()
    try:
        assert set_backend("naive") == original
        assert get_backend().name == "naive" and isinstance(get_backend(), NaiveBackend)
        assert set_backend("optimized") == "naive"
        assert isinstance(get_backend(), OptimizedBackend)
        message = expect_error(ValueError, set_backend, "gpu")
        assert "gpu" in message and "naive" in message and "optimized" in message
        assert get_backend().name == "optimized"   # a failed switch changes nothing
    finally:
        set_backend("numpy")


def test_unit_set_backend_routes_module_02_activations():
    marker = NumpyBackend()                       # a backend whose ReLU is unmistakable
    marker.name = "marker"
    marker.relu = lambda a: np.full_like(a, 7.0)
    register_backend(marker)
    x = Tensor(np.array([-1.0, 2.0], dtype=np.float32))
    try:
        set_backend("marker")
        np.testing.assert_array_equal(ReLU()(x).data, [7.0, 7.0])   # model code unchanged, kernel swapped
        set_backend("numpy")
        np.testing.assert_array_equal(ReLU()(x).data, [0.0, 2.0])
    finally:
        set_backend("numpy")


def test_unit_same_model_same_outputs_on_every_backend():
    model = tiny_mlp()
    x = np.random.default_rng(0).standard_normal((3, 6)).astype(np.float32)
    expected = mlp_oracle(model, x)
    try:
        for name in ("naive", "numpy", "optimized"):
            set_backend(name)
            np.testing.assert_allclose(model(Tensor(x)).data, expected, rtol=1e-4, atol=1e-5, err_msg=name)
    finally:
        set_backend("numpy")


test_unit_set_backend_switches_and_reports()
test_unit_set_backend_routes_module_02_activations()
test_unit_same_model_same_outputs_on_every_backend()
### BEGIN HIDDEN TESTS
def test_hidden_get_backend_refuses_foreign_matmul():
    try:
        register_matmul("foreign-einsum", lambda a, b: np.einsum("ik,kj->ij", a, b))
        set_matmul_backend("foreign-einsum")
        assert "foreign-einsum" in expect_error(RuntimeError, get_backend)
    finally:
        set_backend("numpy")


test_hidden_get_backend_refuses_foreign_matmul()


def test_hidden_set_backend_calls_the_hooks_and_routes_conv2d():
    events = []
    hooked = NumpyBackend()
    hooked.name = "hooked"
    hooked.activate = lambda: events.append("activate")
    hooked.deactivate = lambda: events.append("deactivate")
    register_backend(hooked)
    try:
        set_backend("hooked")
        assert events == ["activate"], events
        assert set_conv2d_backend("hooked") == "hooked"          # conv2d was routed to it as well
        set_backend("naive")
        assert events == ["activate", "deactivate"], events
        assert set_conv2d_backend("naive") == "naive"
    finally:
        set_backend("numpy")


test_hidden_set_backend_calls_the_hooks_and_routes_conv2d()
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test-benchmark-and-forward", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def test_unit_benchmark_reports_backend_time_and_peak():
    try:
        set_backend("naive")
        with benchmark() as measured:
            layer = Linear(1024, 1024, seed=0)   # allocates a 4 MB weight inside the block
        assert measured.backend == "naive"
        assert measured.seconds >= 0 and math.isfinite(measured.seconds)
        assert layer.weight.data.nbytes <= measured.peak_bytes <= 64 * 2**20
        with benchmark(trace_memory=False) as untraced:
            pass
        assert untraced.peak_bytes is None
    finally:
        set_backend("numpy")


def test_unit_backend_forward_uses_backend_activations():
    model = tiny_mlp()
    x = np.random.default_rng(1).standard_normal((4, 6)).astype(np.float32)
    expected = mlp_oracle(model, x)
    try:
        for name in ("naive", "numpy", "optimized"):
            set_backend(name)
            out = backend_forward(model, x)
            assert isinstance(out, Tensor) and out.dtype == np.float32
            np.testing.assert_allclose(out.data, expected, rtol=1e-4, atol=1e-5, err_msg=name)
    finally:
        set_backend("numpy")


test_unit_benchmark_reports_backend_time_and_peak()
test_unit_backend_forward_uses_backend_activations()
### BEGIN HIDDEN TESTS
def test_hidden_backend_forward_fuses_the_epilogue():
    model = Sequential(Linear(128, 2048, seed=0), GELU())
    x = np.random.default_rng(6).standard_normal((64, 128)).astype(np.float32)
    try:
        set_backend("optimized")
        expected = model(Tensor(x)).data
        np.testing.assert_allclose(backend_forward(model, x).data, expected, rtol=1e-4, atol=1e-5)
        stats = MemoryProfiler().measure(backend_forward, model, x)
    finally:
        set_backend("numpy")
    assert stats.peak_bytes <= 64 * 2048 * 4 + 256 * 1024, "Linear + GELU must allocate only the output"
    np.testing.assert_allclose(backend_forward(GELU(), np.zeros(3, np.float32)).data, 0.0)


test_hidden_backend_forward_fuses_the_epilogue()


def test_hidden_backend_forward_unfused_layers_and_biases():
    # a lone ReLU, a nested Sequential (run as a layer), Linear after Linear, a final fused GELU
    model = Sequential(ReLU(), Linear(6, 5, seed=3), Sequential(Linear(5, 4, seed=4), ReLU()), Linear(4, 4, seed=5),
                       Linear(4, 3, seed=6), GELU())
    linears = [model.layers[1], model.layers[2].layers[0], model.layers[3], model.layers[4]]
    rng = np.random.default_rng(8)
    for layer in linears:                 # biases are zero at first: make leaving one out visible
        layer.bias = Tensor(rng.standard_normal(layer.weight.shape[1]).astype(np.float32))
    w = [(layer.weight.data.astype(np.float64), layer.bias.data.astype(np.float64)) for layer in linears]
    x = rng.standard_normal((4, 6)).astype(np.float32)
    h = np.where(x > 0, x, 0.0)
    h = h @ w[0][0] + w[0][1]
    h = np.where(h @ w[1][0] + w[1][1] > 0, h @ w[1][0] + w[1][1], 0.0)
    h = h @ w[2][0] + w[2][1]
    expected = gelu_oracle(h @ w[3][0] + w[3][1])
    no_bias = Linear(6, 3, bias=False, seed=9)
    try:
        for name in ("naive", "optimized"):
            set_backend(name)
            for given in (x, Tensor(x)):
                np.testing.assert_allclose(backend_forward(model, given).data, expected, rtol=1e-4, atol=1e-5,
                                           err_msg=name)
            np.testing.assert_allclose(backend_forward(no_bias, x).data, x @ no_bias.weight.data.astype(np.float64),
                                       rtol=1e-4, atol=1e-5, err_msg=name)
    finally:
        set_backend("numpy")


test_hidden_backend_forward_unfused_layers_and_biases()


class TensorOnlyLayer:
    """A layer backend_forward does not know: it must be called on a Tensor, as module 03's layers are."""

    def __call__(self, x):
        assert isinstance(x, Tensor), f"other layers are called on a Tensor, got {type(x).__name__}"
        return Tensor(x.data * 2)


def test_hidden_backend_forward_wraps_arrays_and_benchmark_times_the_block():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    for given in (x, Tensor(x)):
        out = backend_forward(Sequential(TensorOnlyLayer(), ReLU()), given)
        assert isinstance(out, Tensor)
        np.testing.assert_array_equal(out.data, 2 * x)
    outer_start = time.perf_counter()
    with benchmark(trace_memory=False) as measured:
        sum(range(10_000))
    outer_span = time.perf_counter() - outer_start
    assert 0 <= measured.seconds <= outer_span, f"the block took at most {outer_span} s, not {measured.seconds} s"


test_hidden_backend_forward_wraps_arrays_and_benchmark_times_the_block()
### END HIDDEN TESTS

# %% [markdown]
# ## Part 5: The same model on every backend
#
# An MLP of the shape used for MNIST (784-256-256-10) runs on each backend with no change to its
# code. The naive backend is pure Python (one interpreted multiply-add at a time), so it runs on
# only a few rows; the table reports time **per row** so the backends compare fairly. Everything
# runs on one thread (BLAS and numba), so the comparison does not depend on what else your machine
# is doing. The outputs are compared too: every backend must agree with the naive one.

# %%
mlp = Sequential(Linear(784, 256, seed=0), ReLU(), Linear(256, 256, seed=1), ReLU(), Linear(256, 10, seed=2))
mlp_batch = np.random.default_rng(0).standard_normal((64, 784)).astype(np.float32)
naive_rows = 1 if QUICK else 4
model_timer = Timer(warmup=2, repeats=5 if QUICK else 20)
per_row_us, outputs = {}, {}
numba_threads = numba.get_num_threads()
numba.set_num_threads(1)
try:
    with threadpool_limits(limits=1):
        set_backend("naive")
        with benchmark(trace_memory=False) as naive_run:
            outputs["naive"] = mlp(Tensor(mlp_batch[:naive_rows])).data
        per_row_us["naive"] = naive_run.seconds / naive_rows * 1e6
        for name in ("numpy", "optimized"):
            set_backend(name)
            outputs[name] = mlp(Tensor(mlp_batch)).data
            per_row_us[name] = model_timer.measure(mlp, Tensor(mlp_batch)).median_s / len(mlp_batch) * 1e6
        per_row_us["optimized + backend_forward"] = (
            model_timer.measure(backend_forward, mlp, mlp_batch).median_s / len(mlp_batch) * 1e6)
        tuned_choices = dict(get_backend().tuned)
finally:
    set_backend("numpy")
    numba.set_num_threads(numba_threads)
print(f"784-256-256-10 MLP, 1 thread; naive on {naive_rows} row(s) (one run), the others on a batch of 64 (median)")
for name, us in per_row_us.items():
    print(f"  {name:<30}{us:>12.1f} us per row   {per_row_us['naive'] / us:>8.0f}x the naive backend")
for name in ("numpy", "optimized"):
    gap = np.max(np.abs(outputs[name][:naive_rows] - outputs["naive"]))
    print(f"  max |{name} - naive| on the shared rows: {gap:.2e}")
mlp_weights = {layer.weight.shape for layer in mlp.layers if isinstance(layer, Linear)}
mlp_choices = {f"{a}@{b}": kernel for (a, b), kernel in tuned_choices.items() if a[0] == len(mlp_batch) and b in mlp_weights}
print(f"  matmul kernels the optimized backend measured and chose: {mlp_choices}")

# %% [markdown]
# ## Summary
#
# * **Vectorise**: a batch of products is one `np.matmul` call; the loop over the batch pays the
#   interpreter per matrix.
# * **Fuse**: GELU as NumPy operators makes nine passes over memory; the compiled kernel makes one
#   and allocates only its output, and it is only fast because every operation in its loop body
#   has a SIMD form (no library `tanh`, no Python-checked division, no float64 literals).
# * **Tile**: the tile size sets the number and size of the blocks; at the NumPy level small tiles
#   drown in call overhead, which is why real tiling lives in compiled kernels and in BLAS.
# * **Dispatch**: one seam (`ComputeBackend`, `set_backend`) moves a whole unchanged model between
#   the naive oracle, NumPy, and measured-fastest kernels with a fused bias-and-activation
#   epilogue; tests hold every backend to the oracle, and speed is measured, never asserted.
#
# `benchmarks/bench_acceleration.py` runs the GELU and MLP comparisons at full size, next to
# PyTorch where it is installed.
