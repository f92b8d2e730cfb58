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
# # Module 13: Kernels
#
# A matrix product of two `n × n` matrices is always `2·n³` floating-point operations. How long
# those operations take depends on things the formula does not show: how the loops walk through
# memory, whether the compiler can use the CPU's vector (SIMD) instructions, how many cores work,
# and how many bytes each number occupies. A **kernel** is a small piece of code written with
# those things in mind. This module builds one kernel for each effect and, after every kernel,
# measures on *your* machine whether it does what its description says.
#
# An earlier, widely used version of this course got three of these wrong, and each mistake is a
# lesson:
#
# | what it claimed | what it did | why that cannot work | what you build instead |
# |---|---|---|---|
# | a "cache-friendly" tiled matmul | six nested **pure-Python** loops | the interpreter costs far more per step than any cache miss, so tiling cannot show | tiled loops **compiled** by numba, measured against BLAS |
# | a "parallel" ReLU | split a NumPy call across threads, then `np.concatenate` | the concatenate copies everything once more | threads writing into **one preallocated** output |
# | an int8 matmul | `x.astype(np.int8)` and int8 sums | 200 becomes -56, sums wrap around silently | **saturating** quantization, **int32** accumulation, exact |
#
# | you write | the claim you then measure |
# |---|---|
# | `time_kernel`, `SimpleProfiler` | timings exclude the warm-up (and JIT compilation); median of repeats; CPU time; peak memory |
# | `matmul_baseline` | the module 03 matmul: the reference every kernel is checked against |
# | `vectorized_relu`, `vectorized_operations` | one NumPy pass per operation; with `out=` ReLU allocates nothing and runs near `np.copyto` speed |
# | `cache_friendly_matmul` | a compiled, tiled, register-blocked matmul: loop order and tiling change the speed |
# | `parallel_relu`, `parallel_batch_processing`, `parallel_matmul` | threads help on big, GIL-free work and cost more than they save on small work |
# | `quantize_int8`, `int8_matmul`, `quantized_matmul`, `quantized_relu` | 4× smaller operands, exact integer accumulation, saturation instead of wrap-around |
# | `final_performance_test` | one table: every kernel against 1-thread BLAS GFLOP/s or `np.copyto` GB/s |
#
# ### numba in one paragraph
#
# `@njit` compiles a Python function to machine code (through LLVM) the first time it is called
# with a given combination of argument types. That first call therefore includes the compilation
# and is slow; **every timing in this module excludes it** by warming up first. `cache=True`
# stores the machine code on disk (a `__pycache__` folder next to the source), so the next run of
# the notebook does not compile again. `fastmath={"contract"}` allows exactly one liberty: fusing
# `a * b + c` into one fused multiply-add (FMA) instruction; NaN and infinity keep their IEEE
# meaning. Setting the environment variable `NUMBA_DISABLE_JIT=1` turns every `@njit` function
# back into plain Python: very slow, but you can step through it with a debugger, and every kernel
# here gives the same results that way (the package tests check it).

# %%
#| default_exp core.kernels

# %%
#| export
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit, prange
from threadpoolctl import threadpool_limits

from tinytorch.core.layers import matmul

# %%
# used by the tests and the analysis cells, not by the kernels
import os

import numba

from tinytorch.core.activations import ReLU
from tinytorch.core.layers import Linear, Sequential, matmul_naive, register_matmul, set_matmul_backend
from tinytorch.core.tensor import Tensor

QUICK = os.environ.get("TITO_AUTOGRADING") == "1"   # shrink sizes and repeats while grading

# %% [markdown]
# ## 1. Measuring a kernel honestly
#
# A single stopwatch reading of a kernel is almost meaningless:
#
# - the **first call** is special: numba compiles, the operating system maps fresh memory pages,
#   caches are cold. Warm up with calls you do not time;
# - the machine is shared with other programs (on a laptop, the browser; on a cloud VM, other
#   tenants), so repeated timings scatter. The **median** of several repeats ignores the rare slow
#   outlier that would drag a mean;
# - **wall time** is what the user waits for; **CPU time** (`time.process_time`, summed over all
#   threads of the process) tells you how much work was done. `cpu / wall ≈ 1` means one busy core;
#   close to the number of threads means they all worked; much less than 1 means waiting;
# - **peak memory**: a kernel that allocates a temporary as large as its input pays for it in
#   time too. `tracemalloc` sees every buffer NumPy allocates. It slows allocations down, so trace
#   one *separate* call, never the timed ones.
#
# Write `time_kernel(fn, *args, warmup=1, repeats=5, **kw)`: call `fn(*args, **kw)` `warmup`
# times untimed, then `repeats` times timed with `time.perf_counter()`; return the result of the
# last call and the **median** time in **microseconds**. `repeats < 1` is a `ValueError`.
#
# Then `SimpleProfiler(warmup=1, repeats=5).profile(fn, *args, **kw)` returning
# `(result, metrics)` with `metrics` holding `wall_us` and `cpu_us` (medians over the repeats),
# `cpu_per_wall` (their ratio) and `peak_memory_bytes` (the most memory allocated, above what was
# allocated before, during one extra traced call). If `tracemalloc` was already tracing (someone
# else is measuring), leave it running.

# %% nbgrader={"grade": false, "grade_id": "timing", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def time_kernel(fn, *args, warmup: int = 1, repeats: int = 5, **kw):
    """(result of the last call, median microseconds of `repeats` timed calls after `warmup` untimed ones).

    The keywords warmup and repeats belong to time_kernel; every other keyword goes to fn.
    """
    ### BEGIN SOLUTION
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    for _ in range(warmup):
        fn(*args, **kw)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn(*args, **kw)
        samples.append(time.perf_counter() - start)
    return result, float(np.median(samples)) * 1e6
    ### END SOLUTION


class SimpleProfiler:
    """Wall time, CPU time and peak memory of a call, after warm-up calls."""

    def __init__(self, warmup: int = 1, repeats: int = 5):
        if repeats < 1:
            raise ValueError(f"repeats must be at least 1, got {repeats}")
        self.warmup = warmup
        self.repeats = repeats

    def profile(self, fn, *args, **kw):
        """(result, metrics): wall_us, cpu_us, cpu_per_wall, peak_memory_bytes, repeats."""
        ### BEGIN SOLUTION
        for _ in range(self.warmup):
            fn(*args, **kw)
        walls, cpus = [], []
        for _ in range(self.repeats):
            wall_start, cpu_start = time.perf_counter(), time.process_time()
            result = fn(*args, **kw)
            cpus.append(time.process_time() - cpu_start)
            walls.append(time.perf_counter() - wall_start)

        # tracemalloc slows every allocation down, so memory is traced on one extra, untimed call
        already_tracing = tracemalloc.is_tracing()
        if not already_tracing:
            tracemalloc.start()
        tracemalloc.reset_peak()
        allocated_before = tracemalloc.get_traced_memory()[0]
        fn(*args, **kw)
        peak = tracemalloc.get_traced_memory()[1] - allocated_before
        if not already_tracing:
            tracemalloc.stop()

        wall_us = float(np.median(walls)) * 1e6
        cpu_us = float(np.median(cpus)) * 1e6
        metrics = {
            "wall_us": wall_us,
            "cpu_us": cpu_us,
            "cpu_per_wall": cpu_us / wall_us if wall_us > 0 else float("nan"),
            "peak_memory_bytes": int(max(peak, 0)),
            "repeats": self.repeats,
        }
        return result, metrics
        ### END SOLUTION


# %% [markdown]
# ### Test: call counts, results and memory
#
# Timings are never asserted (they depend on the machine); what a timer must get right is *how
# often* it calls the function, that it returns the function's result, and, for memory, that a
# 4 MiB allocation shows up while an in-place copy does not.

# %% nbgrader={"grade": true, "grade_id": "test-timing", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_time_kernel_calls_and_result():
    calls = []

    def add(a, b, scale=1):
        calls.append((a, b, scale))
        return (a + b) * scale

    result, micros = time_kernel(add, 2, 3, warmup=2, repeats=4, scale=10)
    assert result == 50
    assert len(calls) == 6 and all(c == (2, 3, 10) for c in calls), calls
    assert isinstance(micros, float) and np.isfinite(micros) and micros >= 0

def test_unit_profiler_metrics():
    calls = []

    def allocate(n):
        calls.append(n)
        return np.ones(n, dtype=np.float32)

    profiler = SimpleProfiler(warmup=1, repeats=3)
    out, metrics = profiler.profile(allocate, 1 << 20)
    assert out.shape == (1 << 20,) and len(calls) == 1 + 3 + 1   # warm-up, timed, traced
    assert {"wall_us", "cpu_us", "cpu_per_wall", "peak_memory_bytes"} <= set(metrics)
    assert np.isfinite(metrics["wall_us"]) and np.isfinite(metrics["cpu_us"])
    # a library function runs where the profiler runs, so its allocation is the one tracemalloc sees
    ones, allocating = profiler.profile(np.ones, 1 << 20, dtype=np.float32)
    assert ones.shape == (1 << 20,) and allocating["peak_memory_bytes"] >= 4 * 2**20   # the 4 MiB result

    src, dst = np.ones(1 << 20, dtype=np.float32), np.empty(1 << 20, dtype=np.float32)
    _, in_place = profiler.profile(np.copyto, dst, src)
    assert in_place["peak_memory_bytes"] < 2**20, in_place       # copying into dst allocates nothing big

test_unit_time_kernel_calls_and_result()
test_unit_profiler_metrics()
### BEGIN HIDDEN TESTS
def test_hidden_timing_edges():
    try:
        time_kernel(abs, -1, repeats=0)
    except ValueError:
        pass
    else:
        raise AssertionError("repeats=0 must raise ValueError")
    result, micros = time_kernel(abs, -7, warmup=0, repeats=1)
    assert result == 7 and micros >= 0
    # tracemalloc belongs to the process the profiler runs in, so the checks go through profilers there.
    # A profiler inside another one's traced call must leave the outer tracing on: else the outer sees nothing.
    outer, inner = SimpleProfiler(warmup=0, repeats=1), SimpleProfiler(warmup=0, repeats=1)
    _, nested = outer.profile(inner.profile, np.ones, 1 << 20, dtype=np.float32)
    assert nested["peak_memory_bytes"] >= 4 * 2**20, "the profiler must not stop someone else's tracing"
    inner.profile(np.zeros, 1000)
    try:
        inner.profile(tracemalloc.take_snapshot)           # works only while tracemalloc is tracing
    except RuntimeError:
        pass
    else:
        raise AssertionError("the profiler must stop the tracing it started")

def test_hidden_timing_units_are_microseconds():
    # No bound on how fast anything runs. time.sleep never returns early, so 0.1 s of it is at least
    # 100,000 us; and a function that times its own span inside the timer's window bounds the report
    # from above (its span plus call overhead, which would have to reach 90% of the span to matter).
    # A us/ms/s/ns slip or a factor 2 lands outside.
    _, micros = time_kernel(time.sleep, 0.1, warmup=0, repeats=3)
    assert micros >= 100_000, f"0.1 s of sleep is at least 100,000 microseconds, got {micros}"
    spans = []
    def nap():
        start = time.perf_counter()
        time.sleep(0.1)
        spans.append(time.perf_counter() - start)
    _, micros = time_kernel(nap, warmup=0, repeats=3)
    assert micros < 1.9 * max(spans) * 1e6, f"spans {spans} s, reported {micros} us"
    spans.clear()
    _, metrics = SimpleProfiler(warmup=0, repeats=3).profile(nap)
    assert metrics["wall_us"] < 1.9 * max(spans) * 1e6, f"spans {spans} s, {metrics}"
    _, metrics = SimpleProfiler(warmup=0, repeats=3).profile(time.sleep, 0.1)
    assert metrics["wall_us"] >= 100_000, f"wall_us of 0.1 s of sleep: {metrics}"
    assert 0 <= metrics["cpu_us"] < metrics["wall_us"] / 2, f"sleeping uses almost no CPU time: {metrics}"
    np.testing.assert_allclose(metrics["cpu_per_wall"], metrics["cpu_us"] / metrics["wall_us"], rtol=1e-9)
    # a call that allocates nothing has a peak of exactly 0 bytes above what was allocated before
    _, idle = SimpleProfiler(warmup=0, repeats=1).profile(abs, -1)
    assert idle["peak_memory_bytes"] == 0, idle

test_hidden_timing_edges()
test_hidden_timing_units_are_microseconds()
### END HIDDEN TESTS

# %% [markdown]
# ## 2. The baseline: module 03's `matmul`
#
# Every kernel in this module is checked against one reference: the `matmul` you wrote in
# module 03, which calls whatever backend is current (NumPy's BLAS by default). Going through the
# dispatch point, not straight to `np.matmul`, keeps this module honest when module 15 swaps
# backends: the baseline is always "what the framework would do".
#
# Write `matmul_baseline(A, B)`: the product as a NumPy array, computed by
# `tinytorch.core.layers.matmul`.

# %% nbgrader={"grade": false, "grade_id": "matmul-baseline", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def matmul_baseline(A, B) -> np.ndarray:
    """A @ B through module 03's dispatch point (`tinytorch.core.layers.matmul`), as an ndarray."""
    ### BEGIN SOLUTION
    return np.asarray(matmul(A, B))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-matmul-baseline", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_matmul_baseline_matches_reference():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((6, 5)).astype(np.float32)
    b = rng.standard_normal((5, 4)).astype(np.float32)
    out = matmul_baseline(a, b)
    assert isinstance(out, np.ndarray) and out.shape == (6, 4)
    np.testing.assert_allclose(out, matmul_naive(a, b), rtol=1e-5, atol=1e-5)

def test_unit_matmul_baseline_uses_dispatch():
    shapes = []

    def recording(x, y):                        # a real kernel that also records its calls
        shapes.append((x.shape, y.shape))
        return np.einsum("ik,kj->ij", x, y)

    register_matmul("recording-13", recording)
    previous = set_matmul_backend("recording-13")
    try:
        matmul_baseline(np.ones((2, 3)), np.ones((3, 4)))
    finally:
        set_matmul_backend(previous)
    assert shapes == [((2, 3), (3, 4))], shapes

test_unit_matmul_baseline_matches_reference()
test_unit_matmul_baseline_uses_dispatch()

# %% [markdown]
# ## 3. Element-wise kernels: one pass over memory
#
# ReLU does one comparison per element. A CPU does billions per second, but each element must
# first come from memory and go back, 4 + 4 bytes for float32, so ReLU on a large array is limited
# by **memory bandwidth**, not arithmetic. The best any element-wise kernel can do is the speed of
# a plain copy, `np.copyto(dst, src)`: the same bytes read and written, no arithmetic at all.
#
# What costs bandwidth is touching memory more than once. `np.maximum(x, 0)` allocates a new
# output every call (the OS hands out fresh pages that must be zeroed and faulted in); a Python
# loop over elements costs an interpreter step each. With `out=` the result goes into an array you
# allocated once, and the kernel is a single read-and-write pass:
#
# ```
#   np.copyto(dst, x)            read x, write dst                      ← the ceiling
#   vectorized_relu(x, out=dst)  read x, compare, write dst             ← should come close
#   vectorized_relu(x)           allocate, read x, compare, write new   ← pays for the allocation
# ```
#
# Write `vectorized_relu(x, out=None)`: `max(x, 0)` element-wise in one NumPy call (NaN stays
# NaN), written into `out` when given; `out` must have `x`'s shape and dtype (`ValueError`
# otherwise). Then `vectorized_operations(x, y)` for two arrays of the same shape (`ValueError`
# naming both shapes otherwise), returning a dict:
#
# | key | value |
# |---|---|
# | `"multiply"`, `"add"` | `x * y`, `x + y` (arrays) |
# | `"squared_difference"` | `(x - y)²` element-wise (array) |
# | `"euclidean_distance"` | `sqrt(Σ (x - y)²)` (float) |
# | `"dot"` | `Σ x·y` over all elements (float) |
#
# Compute `x - y` once and reuse it; `np.dot` on flattened arrays runs the sums through BLAS.

# %% nbgrader={"grade": false, "grade_id": "vectorized-relu", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def vectorized_relu(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """max(x, 0) element-wise in one pass; with `out` (same shape and dtype as x) nothing is allocated."""
    ### BEGIN SOLUTION
    if out is not None and (out.shape != x.shape or out.dtype != x.dtype):
        raise ValueError(f"out has shape {out.shape} and dtype {out.dtype}; it needs x's {x.shape} and {x.dtype}")
    return np.maximum(x, 0, out=out)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-vectorized-relu", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_vectorized_relu():
    x = np.array([[-2.0, 0.0, 3.5], [1e-8, -1e-8, np.inf]], dtype=np.float32)
    expected = np.where(x > 0, x, np.float32(0))
    got = vectorized_relu(x)
    assert got.dtype == np.float32 and got.shape == x.shape
    np.testing.assert_array_equal(got, expected)

    out = np.full_like(x, 99.0)
    assert vectorized_relu(x, out=out) is out
    np.testing.assert_array_equal(out, expected)
    try:
        vectorized_relu(x, out=np.empty((3, 2), dtype=np.float32))
    except ValueError:
        pass
    else:
        raise AssertionError("an out of the wrong shape must raise ValueError")

test_unit_vectorized_relu()
### BEGIN HIDDEN TESTS
def test_hidden_vectorized_relu_nan_and_dtype():
    x = np.array([np.nan, -1.0, 2.0])
    got = vectorized_relu(x)
    assert np.isnan(got[0]) and got[1] == 0.0 and got[2] == 2.0 and got.dtype == np.float64
    try:
        vectorized_relu(x, out=np.empty(3, dtype=np.float32))
    except ValueError:
        pass
    else:
        raise AssertionError("an out of another dtype must raise ValueError")

test_hidden_vectorized_relu_nan_and_dtype()
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "vectorized-operations", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def vectorized_operations(x: np.ndarray, y: np.ndarray) -> dict:
    """multiply, add, squared_difference (arrays), euclidean_distance and dot (floats) of same-shape x, y."""
    ### BEGIN SOLUTION
    x, y = np.asarray(x), np.asarray(y)
    if x.shape != y.shape:
        raise ValueError(f"vectorized_operations needs two arrays of one shape, got {x.shape} and {y.shape}")
    diff = x - y
    flat_diff = diff.ravel()
    return {
        "multiply": x * y,
        "add": x + y,
        "squared_difference": np.square(diff),
        "euclidean_distance": float(np.sqrt(np.dot(flat_diff, flat_diff))),
        "dot": float(np.dot(x.ravel(), y.ravel())),
    }
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-vectorized-operations", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_vectorized_operations():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((3, 7)), rng.standard_normal((3, 7))
    got = vectorized_operations(x, y)
    np.testing.assert_allclose(got["multiply"], np.einsum("ij,ij->ij", x, y), rtol=1e-12)
    np.testing.assert_allclose(got["add"], np.add(y, x), rtol=1e-12)
    np.testing.assert_allclose(got["squared_difference"], (y - x) ** 2, rtol=1e-12)
    np.testing.assert_allclose(got["euclidean_distance"], np.linalg.norm((x - y).ravel()), rtol=1e-12)
    np.testing.assert_allclose(got["dot"], np.einsum("ij,ij->", x, y), rtol=1e-12)
    assert isinstance(got["euclidean_distance"], float) and isinstance(got["dot"], float)

def test_unit_vectorized_operations_shape_error():
    try:
        vectorized_operations(np.ones((2, 3)), np.ones((3, 2)))
    except ValueError as err:
        assert "(2, 3)" in str(err) and "(3, 2)" in str(err)
    else:
        raise AssertionError("different shapes must raise ValueError")

def test_unit_vectorized_operations_lists():
    got = vectorized_operations([1.0, 2.0], [3.0, 5.0])
    np.testing.assert_array_equal(got["multiply"], [3.0, 10.0])
    np.testing.assert_array_equal(got["squared_difference"], [4.0, 9.0])

test_unit_vectorized_operations()
test_unit_vectorized_operations_shape_error()
test_unit_vectorized_operations_lists()
### BEGIN HIDDEN TESTS
def test_hidden_vectorized_operations_hand_values():
    got = vectorized_operations(np.array([1.0, 2.0, 3.0]), np.array([4.0, 6.0, 3.0]))
    np.testing.assert_array_equal(got["multiply"], [4.0, 12.0, 9.0])
    np.testing.assert_array_equal(got["squared_difference"], [9.0, 16.0, 0.0])
    assert got["euclidean_distance"] == 5.0 and got["dot"] == 25.0

test_hidden_vectorized_operations_hand_values()
### END HIDDEN TESTS

# %% [markdown]
# ### Analysis: ReLU against the copy ceiling
#
# Bandwidth counts the bytes each call must move: `x.nbytes` read plus `x.nbytes` written. For
# arrays that fit in the CPU caches the numbers are high; once the array is larger than the last
# cache level, everything comes from main memory. `peak alloc` is what `SimpleProfiler` saw
# allocated during one call.

# %%
relu_sizes = [1 << 14, 1 << 18, 1 << 21] if QUICK else [1 << 14, 1 << 18, 1 << 22, 1 << 24]
profiler = SimpleProfiler(warmup=2, repeats=3 if QUICK else 7)
print(f"{'elements':>10} {'MiB':>7} {'copyto GB/s':>12} {'relu out= GB/s':>15} {'relu alloc GB/s':>16} "
      f"{'out= / copyto':>14} {'peak alloc (out=)':>18} {'peak alloc (new)':>17}")
for size in relu_sizes:
    x = np.random.default_rng(0).standard_normal(size).astype(np.float32)
    dst = np.empty_like(x)
    moved = 2 * x.nbytes
    _, copy = profiler.profile(np.copyto, dst, x)
    _, relu_out = profiler.profile(vectorized_relu, x, dst)
    _, relu_new = profiler.profile(vectorized_relu, x)
    rate = {name: moved / m["wall_us"] / 1e3 for name, m in (("copy", copy), ("out", relu_out), ("new", relu_new))}
    print(f"{size:>10} {x.nbytes / 2**20:>7.2f} {rate['copy']:>12.1f} {rate['out']:>15.1f} {rate['new']:>16.1f} "
          f"{rate['out'] / rate['copy']:>14.2f} {relu_out['peak_memory_bytes']:>18,} {relu_new['peak_memory_bytes']:>17,}")

# %% [markdown]
# Read the last column against the array size: without `out=`, every call allocates a full new
# output. On large arrays that allocation (and the page faults of fresh memory) is often the
# biggest part of the cost; with `out=` ReLU should sit close to the copy. On small arrays both
# are far below the copy: each NumPy call has a fixed cost (argument parsing, type resolution,
# dispatch) that a few kilobytes of work cannot hide; compare the microseconds per call.

# %% [markdown]
# ## 4. Loop order in a compiled matmul
#
# `C[i, j] = Σ_k A[i, k] · B[k, j]`. Three loops, six orders. NumPy arrays are **row-major**:
# `B[k, j]` and `B[k, j + 1]` are neighbours in memory, `B[k, j]` and `B[k + 1, j]` are a whole
# row apart. Two orders matter:
#
# ```
#   ijk: for i, for j, for k:  acc += A[i, k] * B[k, j]     inner loop walks DOWN a column of B
#        (stride n·4 bytes: every step a new cache line) and each add waits for the previous one
#
#   ikj: for i, for k, for j:  C[i, j] += A[i, k] * B[k, j] inner loop walks ALONG rows of B and C
#        (contiguous: the compiler processes 8 or 16 floats per SIMD instruction)
# ```
#
# Both are given, compiled with numba, and exported (`ijk_matmul`, `ikj_matmul`). They share
# `_prepare_matmul`, which does every check **once, in Python, before the compiled loops**: shapes,
# a common float dtype, contiguous inputs, a zeroed output. Keep checks out of compiled loops; the
# analysis below shows why.
#
# Pure-Python loops (module 03's `matmul_naive`) are in the comparison too, at small sizes only:
# every multiply-add is an interpreter step, so they say nothing about caches.

# %%
#| export
FASTMATH = {"contract"}   # allow fused multiply-add (a*b+c in one instruction); keep IEEE NaN/inf rules


def _prepare_matmul(A, B):
    """(A, B, zeroed C): validated once in Python, contiguous, in one float dtype (float32 stays float32)."""
    A, B = np.asarray(A), np.asarray(B)
    if A.ndim != 2 or B.ndim != 2 or A.shape[1] != B.shape[0]:
        raise ValueError(f"kernel matmul needs 2-D (m, k) @ (k, n), got {A.shape} @ {B.shape}")
    dtype = np.result_type(A.dtype, B.dtype, np.float32)
    if dtype.kind != "f":
        raise TypeError(f"kernel matmul works on real floats, got {A.dtype} and {B.dtype}")
    A = np.ascontiguousarray(A, dtype=dtype)
    B = np.ascontiguousarray(B, dtype=dtype)
    return A, B, np.zeros((A.shape[0], B.shape[1]), dtype=dtype)


@njit(cache=True, fastmath=FASTMATH)
def _ijk_kernel(A, B, C):
    for i in range(A.shape[0]):
        for j in range(B.shape[1]):
            acc = C[i, j]
            for k in range(A.shape[1]):
                acc += A[i, k] * B[k, j]      # strided read of B, and a serial chain of adds
            C[i, j] = acc


@njit(cache=True, fastmath=FASTMATH)
def _ikj_kernel(A, B, C):
    for i in range(A.shape[0]):
        c_row = C[i]
        for k in range(A.shape[1]):
            a = A[i, k]
            b_row = B[k]
            for j in range(B.shape[1]):      # contiguous rows: SIMD
                c_row[j] += a * b_row[j]


def ijk_matmul(A, B) -> np.ndarray:
    """A @ B with the i, j, k loop order, compiled (the slow order: for comparison)."""
    A, B, C = _prepare_matmul(A, B)
    _ijk_kernel(A, B, C)
    return C


def ikj_matmul(A, B) -> np.ndarray:
    """A @ B with the i, k, j loop order, compiled (contiguous inner loop, no tiling)."""
    A, B, C = _prepare_matmul(A, B)
    _ikj_kernel(A, B, C)
    return C


# %% [markdown]
# ### Analysis: pure Python, ijk, ikj and BLAS
#
# GFLOP/s = `2·n³ / seconds / 10⁹`. BLAS is limited to one thread (threadpoolctl) so every row
# uses one core. The first call of each numba kernel compiles; `time_kernel`'s warm-up keeps that
# out of the timings (the compile time is printed separately, measured on a fresh size).

# %%
def gflops(n: int, micros: float) -> float:
    return 2 * n**3 / micros / 1e3


start = time.perf_counter()
ikj_matmul(np.ones((3, 2), np.float32), np.ones((2, 3), np.float32))   # compiled now, or loaded from the cache
print(f"first ikj_matmul call (compile or cache load): {(time.perf_counter() - start) * 1e3:.1f} ms")

loop_sizes = [64, 128] if QUICK else [64, 128, 256, 512]
print(f"{'n':>5} {'Python loops':>13} {'ijk':>8} {'ikj':>8} {'BLAS 1 thread':>14}   GFLOP/s; ikj / ijk, BLAS / ikj")
with threadpool_limits(limits=1, user_api="blas"):
    for n in loop_sizes:
        rng = np.random.default_rng(n)
        A = rng.standard_normal((n, n)).astype(np.float32)
        B = rng.standard_normal((n, n)).astype(np.float32)
        reps = 1 if QUICK or n >= 512 else 3
        python_rate = "-"
        if n <= 64:
            _, us = time_kernel(matmul_naive, A, B, warmup=0, repeats=1)
            python_rate = f"{gflops(n, us):.4f}"
        _, ijk_us = time_kernel(ijk_matmul, A, B, repeats=reps)
        _, ikj_us = time_kernel(ikj_matmul, A, B, repeats=reps)
        _, blas_us = time_kernel(np.matmul, A, B, repeats=5)
        print(f"{n:>5} {python_rate:>13} {gflops(n, ijk_us):>8.2f} {gflops(n, ikj_us):>8.2f} {gflops(n, blas_us):>14.1f}"
              f"   {ijk_us / ikj_us:.1f}x, {ikj_us / blas_us:.1f}x")

# %% [markdown]
# ## 5. Tiling and register blocking: `cache_friendly_matmul`
#
# `ikj` streams all of `B` once **per row of C**. While `B` fits in a cache that is cheap; once it
# does not (`n = 1024` float32 is 4 MiB), every row of `C` reads `B` from main memory again.
# And even from cache, every multiply-add in `ikj` loads and stores `C[i, j]`: the CPU moves
# more data than it computes.
#
# Two fixes, used together in every fast matmul:
#
# **Cache tiling.** Cut the matrices into `block_size × block_size` tiles and multiply tile by
# tile. A tile of `B` is loaded into cache once and used by every row of the `A` tile before
# moving on:
#
# ```
#   for i0 in range(0, n, bs):             rows of C, one tile at a time
#     for k0 in range(0, K, bs):           ... times one tile of A and one tile of B
#       for j0 in range(0, m, bs):
#         C[i0:i1, j0:j1] += A[i0:i1, k0:k1] @ B[k0:k1, j0:j1]      ← _matmul_tile
# ```
#
# **Register blocking** inside a tile. Take **4 rows of C and 4 steps of k** at once. For each
# column `j`, the inner loop loads `B[k..k+3, j]` once and uses each value for 4 rows; it loads
# and stores each `C[i, j]` once per **4** multiply-adds instead of once per one. The 16 values
# `A[i..i+3, k..k+3]` are plain local variables, so the compiler keeps them in registers:
#
# ```
#   c0[j] += a00*b0[j] + a01*b1[j] + a02*b2[j] + a03*b3[j]     c0 = C[i,   j0:j1]   b0 = B[k,   j0:j1]
#   c1[j] += a10*b0[j] + a11*b1[j] + a12*b2[j] + a13*b3[j]     c1 = C[i+1, j0:j1]   b1 = B[k+1, j0:j1]
#   c2[j] += ...                                                ...
#   c3[j] += ...
# ```
#
# Rows and k-steps left over (when a tile's height or depth is not a multiple of 4) go to the
# given `_ikj_tile`, the plain one-row, one-k version.
#
# ### Two traps that silently cost several times the speed
#
# Both compile without a warning and give correct results; they only stop LLVM from using SIMD.
#
# 1. **Inner loops over an offset range.** numba supports negative indices, so `C[i, j]` compiles
#    to "if `j < 0`, add the length". In `for j in range(j0, j1)` the compiler cannot prove
#    `j ≥ 0` (it does not know `j0`), keeps the check in every iteration and gives up on SIMD.
#    Take **views** first, `c = C[i, j0:j1]`, and loop `for j in range(j1 - j0)`: `j` starts at 0,
#    the check disappears, the loop vectorises.
# 2. **Python-style error checks inside the hot loop** (`if not np.isfinite(b[j]): raise ...`).
#    A possible exception in the middle of the loop forces element-by-element order. Validate
#    once, before the compiled loops (`_prepare_matmul`, or one `np.isfinite(B).all()`).
#
# The analysis after the test measures both on your machine.
#
# Write `_matmul_tile` (the register-blocked tile update), `_tiled_matmul_kernel` (the three tile
# loops; clip each tile at the matrix edge with `min`), and `cache_friendly_matmul(A, B,
# block_size=256)`: `block_size < 1` is a `ValueError`; use `_prepare_matmul`; return `C`.

# %%
#| export
@njit(cache=True, fastmath=FASTMATH)
def _ikj_tile(A, B, C, i0, i1, k0, k1, j0, j1):
    """C[i0:i1, j0:j1] += A[i0:i1, k0:k1] @ B[k0:k1, j0:j1], one row and one k at a time (the edges)."""
    width = j1 - j0
    for i in range(i0, i1):
        c_row = C[i, j0:j1]
        for k in range(k0, k1):
            a = A[i, k]
            b_row = B[k, j0:j1]
            for j in range(width):
                c_row[j] += a * b_row[j]


# %% nbgrader={"grade": false, "grade_id": "cache-friendly-matmul", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
@njit(cache=True, fastmath=FASTMATH)
def _matmul_tile(A, B, C, i0, i1, k0, k1, j0, j1):
    """C[i0:i1, j0:j1] += A[i0:i1, k0:k1] @ B[k0:k1, j0:j1]: 4 rows x 4 k-steps per pass, edges by _ikj_tile."""
    ### BEGIN SOLUTION
    i_end = i0 + (i1 - i0) // 4 * 4      # rows [i0, i_end) go four at a time
    k_end = k0 + (k1 - k0) // 4 * 4      # k in [k0, k_end) goes four at a time
    width = j1 - j0
    for i in range(i0, i_end, 4):
        # views that start at column j0, so the innermost loop runs from 0 and vectorises
        c0, c1, c2, c3 = C[i, j0:j1], C[i + 1, j0:j1], C[i + 2, j0:j1], C[i + 3, j0:j1]
        for k in range(k0, k_end, 4):
            b0, b1, b2, b3 = B[k, j0:j1], B[k + 1, j0:j1], B[k + 2, j0:j1], B[k + 3, j0:j1]
            a00, a01, a02, a03 = A[i, k], A[i, k + 1], A[i, k + 2], A[i, k + 3]
            a10, a11, a12, a13 = A[i + 1, k], A[i + 1, k + 1], A[i + 1, k + 2], A[i + 1, k + 3]
            a20, a21, a22, a23 = A[i + 2, k], A[i + 2, k + 1], A[i + 2, k + 2], A[i + 2, k + 3]
            a30, a31, a32, a33 = A[i + 3, k], A[i + 3, k + 1], A[i + 3, k + 2], A[i + 3, k + 3]
            for j in range(width):
                # each B value is loaded once and used by four rows; each C value once per 4 k-steps
                c0[j] += a00 * b0[j] + a01 * b1[j] + a02 * b2[j] + a03 * b3[j]
                c1[j] += a10 * b0[j] + a11 * b1[j] + a12 * b2[j] + a13 * b3[j]
                c2[j] += a20 * b0[j] + a21 * b1[j] + a22 * b2[j] + a23 * b3[j]
                c3[j] += a30 * b0[j] + a31 * b1[j] + a32 * b2[j] + a33 * b3[j]
    _ikj_tile(A, B, C, i0, i_end, k_end, k1, j0, j1)   # the last (k1 - k0) % 4 steps of those rows
    _ikj_tile(A, B, C, i_end, i1, k0, k1, j0, j1)      # the last (i1 - i0) % 4 rows, all k
    ### END SOLUTION


@njit(cache=True, fastmath=FASTMATH)
def _tiled_matmul_kernel(A, B, C, block_size):
    """C += A @ B, one block_size x block_size tile at a time (tiles clipped at the edges)."""
    ### BEGIN SOLUTION
    n_rows, inner = A.shape
    n_cols = B.shape[1]
    for i0 in range(0, n_rows, block_size):
        i1 = min(i0 + block_size, n_rows)
        for k0 in range(0, inner, block_size):
            k1 = min(k0 + block_size, inner)
            for j0 in range(0, n_cols, block_size):
                _matmul_tile(A, B, C, i0, i1, k0, k1, j0, min(j0 + block_size, n_cols))
    ### END SOLUTION


def cache_friendly_matmul(A, B, block_size: int = 256) -> np.ndarray:
    """A @ B by tiles of block_size x block_size, register-blocked inside each tile, compiled with numba."""
    ### BEGIN SOLUTION
    if block_size < 1:
        raise ValueError(f"block_size must be a positive number of rows and columns, got {block_size}")
    A, B, C = _prepare_matmul(A, B)
    _tiled_matmul_kernel(A, B, C, int(block_size))
    return C
    ### END SOLUTION


# %% [markdown]
# ### Test: every tile size and every edge against the baseline
#
# Sizes that are not multiples of 4 or of the block size exercise the edge code; block sizes of
# 1, 3 and larger than the matrix are all legal. float32 sums in a different order than BLAS, so
# the tolerance scales with the inner dimension.

# %% nbgrader={"grade": true, "grade_id": "test-cache-friendly-matmul", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def test_unit_cache_friendly_matmul_shapes_and_blocks():
    rng = np.random.default_rng(5)
    for m, k, n in [(1, 1, 1), (4, 4, 4), (7, 9, 5), (33, 17, 21), (64, 64, 64)]:
        A = rng.standard_normal((m, k)).astype(np.float32)
        B = rng.standard_normal((k, n)).astype(np.float32)
        reference = matmul_baseline(A, B)
        for block in (1, 3, 8, 16, 100):
            got = cache_friendly_matmul(A, B, block_size=block)
            assert got.shape == (m, n) and got.dtype == np.float32, (got.shape, got.dtype)
            np.testing.assert_allclose(got, reference, rtol=1e-4, atol=1e-5 * k, err_msg=f"{m}x{k}x{n}, block {block}")

def test_unit_cache_friendly_matmul_checks():
    for bad_block in (0, -4):
        try:
            cache_friendly_matmul(np.ones((2, 2)), np.ones((2, 2)), block_size=bad_block)
        except ValueError as err:
            assert "block_size" in str(err), f"say that block_size is the problem: {err}"
        else:
            raise AssertionError(f"block_size={bad_block} must raise ValueError")
    try:
        cache_friendly_matmul(np.ones((2, 3)), np.ones((2, 3)))
    except ValueError:
        pass
    else:
        raise AssertionError("(2, 3) @ (2, 3) must raise ValueError")

test_unit_cache_friendly_matmul_shapes_and_blocks()
test_unit_cache_friendly_matmul_checks()
### BEGIN HIDDEN TESTS
def test_hidden_cache_friendly_matmul_views_and_float64():
    rng = np.random.default_rng(6)
    big = rng.standard_normal((40, 30))
    A, B = big[::2, 1:11], big[5:15, ::3]          # strided, non-contiguous views
    got = cache_friendly_matmul(A, B, block_size=6)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, np.einsum("ik,kj->ij", A, B), rtol=1e-10, atol=1e-10)
    ints = np.arange(12).reshape(3, 4)
    np.testing.assert_array_equal(cache_friendly_matmul(ints, ints.T, block_size=2), ints @ ints.T)

test_hidden_cache_friendly_matmul_views_and_float64()

def test_hidden_matmul_tile_stays_inside_its_views():
    # Compiled code does not check indices (numba's default), so a view one element short still
    # "works" there by writing past its end. As plain Python (.py_func) every index is checked.
    rng = np.random.default_rng(7)
    A, B = rng.standard_normal((9, 10)), rng.standard_normal((10, 11))
    C = np.zeros((9, 11))
    _matmul_tile.py_func(A, B, C, 0, 9, 0, 10, 0, 11)
    _matmul_tile.py_func(A, B, C, 1, 9, 2, 10, 3, 11)

test_hidden_matmul_tile_stays_inside_its_views()
### END HIDDEN TESTS

# %% [markdown]
# ### Analysis: the traps, the block size, and the sizes
#
# The two trap kernels below are the `ikj` loop with one change each (not exported: they exist
# to be measured). Then `block_size` is swept at one size, and the kernels compared as `n` grows.

# %%
@njit(cache=True, fastmath=FASTMATH)
def trap_offset_range(A, B, C, j0, j1):
    """ikj over columns [j0, j1) indexed directly: the negative-index check stays in the loop."""
    for i in range(A.shape[0]):
        for k in range(A.shape[1]):
            a = A[i, k]
            for j in range(j0, j1):
                C[i, j] += a * B[k, j]


@njit(cache=True, fastmath=FASTMATH)
def trap_check_in_loop(A, B, C, j0, j1):
    """The same loop on views, validating every element of B inside the hot loop."""
    for i in range(A.shape[0]):
        c_row = C[i, j0:j1]
        for k in range(A.shape[1]):
            a = A[i, k]
            b_row = B[k, j0:j1]
            for j in range(j1 - j0):
                if not np.isfinite(b_row[j]):
                    raise ValueError("B holds a NaN or an infinity")
                c_row[j] += a * b_row[j]


def run_into(kernel):
    def run(A, B):
        C = np.zeros((A.shape[0], B.shape[1]), dtype=A.dtype)
        kernel(A, B, C, 0, B.shape[1])
        return C
    return run


n = 128 if QUICK else 512
rng = np.random.default_rng(7)
A = rng.standard_normal((n, n)).astype(np.float32)
B = rng.standard_normal((n, n)).astype(np.float32)
reference = matmul_baseline(A, B)
_, clean_us = time_kernel(ikj_matmul, A, B, repeats=3)
print(f"n={n}: ikj on views {gflops(n, clean_us):.2f} GFLOP/s")
for name, kernel in (("offset range", trap_offset_range), ("check in loop", trap_check_in_loop)):
    out, us = time_kernel(run_into(kernel), A, B, repeats=3)
    np.testing.assert_allclose(out, reference, rtol=1e-3, atol=1e-3)    # correct, only slow
    print(f"  trap: {name:14} {gflops(n, us):7.2f} GFLOP/s -> {us / clean_us:.1f}x slower than ikj on views")

# %%
block_sizes = [4, 32, 128] if QUICK else [4, 16, 32, 64, 128, 256, 512]
print(f"n={n}, cache_friendly_matmul by block_size (GFLOP/s):")
for block in block_sizes:
    out, us = time_kernel(cache_friendly_matmul, A, B, block_size=block, repeats=3)
    np.testing.assert_allclose(out, reference, rtol=1e-3, atol=1e-3)
    print(f"  block_size {block:>4}: {gflops(n, us):7.2f}")

# %%
tile_sizes = [128, 256] if QUICK else [256, 512, 1024]
print(f"{'n':>5} {'ikj':>8} {'tiled':>8} {'BLAS 1 thread':>14}  GFLOP/s; tiled / ikj, tiled / BLAS")
with threadpool_limits(limits=1, user_api="blas"):
    for n in tile_sizes:
        rng = np.random.default_rng(n)
        A = rng.standard_normal((n, n)).astype(np.float32)
        B = rng.standard_normal((n, n)).astype(np.float32)
        _, ikj_us = time_kernel(ikj_matmul, A, B, repeats=3)
        _, tiled_us = time_kernel(cache_friendly_matmul, A, B, repeats=3)
        _, blas_us = time_kernel(np.matmul, A, B, repeats=5)
        print(f"{n:>5} {gflops(n, ikj_us):>8.2f} {gflops(n, tiled_us):>8.2f} {gflops(n, blas_us):>14.1f}"
              f"  {ikj_us / tiled_us:.2f}x, {blas_us / tiled_us:.2f}")

# %% [markdown]
# What is still missing to reach BLAS: BLAS **packs** tiles into contiguous buffers, keeps a whole
# block of `C` in registers across the full `k` loop (not 4 steps), uses the widest SIMD the CPU
# has, and is tuned per CPU model (the kernel name threadpoolctl reports). Those are the next
# steps if you want to push further; the benchmark (`python -m benchmarks kernels`) tracks the
# ratio.

# %% [markdown]
# ## 6. Threads: where they pay off
#
# A Python thread runs Python code only while it holds the **GIL** (global interpreter lock), so
# two threads running Python loops take turns. NumPy **releases the GIL** inside its C loops (and
# so do BLAS and numba's `nogil`/`parallel` code), so threads calling NumPy on *different chunks*
# really run at the same time. Threads cost something, though: **starting** one costs far more
# than **handing work** to one that is already running (and on a busy machine a new thread may
# wait a whole scheduler time slice before it runs at all). So real frameworks start their
# threads once and keep them (PyTorch's intra-op pool); the given `_persistent_pool(num_workers)`
# does the same: created on first use, reused by every call.
#
# ```
#   x (one array)  ──split──▶  [chunk 0][chunk 1] ... [chunk w-1]        views, no copies
#                                 │        │              │
#   out (allocated ONCE) ◀──── each thread: vectorized_relu(chunk, out=its slice of out)
# ```
#
# No `np.concatenate`: each thread writes its slice of the one output, so the bytes move once.
#
# Write:
#
# - `parallel_relu(x, num_workers=2, out=None)`: flatten `x` (a view when contiguous), split it
#   into `num_workers` nearly equal contiguous ranges, run `vectorized_relu` on each range in a
#   `_persistent_pool(num_workers)`, writing into the matching range of `out` (allocated once if
#   not given; it must be C-contiguous with `x`'s shape and dtype). Wait for every future with
#   `.result()` so a worker's exception reaches the caller. `num_workers < 1` is a `ValueError`.
# - `parallel_batch_processing(batch, op, num_workers=2)`: `[op(item) for item in batch]`
#   computed by a thread pool, **in the input order**. Use a fresh `ThreadPoolExecutor` here, not
#   the persistent one: `op` may itself use threads, and tasks that wait for other tasks queued in
#   the same pool can wait forever (a deadlock). Each item is large work, so starting the pool is
#   a small cost.
# - `parallel_matmul(A, B, block_size=64)`: the tiled matmul with the row-tile loop as numba's
#   `prange`, compiled with `parallel=True`. Each iteration owns whole row tiles of `C`, so no two
#   threads ever write the same element (no locks needed).

# %%
#| export
_POOLS: dict = {}   # num_workers -> ThreadPoolExecutor, kept for the life of the process


def _persistent_pool(num_workers: int) -> ThreadPoolExecutor:
    """A pool of num_workers threads, started on first use and reused by every later call."""
    pool = _POOLS.get(num_workers)
    if pool is None:
        # an executor starts its threads lazily, so a pool that loses this race costs nothing
        pool = _POOLS.setdefault(num_workers, ThreadPoolExecutor(num_workers, thread_name_prefix="tinytorch-relu"))
    return pool


# %% nbgrader={"grade": false, "grade_id": "parallel-cpu", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def parallel_relu(x: np.ndarray, num_workers: int = 2, out: np.ndarray | None = None) -> np.ndarray:
    """ReLU by num_workers threads over contiguous chunks, all writing into one preallocated output."""
    ### BEGIN SOLUTION
    if num_workers < 1:
        raise ValueError(f"num_workers must be at least 1, got {num_workers}")
    x = np.ascontiguousarray(x)
    if out is None:
        out = np.empty_like(x)
    elif out.shape != x.shape or out.dtype != x.dtype or not out.flags.c_contiguous:
        raise ValueError(f"out must be C-contiguous with x's shape {x.shape} and dtype {x.dtype}")
    flat_x, flat_out = x.reshape(-1), out.reshape(-1)     # views, not copies: both are contiguous
    edges = np.linspace(0, flat_x.size, num_workers + 1).astype(np.int64)
    pool = _persistent_pool(num_workers)
    futures = [pool.submit(vectorized_relu, flat_x[lo:hi], flat_out[lo:hi]) for lo, hi in zip(edges[:-1], edges[1:])]
    for future in futures:
        future.result()                                     # re-raises a worker's exception here
    return out
    ### END SOLUTION


def parallel_batch_processing(batch, op, num_workers: int = 2) -> list:
    """[op(item) for item in batch], computed by num_workers threads, results in input order."""
    ### BEGIN SOLUTION
    if num_workers < 1:
        raise ValueError(f"num_workers must be at least 1, got {num_workers}")
    with ThreadPoolExecutor(max_workers=num_workers) as pool:
        return list(pool.map(op, batch))                    # map yields in submission order
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-parallel-cpu", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_parallel_relu():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((37, 11)).astype(np.float32)      # 407 elements: chunks of unequal size
    expected = np.where(x > 0, x, np.float32(0))
    for workers in (1, 2, 3, 8):
        got = parallel_relu(x, num_workers=workers)
        assert got.shape == x.shape and got.dtype == x.dtype
        np.testing.assert_array_equal(got, expected)
    out = np.full_like(x, -5.0)
    assert parallel_relu(x, num_workers=4, out=out) is out
    np.testing.assert_array_equal(out, expected)
    try:
        parallel_relu(x, num_workers=0)
    except ValueError as err:
        assert "num_workers" in str(err), f"say that num_workers is the problem: {err}"
    else:
        raise AssertionError("num_workers=0 must raise ValueError")

def test_unit_parallel_batch_processing_order():
    rng = np.random.default_rng(9)
    # items of very different cost, so they finish out of order: results must not
    batch = [rng.standard_normal((size, size)) for size in (200, 3, 120, 1, 60, 2)]
    got = parallel_batch_processing(batch, lambda m: float(np.trace(m @ m)), num_workers=3)
    assert got == [float(np.trace(m @ m)) for m in batch]
    assert parallel_batch_processing([], abs) == []
    assert parallel_batch_processing([-1, 2, -3], abs, num_workers=1) == [1, 2, 3]   # one worker is legal
    try:
        parallel_batch_processing([1], abs, num_workers=0)
    except ValueError as err:
        assert "num_workers" in str(err), f"say that num_workers is the problem: {err}"
    else:
        raise AssertionError("num_workers=0 must raise ValueError")

test_unit_parallel_relu()
test_unit_parallel_batch_processing_order()
### BEGIN HIDDEN TESTS
def test_hidden_parallel_relu_views_and_errors():
    base = np.random.default_rng(10).standard_normal((20, 20))
    view = base[::2, ::3]                                     # non-contiguous input
    np.testing.assert_array_equal(parallel_relu(view, num_workers=3), np.where(view > 0, view, 0.0))
    tiny = np.array([-1.0, 2.0])
    np.testing.assert_array_equal(parallel_relu(tiny, num_workers=5), [0.0, 2.0])   # more workers than elements
    try:
        parallel_relu(tiny, out=np.empty((4, 2))[:, 0])
    except ValueError:
        pass
    else:
        raise AssertionError("a non-contiguous out must raise ValueError")

def test_hidden_parallel_batch_exception():
    def fails_on_three(v):
        if v == 3:
            raise KeyError(v)
        return v
    try:
        parallel_batch_processing([1, 2, 3, 4], fails_on_three, num_workers=2)
    except KeyError:
        pass
    else:
        raise AssertionError("an exception in op must reach the caller")

test_hidden_parallel_relu_views_and_errors()
test_hidden_parallel_batch_exception()
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "parallel-matmul", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
@njit(cache=True, parallel=True, fastmath=FASTMATH)
def _parallel_matmul_kernel(A, B, C, block_size):
    """C += A @ B with row tiles spread over numba's threads (prange); each thread owns its rows of C."""
    ### BEGIN SOLUTION
    n_rows, inner = A.shape
    n_cols = B.shape[1]
    n_row_tiles = (n_rows + block_size - 1) // block_size
    for tile in prange(n_row_tiles):
        i0 = tile * block_size
        i1 = min(i0 + block_size, n_rows)
        for k0 in range(0, inner, block_size):
            k1 = min(k0 + block_size, inner)
            for j0 in range(0, n_cols, block_size):
                _matmul_tile(A, B, C, i0, i1, k0, k1, j0, min(j0 + block_size, n_cols))
    ### END SOLUTION


def parallel_matmul(A, B, block_size: int = 64) -> np.ndarray:
    """A @ B by the tiled kernel with row tiles run in parallel (numba.set_num_threads sets how many)."""
    ### BEGIN SOLUTION
    if block_size < 1:
        raise ValueError(f"block_size must be a positive number of rows and columns, got {block_size}")
    A, B, C = _prepare_matmul(A, B)
    _parallel_matmul_kernel(A, B, C, int(block_size))
    return C
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-parallel-matmul", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_parallel_matmul():
    rng = np.random.default_rng(11)
    for m, k, n, block in [(1, 1, 1, 64), (9, 7, 5, 2), (70, 33, 45, 16), (64, 64, 64, 64)]:
        A = rng.standard_normal((m, k)).astype(np.float32)
        B = rng.standard_normal((k, n)).astype(np.float32)
        got = parallel_matmul(A, B, block_size=block)
        assert got.shape == (m, n) and got.dtype == np.float32
        np.testing.assert_allclose(got, matmul_baseline(A, B), rtol=1e-4, atol=1e-5 * k)

test_unit_parallel_matmul()
### BEGIN HIDDEN TESTS
def test_hidden_parallel_matmul_one_thread_and_errors():
    rng = np.random.default_rng(12)
    A, B = rng.standard_normal((30, 20)).astype(np.float32), rng.standard_normal((20, 10)).astype(np.float32)
    for block in (1, 8, 64):                               # 64: one row tile, so a single thread does it all
        np.testing.assert_allclose(parallel_matmul(A, B, block_size=block), A @ B, rtol=1e-4, atol=1e-4)
    try:
        parallel_matmul(A, B, block_size=0)
    except ValueError:
        pass
    else:
        raise AssertionError("block_size=0 must raise ValueError")

test_hidden_parallel_matmul_one_thread_and_errors()
### END HIDDEN TESTS

# %% [markdown]
# ### Analysis: overhead against work
#
# The speed-up of two workers over one call, for growing arrays, with the persistent pool and
# with a pool started on every call (`fresh_pool_relu`, below: what `parallel_relu` would cost
# without `_persistent_pool`). On small arrays the hand-off costs more than the whole ReLU; on
# arrays beyond the caches, ReLU is bound by memory bandwidth, which two cores may or may not
# share well. Then the parallel matmul, where each thread has
# `O(n³)` work for `O(n²)` data: that is where threads pay off. `cpu / wall` (from
# `SimpleProfiler`) shows how many cores were busy. These numbers vary from run to run on a
# shared machine; they are reported, never asserted.

# %%
cores = os.cpu_count()
print(f"{cores} CPU cores; numba uses up to {numba.config.NUMBA_NUM_THREADS} threads")
def fresh_pool_relu(x, out):
    """parallel_relu's work with two threads started (and joined) on every call."""
    half = x.size // 2
    with ThreadPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(vectorized_relu, x[:half], out[:half]), pool.submit(vectorized_relu, x[half:], out[half:])]:
            future.result()
    return out


print(f"{'elements':>10} {'1 call (us)':>12} {'2 workers (us)':>15} {'speed-up':>9} {'fresh pool (us)':>16} {'speed-up':>9}")
for size in ([1 << 10, 1 << 16, 1 << 20] if QUICK else [1 << 10, 1 << 14, 1 << 18, 1 << 22, 1 << 24]):
    x = np.random.default_rng(0).standard_normal(size).astype(np.float32)
    dst = np.empty_like(x)
    _, one_us = time_kernel(vectorized_relu, x, dst, repeats=5)
    _, two_us = time_kernel(parallel_relu, x, 2, dst, repeats=5)
    _, fresh_us = time_kernel(fresh_pool_relu, x, dst, repeats=5)
    np.testing.assert_array_equal(dst, np.where(x > 0, x, np.float32(0)))
    print(f"{size:>10} {one_us:>12.1f} {two_us:>15.1f} {one_us / two_us:>8.2f}x {fresh_us:>16.1f} {one_us / fresh_us:>8.2f}x")

# %%
n = 192 if QUICK else 768
rng = np.random.default_rng(13)
A = rng.standard_normal((n, n)).astype(np.float32)
B = rng.standard_normal((n, n)).astype(np.float32)
profiler = SimpleProfiler(warmup=1, repeats=3)
all_threads = numba.get_num_threads()
results = {}
for threads in sorted({1, all_threads}):
    numba.set_num_threads(threads)
    try:
        out, results[threads] = profiler.profile(parallel_matmul, A, B)
    finally:
        numba.set_num_threads(all_threads)
    np.testing.assert_allclose(out, matmul_baseline(A, B), rtol=1e-3, atol=1e-3)
for threads, m in results.items():
    print(f"parallel_matmul n={n}, {threads} thread(s): {gflops(n, m['wall_us']):6.2f} GFLOP/s, "
          f"cpu/wall {m['cpu_per_wall']:.2f}, speed-up over 1 thread {results[1]['wall_us'] / m['wall_us']:.2f}x")

# %%
# parallel_batch_processing: a batch of independent matmuls; BLAS releases the GIL
side = 128 if QUICK else 256
batch = [np.random.default_rng(i).standard_normal((side, side)).astype(np.float32) for i in range(8 if QUICK else 24)]
with threadpool_limits(limits=1, user_api="blas"):               # one BLAS thread per item
    _, serial_us = time_kernel(lambda: [m @ m for m in batch], repeats=3)
    _, pooled_us = time_kernel(parallel_batch_processing, batch, lambda m: m @ m, 2, repeats=3)
print(f"{len(batch)} matmuls of {side}x{side}: serial {serial_us:.0f} us, 2 workers {pooled_us:.0f} us "
      f"-> {serial_us / pooled_us:.2f}x")

# %% [markdown]
# ## 7. int8: four times fewer bytes, exact integer sums
#
# **Symmetric quantization** maps a float `x` to an integer code `q = round(x / scale)` and back
# to `q · scale`. With `scale = max|x| / 127` the largest value maps to 127. Two rules make it
# correct:
#
# - **Saturate, then cast.** `np.array([200.0]).astype(np.int8)` is `-56`: the cast keeps the low
#   8 bits. Clip to `[-127, 127]` first (`-128` is left out so that `-q` always exists), then cast.
# - **Accumulate in int32.** `127 · 127 = 16129` does not fit in int8 (or a sum of them in int16);
#   each product is widened to int32 before it is added. A sum of `K` products stays below
#   `K · 128² ≤ 2³¹ - 1` for `K ≤ 131071`, so the integer result is **exact**: the tests compare
#   it with an int64 reference, bit for bit.
#
# The int8 operands take 4× fewer bytes than float32: 4× less memory traffic and 4× more values
# per cache line. The error comes only from rounding each input to the nearest code, at most
# `scale / 2` per value.
#
# ```
#   A (float32) ─quantize_int8(·, scale_A)─▶ qA (int8) ┐
#                                                     ├─ int8_matmul ─▶ int32 (exact) ─× scale_A·scale_B─▶ float32
#   B (float32) ─quantize_int8(·, scale_B)─▶ qB (int8) ┘
# ```
#
# `symmetric_scale` and `dequantize_int8` are given. Write `quantize_int8(x, scale)` (`scale` must
# be positive, `ValueError` otherwise; round with `np.rint`), then the integer kernel, built like
# the float one:
#
# - `_int8_tile`: the 4-row × 4-k register-blocked tile update of section 5, on int8 inputs into
#   an int32 `C`, with **every value widened to int32 before it is multiplied**
#   (`np.int32(A[i, k])`, `np.int32(b0[j])`). numba would widen on its own, but with
#   `NUMBA_DISABLE_JIT=1` the same lines run on NumPy int8 scalars, where `127 * 127` wraps. The
#   edges go to the given `_int8_ikj_tile`.
# - `_int8_matmul_kernel`: the three tile loops, exactly as in `_tiled_matmul_kernel`.
# - `int8_matmul(qA, qB, block_size=256)`: `TypeError` unless both are int8, `ValueError` for
#   incompatible shapes, an inner dimension above `MAX_EXACT_INNER` or `block_size < 1`; returns
#   the int32 product.

# %%
#| export
INT8_LIMIT = 127                                  # codes live in [-127, 127]: symmetric, so -q always exists
MAX_EXACT_INNER = (2**31 - 1) // (128 * 128)      # most products per int32 sum that can never overflow


def symmetric_scale(x) -> float:
    """The scale that maps max|x| to the code 127 (1.0 for an all-zero x)."""
    largest = float(np.max(np.abs(x))) if np.size(x) else 0.0
    return largest / INT8_LIMIT if largest > 0 else 1.0


def dequantize_int8(q: np.ndarray, scale: float) -> np.ndarray:
    """Codes back to float32 values: q * scale."""
    return np.multiply(q, np.float32(scale), dtype=np.float32)


# %% nbgrader={"grade": false, "grade_id": "quantize-int8", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def quantize_int8(x, scale: float) -> np.ndarray:
    """round(x / scale), saturated to [-127, 127] BEFORE the cast (a bare astype(int8) wraps 200 to -56)."""
    ### BEGIN SOLUTION
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    codes = np.rint(np.asarray(x, dtype=np.float32) / np.float32(scale))
    np.clip(codes, -INT8_LIMIT, INT8_LIMIT, out=codes)
    return codes.astype(np.int8)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-quantize-int8", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_quantize_int8_saturates():
    q = quantize_int8(np.array([0.0, 0.4, 0.6, -2.6, 126.7, 200.0, -1000.0, 1e30]), scale=1.0)
    assert q.dtype == np.int8
    np.testing.assert_array_equal(q, [0, 0, 1, -3, 127, 127, -127, 127])   # never wraps to negative

def test_unit_quantize_int8_round_trip():
    x = np.random.default_rng(14).standard_normal(1000).astype(np.float32)
    scale = symmetric_scale(x)
    q = quantize_int8(x, scale)
    assert np.abs(q.astype(np.int64)).max() == 127
    error = np.abs(dequantize_int8(q, scale) - x)
    assert error.max() <= scale / 2 + 1e-6, (error.max(), scale)     # rounding to the nearest code

test_unit_quantize_int8_saturates()
test_unit_quantize_int8_round_trip()
### BEGIN HIDDEN TESTS
def test_hidden_quantize_int8_scale_and_rounding():
    np.testing.assert_array_equal(quantize_int8(np.array([[1.0, -1.0], [0.26, 50.0]]), 0.5), [[2, -2], [1, 100]])
    for bad in (0.0, -1.0):
        try:
            quantize_int8(np.ones(3), bad)
        except ValueError:
            continue
        raise AssertionError(f"scale={bad} must raise ValueError")

test_hidden_quantize_int8_scale_and_rounding()
### END HIDDEN TESTS

# %%
#| export
@njit(cache=True)
def _int8_ikj_tile(A, B, C, i0, i1, k0, k1, j0, j1):
    """C[i0:i1, j0:j1] (int32) += A[i0:i1, k0:k1] @ B[k0:k1, j0:j1] (int8), one row and one k at a time."""
    width = j1 - j0
    for i in range(i0, i1):
        c_row = C[i, j0:j1]
        for k in range(k0, k1):
            a = np.int32(A[i, k])
            b_row = B[k, j0:j1]
            for j in range(width):
                c_row[j] += a * np.int32(b_row[j])


# %% nbgrader={"grade": false, "grade_id": "int8-matmul", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
@njit(cache=True)
def _int8_tile(A, B, C, i0, i1, k0, k1, j0, j1):
    """C (int32) += A (int8) @ B (int8) on one tile: 4 rows x 4 k-steps per pass, values widened to int32."""
    ### BEGIN SOLUTION
    i_end = i0 + (i1 - i0) // 4 * 4
    k_end = k0 + (k1 - k0) // 4 * 4
    width = j1 - j0
    for i in range(i0, i_end, 4):
        c0, c1, c2, c3 = C[i, j0:j1], C[i + 1, j0:j1], C[i + 2, j0:j1], C[i + 3, j0:j1]
        for k in range(k0, k_end, 4):
            b0, b1, b2, b3 = B[k, j0:j1], B[k + 1, j0:j1], B[k + 2, j0:j1], B[k + 3, j0:j1]
            a00, a01, a02, a03 = np.int32(A[i, k]), np.int32(A[i, k + 1]), np.int32(A[i, k + 2]), np.int32(A[i, k + 3])
            a10, a11, a12, a13 = (np.int32(A[i + 1, k]), np.int32(A[i + 1, k + 1]),
                                  np.int32(A[i + 1, k + 2]), np.int32(A[i + 1, k + 3]))
            a20, a21, a22, a23 = (np.int32(A[i + 2, k]), np.int32(A[i + 2, k + 1]),
                                  np.int32(A[i + 2, k + 2]), np.int32(A[i + 2, k + 3]))
            a30, a31, a32, a33 = (np.int32(A[i + 3, k]), np.int32(A[i + 3, k + 1]),
                                  np.int32(A[i + 3, k + 2]), np.int32(A[i + 3, k + 3]))
            for j in range(width):
                x0, x1, x2, x3 = np.int32(b0[j]), np.int32(b1[j]), np.int32(b2[j]), np.int32(b3[j])
                c0[j] += a00 * x0 + a01 * x1 + a02 * x2 + a03 * x3
                c1[j] += a10 * x0 + a11 * x1 + a12 * x2 + a13 * x3
                c2[j] += a20 * x0 + a21 * x1 + a22 * x2 + a23 * x3
                c3[j] += a30 * x0 + a31 * x1 + a32 * x2 + a33 * x3
    _int8_ikj_tile(A, B, C, i0, i_end, k_end, k1, j0, j1)
    _int8_ikj_tile(A, B, C, i_end, i1, k0, k1, j0, j1)
    ### END SOLUTION


@njit(cache=True)
def _int8_matmul_kernel(A, B, C, block_size):
    """C (int32) += A (int8) @ B (int8), one block_size x block_size tile at a time."""
    ### BEGIN SOLUTION
    n_rows, inner = A.shape
    n_cols = B.shape[1]
    for i0 in range(0, n_rows, block_size):
        i1 = min(i0 + block_size, n_rows)
        for k0 in range(0, inner, block_size):
            k1 = min(k0 + block_size, inner)
            for j0 in range(0, n_cols, block_size):
                _int8_tile(A, B, C, i0, i1, k0, k1, j0, min(j0 + block_size, n_cols))
    ### END SOLUTION


def int8_matmul(qA: np.ndarray, qB: np.ndarray, block_size: int = 256) -> np.ndarray:
    """Exact qA @ qB for int8 inputs, accumulated in int32 (inner dimension at most MAX_EXACT_INNER)."""
    ### BEGIN SOLUTION
    if qA.dtype != np.int8 or qB.dtype != np.int8:
        raise TypeError(f"int8_matmul needs int8 codes, got {qA.dtype} and {qB.dtype}; use quantize_int8 first")
    if qA.ndim != 2 or qB.ndim != 2 or qA.shape[1] != qB.shape[0]:
        raise ValueError(f"int8_matmul needs 2-D (m, k) @ (k, n), got {qA.shape} @ {qB.shape}")
    if qA.shape[1] > MAX_EXACT_INNER:
        raise ValueError(f"inner dimension {qA.shape[1]} could overflow int32 (limit {MAX_EXACT_INNER}); split k")
    if block_size < 1:
        raise ValueError(f"block_size must be positive, got {block_size}")
    out = np.zeros((qA.shape[0], qB.shape[1]), dtype=np.int32)
    _int8_matmul_kernel(np.ascontiguousarray(qA), np.ascontiguousarray(qB), out, int(block_size))
    return out
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-int8-matmul", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_int8_matmul_exact():
    rng = np.random.default_rng(15)
    for m, k, n in [(1, 1, 1), (5, 9, 3), (40, 300, 24)]:
        qA = rng.integers(-127, 128, size=(m, k)).astype(np.int8)
        qB = rng.integers(-127, 128, size=(k, n)).astype(np.int8)
        got = int8_matmul(qA, qB)
        assert got.dtype == np.int32 and got.shape == (m, n)
        np.testing.assert_array_equal(got.astype(np.int64), qA.astype(np.int64) @ qB.astype(np.int64))

def test_unit_int8_matmul_no_wraparound():
    k = 3000                                   # 3000 * 127 * 127 = 48,387,000: far beyond int8 and int16
    qA = np.full((2, k), 127, dtype=np.int8)
    qB = np.full((k, 3), -127, dtype=np.int8)
    np.testing.assert_array_equal(int8_matmul(qA, qB, block_size=64), np.full((2, 3), -48_387_000))

def test_unit_int8_matmul_rejects():
    for bad in [(np.ones((2, 2), np.int16), np.ones((2, 2), np.int8)), (np.ones((2, 2)), np.ones((2, 2)))]:
        try:
            int8_matmul(*bad)
        except TypeError:
            continue
        raise AssertionError("non-int8 inputs must raise TypeError")
    try:
        int8_matmul(np.ones((1, MAX_EXACT_INNER + 1), np.int8), np.ones((MAX_EXACT_INNER + 1, 1), np.int8))
    except ValueError as err:
        assert str(MAX_EXACT_INNER + 1) in str(err), f"name the inner dimension ({MAX_EXACT_INNER + 1}): {err}"
    else:
        raise AssertionError("an inner dimension that could overflow int32 must raise ValueError")

test_unit_int8_matmul_exact()
test_unit_int8_matmul_no_wraparound()
test_unit_int8_matmul_rejects()
### BEGIN HIDDEN TESTS
def test_hidden_int8_matmul_minus_128_and_blocks():
    rng = np.random.default_rng(16)
    qA = rng.integers(-128, 128, size=(13, 17)).astype(np.int8)
    qA[0, :] = -128
    qB = rng.integers(-128, 128, size=(17, 11)).astype(np.int8)
    expected = qA.astype(np.int64) @ qB.astype(np.int64)
    for block in (1, 5, 200):
        np.testing.assert_array_equal(int8_matmul(qA, qB, block_size=block), expected)

test_hidden_int8_matmul_minus_128_and_blocks()

def test_hidden_int8_matmul_limits_and_views():
    for qA, qB in [(np.ones((2, 3), np.int8), np.ones((2, 3), np.int8)), (np.ones(3, np.int8), np.ones((3, 1), np.int8))]:
        try:
            int8_matmul(qA, qB)
        except ValueError:
            continue
        raise AssertionError(f"{qA.shape} @ {qB.shape} must raise ValueError")
    k = MAX_EXACT_INNER                         # exactly at the limit: still exact, no error
    assert int8_matmul(np.full((1, k), -128, np.int8), np.full((k, 1), -128, np.int8))[0, 0] == k * 128 * 128
    for bad in (0, -1):
        try:
            int8_matmul(np.ones((2, 2), np.int8), np.ones((2, 2), np.int8), block_size=bad)
        except ValueError as err:
            assert "block_size" in str(err), err
        else:
            raise AssertionError(f"block_size={bad} must raise ValueError")
    # as plain Python (.py_func) every index is checked: a view one element short is an error
    rng = np.random.default_rng(17)
    qA = rng.integers(-128, 128, size=(9, 10)).astype(np.int8)
    qB = rng.integers(-128, 128, size=(10, 11)).astype(np.int8)
    C = np.zeros((9, 11), np.int32)
    _int8_tile.py_func(qA, qB, C, 0, 9, 0, 10, 0, 11)
    _int8_tile.py_func(qA, qB, C, 1, 9, 2, 10, 3, 11)

test_hidden_int8_matmul_limits_and_views()
### END HIDDEN TESTS

# %% [markdown]
# Now the two functions a quantized layer uses:
#
# - `quantized_matmul(A, B, scale_A, scale_B)`: quantize both (saturating), `int8_matmul`, then
#   one multiply by `scale_A · scale_B` into float32 (`np.multiply(..., dtype=np.float32)` does
#   the conversion and the scaling in one pass).
# - `quantized_relu(x, scale)`: ReLU **in the integer domain**. With symmetric quantization the
#   value 0 has the code 0 and `scale > 0`, so `relu(q · scale) = relu(q) · scale`: quantize `x`,
#   then clamp the int8 codes at 0 (one pass over 1-byte values, in place); return the int8 codes,
#   which the next int8 kernel consumes with the same `scale`.

# %% nbgrader={"grade": false, "grade_id": "quantized-ops", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def quantized_matmul(A, B, scale_A: float, scale_B: float) -> np.ndarray:
    """A @ B through int8: saturating quantization, exact int32 accumulation, one float32 rescale."""
    ### BEGIN SOLUTION
    exact = int8_matmul(quantize_int8(A, scale_A), quantize_int8(B, scale_B))
    return np.multiply(exact, np.float32(scale_A * scale_B), dtype=np.float32)
    ### END SOLUTION


def quantized_relu(x, scale: float) -> np.ndarray:
    """int8 codes of relu(x) at `scale`: quantize, then clamp the codes at 0 (zero's code is 0)."""
    ### BEGIN SOLUTION
    codes = quantize_int8(x, scale)
    return np.maximum(codes, 0, out=codes)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-quantized-matmul", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_quantized_matmul_error_budget():
    rng = np.random.default_rng(17)
    A = rng.standard_normal((20, 64)).astype(np.float32)
    B = rng.standard_normal((64, 12)).astype(np.float32)
    sA, sB = symmetric_scale(A), symmetric_scale(B)
    got = quantized_matmul(A, B, sA, sB)
    assert got.dtype == np.float32 and got.shape == (20, 12)

    # exactly the rescaled integer product (int64 reference), up to float32 rounding
    qA, qB = quantize_int8(A, sA), quantize_int8(B, sB)
    integer = qA.astype(np.int64) @ qB.astype(np.int64)
    np.testing.assert_allclose(got, integer * (np.float64(sA) * np.float64(sB)), rtol=2e-6, atol=1e-6)

    # hand-derived bound: |ab - a'b'| <= |a| |b - b'| + |b'| |a - a'|, with |x - x'| <= scale / 2
    bound = np.abs(A) @ np.full(B.shape, sB / 2) + np.full(A.shape, sA / 2) @ np.abs(dequantize_int8(qB, sB))
    error = np.abs(got - A.astype(np.float64) @ B.astype(np.float64))
    assert np.all(error <= bound * 1.001 + 1e-4), float((error - bound).max())

test_unit_quantized_matmul_error_budget()
### BEGIN HIDDEN TESTS
def test_hidden_quantized_matmul_saturation():
    A = np.array([[1000.0, 1.0]], dtype=np.float32)        # 1000 saturates to code 127 at scale 1
    B = np.array([[1.0], [1.0]], dtype=np.float32)
    np.testing.assert_allclose(quantized_matmul(A, B, 1.0, 1.0), [[128.0]], rtol=0)

test_hidden_quantized_matmul_saturation()
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test-quantized-relu", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_quantized_relu():
    x = np.random.default_rng(18).standard_normal((6, 50)).astype(np.float32) * 3
    scale = symmetric_scale(x)
    got = quantized_relu(x, scale)
    assert got.dtype == np.int8 and got.shape == x.shape
    # ReLU commutes with symmetric quantization: quantizing relu(x) gives the same codes
    np.testing.assert_array_equal(got, quantize_int8(np.where(x > 0, x, 0), scale))
    assert got.min() == 0 and got.max() == 127

test_unit_quantized_relu()
### BEGIN HIDDEN TESTS
def test_hidden_quantized_relu_saturates():
    np.testing.assert_array_equal(quantized_relu(np.array([-1e6, -0.4, 0.6, 1e6]), 1.0), [0, 0, 1, 127])

test_hidden_quantized_relu_saturates()
### END HIDDEN TESTS

# %% [markdown]
# ### Analysis: int8 against float32
#
# Time, throughput (operations per second: `2·n³` multiply-adds counted as two operations, as for
# floats) and the measured `nbytes` of the operands. `quantized_matmul` includes quantizing both
# inputs and rescaling the output; `int8_matmul` is the integer kernel alone on ready codes.

# %%
n = 128 if QUICK else 512
rng = np.random.default_rng(19)
A = rng.standard_normal((n, n)).astype(np.float32)
B = rng.standard_normal((n, n)).astype(np.float32)
sA, sB = symmetric_scale(A), symmetric_scale(B)
qA, qB = quantize_int8(A, sA), quantize_int8(B, sB)
with threadpool_limits(limits=1, user_api="blas"):
    exact_float, blas_us = time_kernel(np.matmul, A, B, repeats=5)
    _, tiled_us = time_kernel(cache_friendly_matmul, A, B, repeats=3)
    codes, int8_us = time_kernel(int8_matmul, qA, qB, repeats=3)
    approx, quant_us = time_kernel(quantized_matmul, A, B, sA, sB, repeats=3)
exact = np.array_equal(codes.astype(np.int64), qA.astype(np.int64) @ qB.astype(np.int64))
print(f"n={n}; operands: float32 {A.nbytes + B.nbytes:,} bytes, int8 {qA.nbytes + qB.nbytes:,} bytes "
      f"({(A.nbytes + B.nbytes) / (qA.nbytes + qB.nbytes):.0f}x smaller)")
for name, us in (("float32 BLAS, 1 thread", blas_us), ("float32 cache_friendly", tiled_us),
                 ("int8_matmul (codes)", int8_us), ("quantized_matmul (all)", quant_us)):
    print(f"  {name:24} {us / 1e3:8.2f} ms {gflops(n, us):8.2f} G op/s   {blas_us / us:.2f} of BLAS")
print(f"int32 sums equal to the int64 reference: {exact}; relative error of quantized_matmul: "
      f"{np.abs(approx - exact_float).max() / np.abs(exact_float).max():.2e}")

# %% [markdown]
# ## 8. Everything in one table
#
# `final_performance_test(n, relu_size, repeats)` times every kernel of this module on this
# machine, each checked against the baseline first, and returns one dict per kernel:
#
# | key | meaning |
# |---|---|
# | `kernel` | the name |
# | `time_us` | median time (`time_kernel`) |
# | `rate`, `unit` | GFLOP/s (or G op/s for int8) for matmuls, GB/s (bytes read + written) for ReLU |
# | `ceiling` | `"BLAS 1 thread"` or `"np.copyto"`: what the rate is compared with |
# | `ratio` | `rate / ceiling rate`, both measured in this call |
# | `max_abs_error` | against the baseline (`matmul_baseline` under 1 BLAS thread, or `np.where` for ReLU) |
#
# The ceilings are rows too: `"NumPy BLAS, 1 thread"` (ratio 1) and `"np.copyto"` (ratio 1). The
# matmul rows (inputs `n × n` float32) are `matmul_baseline`, `ikj_matmul`, `cache_friendly_matmul`,
# `parallel_matmul` and `quantized_matmul`; the ReLU rows (`relu_size` float32) are
# `vectorized_relu` (with `out=`) and `parallel_relu` (2 workers, with `out=`). Run the matmuls
# under `threadpool_limits(limits=1, user_api="blas")`; `parallel_matmul` uses numba's threads
# (its name in the table says so: `"parallel_matmul (all threads)"`).

# %% nbgrader={"grade": false, "grade_id": "final-performance-test", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
MATMUL_ROWS = ("NumPy BLAS, 1 thread", "matmul_baseline", "ikj_matmul", "cache_friendly_matmul",
               "parallel_matmul (all threads)", "quantized_matmul")
RELU_ROWS = ("np.copyto", "vectorized_relu", "parallel_relu")


def final_performance_test(n: int = 512, relu_size: int = 1 << 22, repeats: int = 5) -> list[dict]:
    """Every kernel of this module timed on this machine against 1-thread BLAS or np.copyto; one dict per row."""
    ### BEGIN SOLUTION
    rng = np.random.default_rng(n)
    A = rng.standard_normal((n, n)).astype(np.float32)
    B = rng.standard_normal((n, n)).astype(np.float32)
    sA, sB = symmetric_scale(A), symmetric_scale(B)
    rows = []

    def add(kernel, micros, amount, unit, ceiling, ceiling_rate=None, error=0.0):
        rate = amount / micros / 1e3              # amount per microsecond / 1e3 = G per second
        ratio = 1.0 if ceiling_rate is None else rate / ceiling_rate   # a ceiling row is its own reference
        rows.append({"kernel": kernel, "time_us": micros, "rate": rate, "unit": unit, "ceiling": ceiling,
                     "ratio": ratio, "max_abs_error": error})
        return rate

    flops = 2.0 * n**3
    matmuls = {
        "matmul_baseline": (matmul_baseline, (A, B)),
        "ikj_matmul": (ikj_matmul, (A, B)),
        "cache_friendly_matmul": (cache_friendly_matmul, (A, B)),
        "parallel_matmul (all threads)": (parallel_matmul, (A, B)),
        "quantized_matmul": (quantized_matmul, (A, B, sA, sB)),
    }
    with threadpool_limits(limits=1, user_api="blas"):
        reference, blas_us = time_kernel(np.matmul, A, B, repeats=repeats)
        blas_rate = add("NumPy BLAS, 1 thread", blas_us, flops, "GFLOP/s", "BLAS 1 thread")
        for name, (kernel, args) in matmuls.items():
            out, micros = time_kernel(kernel, *args, repeats=repeats)
            unit = "G op/s" if name == "quantized_matmul" else "GFLOP/s"
            add(name, micros, flops, unit, "BLAS 1 thread", blas_rate, float(np.abs(out - reference).max()))

    x = rng.standard_normal(relu_size).astype(np.float32)
    dst = np.empty_like(x)
    moved = 2.0 * x.nbytes                         # read x, write dst
    relu_reference = np.where(x > 0, x, np.float32(0))
    _, copy_us = time_kernel(np.copyto, dst, x, repeats=repeats)
    copy_rate = add("np.copyto", copy_us, moved, "GB/s", "np.copyto")
    for name, kernel, args in (("vectorized_relu", vectorized_relu, (x, dst)),
                               ("parallel_relu", parallel_relu, (x, 2, dst))):
        out, micros = time_kernel(kernel, *args, repeats=repeats)
        add(name, micros, moved, "GB/s", "np.copyto", copy_rate, float(np.abs(out - relu_reference).max()))
    return rows
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-final-performance", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_final_performance_test_table():
    rows = final_performance_test(n=48, relu_size=5000, repeats=1)
    names = [row["kernel"] for row in rows]
    assert names == list(MATMUL_ROWS) + list(RELU_ROWS), names
    by_name = {row["kernel"]: row for row in rows}
    for row in rows:
        assert {"time_us", "rate", "unit", "ceiling", "ratio", "max_abs_error"} <= set(row), row
        assert np.isfinite(row["rate"]) and row["rate"] > 0, row
        ceiling = by_name["NumPy BLAS, 1 thread"] if row["ceiling"] == "BLAS 1 thread" else by_name["np.copyto"]
        np.testing.assert_allclose(row["ratio"], row["rate"] / ceiling["rate"], rtol=1e-9)
        # the rate is the work divided by the time: 2 n^3 operations or 2 * 4 bytes per element
        amount = 2 * 48**3 if row["ceiling"] == "BLAS 1 thread" else 2 * 4 * 5000
        np.testing.assert_allclose(row["rate"] * row["time_us"] * 1e3, amount, rtol=1e-9)
    for name in ("matmul_baseline", "ikj_matmul", "cache_friendly_matmul", "parallel_matmul (all threads)"):
        assert by_name[name]["max_abs_error"] < 1e-3, by_name[name]
    assert 1e-3 < by_name["quantized_matmul"]["max_abs_error"] < 1.0   # int8 rounding: the largest error, not garbage
    assert by_name["NumPy BLAS, 1 thread"]["max_abs_error"] == 0 and by_name["np.copyto"]["max_abs_error"] == 0
    units = {row["kernel"]: row["unit"] for row in rows}
    assert units["quantized_matmul"] == "G op/s" and units["ikj_matmul"] == "GFLOP/s", units
    assert all(units[name] == "GB/s" for name in RELU_ROWS), units
    assert by_name["vectorized_relu"]["max_abs_error"] == 0 and by_name["parallel_relu"]["max_abs_error"] == 0

test_unit_final_performance_test_table()

# %% [markdown]
# ### The table on your machine

# %%
rows = final_performance_test(n=128 if QUICK else 512, relu_size=(1 << 18) if QUICK else (1 << 23),
                              repeats=3 if QUICK else 7)
print(f"{'kernel':32} {'time (us)':>12} {'rate':>10} {'unit':8} {'ratio':>7}  to        {'max abs error':>13}")
for row in rows:
    print(f"{row['kernel']:32} {row['time_us']:>12.1f} {row['rate']:>10.2f} {row['unit']:8} {row['ratio']:>7.3f}"
          f"  {row['ceiling']:13} {row['max_abs_error']:>10.2e}")

# %% [markdown]
# ## 9. Integration: the same model, two sets of kernels
#
# A `Linear → ReLU` model computed twice: with the framework defaults (module 03's NumPy matmul,
# module 02's ReLU) and with this module's kernels plugged in, the tiled matmul through
# `register_matmul` (the seam module 03 built for exactly this) and `vectorized_relu`. The outputs
# must agree to float32 rounding.

# %% nbgrader={"grade": true, "grade_id": "test-integration", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_integration_linear_relu():
    layer = Linear(48, 20, seed=0)
    model = Sequential(layer, ReLU())
    x = Tensor(np.random.default_rng(20).standard_normal((33, 48)).astype(np.float32))
    baseline = model(x).numpy()

    register_matmul("kernels-tiled", lambda a, b: cache_friendly_matmul(a, b, block_size=16))
    register_matmul("kernels-parallel", lambda a, b: parallel_matmul(a, b, block_size=8))
    for backend in ("kernels-tiled", "kernels-parallel"):
        previous = set_matmul_backend(backend)
        try:
            hidden = layer(x).numpy()
        finally:
            set_matmul_backend(previous)
        optimized = vectorized_relu(hidden, out=np.empty_like(hidden))
        assert optimized.dtype == baseline.dtype and optimized.shape == (33, 20)
        np.testing.assert_allclose(optimized, baseline, rtol=1e-5, atol=1e-5, err_msg=backend)
    assert (baseline == 0).any() and (baseline > 0).any()     # the ReLU really cut something

test_unit_integration_linear_relu()
### BEGIN HIDDEN TESTS
def test_hidden_integration_batched_input():
    layer = Linear(8, 5, seed=1)
    x = Tensor(np.random.default_rng(21).standard_normal((2, 3, 8)).astype(np.float32))   # folded into rows
    baseline = ReLU()(layer(x)).numpy()
    register_matmul("kernels-tiled", cache_friendly_matmul)
    previous = set_matmul_backend("kernels-tiled")
    try:
        hidden = layer(x).numpy()
    finally:
        set_matmul_backend(previous)
    np.testing.assert_allclose(vectorized_relu(hidden), baseline, rtol=1e-5, atol=1e-6)

test_hidden_integration_batched_input()
### END HIDDEN TESTS

# %% [markdown]
# ## Summary
#
# - Time after warm-up (JIT compilation excluded), take the median, and report rates against a
#   ceiling measured in the same run: 1-thread BLAS for compute, `np.copyto` for memory.
# - Element-wise kernels are memory-bound: the win is touching memory once (`out=`), not clever
#   arithmetic.
# - A compiled matmul is fast or slow depending on loop order (contiguous inner loop), tiling
#   (data reused from cache) and register blocking (data reused from registers), and on details
#   that silently stop SIMD: offset index ranges and checks inside the hot loop.
# - Threads pay off when each one gets a large, GIL-free share of the work; for small arrays the
#   pool costs more than the work.
# - int8 needs saturation before the cast and int32 accumulation; then the integer result is
#   exact and the operands are 4× smaller.
#
# Module 15 plugs these kernels into a backend object (`OptimizedBackend`), and the benchmark
# `python -m benchmarks kernels` puts them side by side with the ceilings.
