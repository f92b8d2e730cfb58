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
# # Module 14: Profiling — measure, never estimate in disguise
#
# Every optimisation in the rest of this course (acceleration, quantization, compression,
# caching, benchmarking) ends with a claim: *this is faster*, *this uses less memory*, *this
# does less work*. A claim is only as good as the instrument behind it, so this module builds the
# instruments.
#
# A widely used earlier version of this course reported the backward pass as "2× forward" without
# ever running a backward pass, padded activation memory with a guessed "2× input", and counted a
# Linear layer's FLOPs without the batch dimension (off by a factor of the batch size). Each of
# those numbers *looked* measured. Here every number is one of two kinds, and the API says which:
#
# | kind | how it is obtained | example |
# |---|---|---|
# | **measured** | run the code on this machine and read a clock or an allocator | latency, peak bytes, GB/s |
# | **computed** | an exact formula under a stated convention | FLOPs, MACs, parameter count, output bytes |
# | *estimate* | anything else; the name must say `estimate` | bytes a layer moves through memory |
#
# What you will build, all exported to `tinytorch.profiling.profiler`:
#
# | tool | answers | built on |
# |---|---|---|
# | `Timer` → `TimingStats` | how long does a call take, and how stable is that? | `time.perf_counter_ns`, warm-up, repeats, GC pause |
# | `MemoryProfiler` → `MemoryStats` | how many bytes does a call allocate, at peak and net? does it leak? | `tracemalloc`, `psutil` |
# | `FLOPCounter` → `FlopReport` | how much arithmetic does a model do, layer by layer? | a registry of exact per-layer formulas |
# | `Profiler` | all of the above for a model, plus a per-layer table | the three tools |
# | `measure_ceilings`, `roofline_point`, `plot_roofline` | how close is each layer to what this machine can do? | 1-thread BLAS GFLOP/s, `np.copyto` GB/s |

# %%
#| default_exp profiling.profiler

# %%
#| export
import gc
import itertools
import time
import tracemalloc
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import psutil
from threadpoolctl import threadpool_limits

from tinytorch.core.tensor import Tensor
from tinytorch.core.activations import GELU, ReLU, Sigmoid, Softmax, Tanh
from tinytorch.core.layers import Linear, Sequential

# %%
import os

QUICK = os.environ.get("TITO_AUTOGRADING") == "1"  # shrink sizes and repeats while grading

# %% [markdown]
# ## Part 1: Timing a call
#
# Timing one call with `time.time()` before and after is wrong in four ways:
#
# 1. **The clock.** `time.time()` is wall-clock time: NTP can step it backwards, and on some
#    systems it ticks in coarse steps. `time.perf_counter_ns()` is monotonic, has the finest
#    resolution the OS offers, and returns integer nanoseconds (no float rounding on long uptimes).
# 2. **The first call is special.** It pays for lazy imports, page faults on freshly allocated
#    buffers, BLAS thread start-up, JIT compilation. *Warm-up* calls run first and are not timed.
# 3. **One sample is noise.** The OS schedules other work, CPU frequency changes, caches are shared.
#    We take *repeats* and report the distribution: the **median** (robust to outliers), the
#    **minimum** (the least-disturbed run), the tail (**p95**, **p99**: what a user waits for
#    one time in twenty or a hundred) and the **coefficient of variation** `cv = std / mean`
#    (a cv above ~0.1 says: do not trust a 10% difference).
# 4. **Very short calls hide under the clock.** Reading the clock costs tens of nanoseconds. For a
#    call that takes a microsecond, time a *batch* of calls and divide — this is what
#    `timeit.Timer.autorange` does. Our `min_time_s` option runs batches of 1, 2, 4, 8, … calls
#    until at least `min_time_s` of clock time has passed, then records elapsed / calls.
#
# Python's cyclic garbage collector can also pause in the middle of a timed call; like `timeit`,
# we switch it off while timing (and switch it back on only if it was on).
#
# ```
#  warm-up (untimed)     repeat 1           repeat 2     ...   repeat R
#  fn fn fn          |t0 fn t1|         |t0 fn t1|            |t0 fn t1|   -> samples_s[R]
#                     with min_time_s:  |t0 [fn] t [fn fn] t [fn fn fn fn] t|  -> elapsed / 7 calls
# ```
#
# Percentile convention: linear interpolation between the two closest ranks (NumPy's default,
# Hyndman–Fan type 7). Standard deviation: the sample standard deviation (divide by n − 1),
# defined as 0 for a single sample.

# %% nbgrader={"grade": false, "grade_id": "timing-stats", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
@dataclass
class TimingStats:
    """Summary of per-call times in seconds: min, median, mean, std, p95, p99 and cv = std / mean."""

    samples_s: list[float]
    min_s: float
    median_s: float
    mean_s: float
    std_s: float
    p95_s: float
    p99_s: float
    cv: float

    @property
    def median_ms(self) -> float:
        return self.median_s * 1e3

    @property
    def p95_ms(self) -> float:
        return self.p95_s * 1e3

    @property
    def p99_ms(self) -> float:
        return self.p99_s * 1e3

    @classmethod
    def from_samples(cls, samples_s) -> "TimingStats":
        """Build the summary from per-call times (seconds); at least one sample."""
        ### BEGIN SOLUTION
        if len(samples_s) == 0:
            raise ValueError("from_samples needs at least one sample")
        values = np.asarray(samples_s, dtype=np.float64)
        mean = float(values.mean())
        std = float(values.std(ddof=1)) if values.size > 1 else 0.0
        return cls(
            samples_s=[float(v) for v in values],
            min_s=float(values.min()),
            median_s=float(np.median(values)),
            mean_s=mean,
            std_s=std,
            p95_s=float(np.percentile(values, 95)),
            p99_s=float(np.percentile(values, 99)),
            cv=std / mean if mean > 0 else 0.0,
        )
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-timing-stats", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import statistics


def test_unit_timing_stats_against_statistics_module():
    samples = [0.004, 0.001, 0.003, 0.010, 0.002]
    stats = TimingStats.from_samples(samples)
    cuts = statistics.quantiles(samples, n=100, method="inclusive")  # type-7 percentiles
    assert stats.min_s == 0.001
    assert abs(stats.median_s - 0.003) < 1e-15
    assert abs(stats.mean_s - 0.004) < 1e-15
    assert abs(stats.std_s - statistics.stdev(samples)) < 1e-12
    # By hand: p95 sits at rank 0.95 * 4 = 3.8 of the sorted samples, between 0.004 and 0.010.
    assert abs(stats.p95_s - (0.004 + 0.8 * 0.006)) < 1e-12
    assert abs(stats.p95_s - cuts[94]) < 1e-12 and abs(stats.p99_s - cuts[98]) < 1e-12
    assert abs(stats.cv - statistics.stdev(samples) / 0.004) < 1e-9
    assert abs(stats.median_ms - 3.0) < 1e-12
    assert stats.samples_s == samples


def test_unit_timing_stats_single_sample():
    stats = TimingStats.from_samples([0.5])
    assert (stats.min_s, stats.median_s, stats.p99_s, stats.std_s, stats.cv) == (0.5, 0.5, 0.5, 0.0, 0.0)


test_unit_timing_stats_against_statistics_module()
test_unit_timing_stats_single_sample()
### BEGIN HIDDEN TESTS
def test_hidden_timing_stats_even_count_and_constant():
    samples = [0.2, 0.1, 0.4, 0.3]
    stats = TimingStats.from_samples(samples)
    assert abs(stats.median_s - 0.25) < 1e-12  # mean of the two middle values
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    assert abs(stats.p99_s - cuts[98]) < 1e-12
    flat = TimingStats.from_samples([0.01] * 7)
    assert flat.std_s == 0.0 and flat.cv == 0.0 and flat.p95_s == 0.01
    pair = TimingStats.from_samples([0.001, 0.003])
    assert abs(pair.std_s - statistics.stdev([0.001, 0.003])) < 1e-15   # n - 1 from two samples on
    zero = TimingStats.from_samples([0.0, 0.0])                          # a coarse clock can read 0
    assert zero.cv == 0.0 and zero.mean_s == 0.0
    narrow = np.array([1e-3, 2e-3, 4e-3, 7e-3], dtype=np.float32)       # statistics in float64 whatever comes in
    wide = TimingStats.from_samples(narrow)
    assert abs(wide.mean_s - statistics.fmean(narrow.astype(np.float64).tolist())) < 1e-15
    assert abs(wide.std_s - statistics.stdev(narrow.astype(np.float64).tolist())) < 1e-15
    try:
        TimingStats.from_samples([])
    except ValueError as err:
        assert "sample" in str(err), str(err)
    else:
        raise AssertionError("no samples must raise ValueError")


test_hidden_timing_stats_even_count_and_constant()
### END HIDDEN TESTS

# %% [markdown]
# Now the timer itself. The clock is a parameter (`clock=time.perf_counter_ns` by default), so a
# test can hand it a *fake* clock that returns scripted nanosecond values: the statistics are then
# exact and the test never depends on how fast the grading machine is. That only works if the
# timer reads the clock in a fixed, documented pattern:
#
# * warm-up calls never read the clock;
# * without `min_time_s`: each repeat reads the clock once before and once after one call;
# * with `min_time_s`: each repeat reads the clock once at its start and once after each batch
#   (batches of 1, 2, 4, … calls) and stops at the first reading at least `min_time_s` after
#   the start; the sample is elapsed / total calls of that repeat.

# %% nbgrader={"grade": false, "grade_id": "timer", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
class Timer:
    """Time fn(*args, **kw): `warmup` untimed calls, then `repeats` samples of per-call seconds.

    min_time_s: if set, each repeat runs batches of 1, 2, 4, ... calls until that much clock time
        has passed and records elapsed / calls (like timeit's autorange), for sub-microsecond calls.
    clock: a function returning integer nanoseconds; injectable so tests can script it.
    disable_gc: pause Python's cyclic garbage collector while timing (restored afterwards).
    """

    def __init__(self, warmup: int = 3, repeats: int = 10, min_time_s: float | None = None,
                 clock: Callable[[], int] = time.perf_counter_ns, disable_gc: bool = True):
        if repeats < 1:
            raise ValueError(f"repeats must be at least 1, got {repeats}")
        self.warmup = warmup
        self.repeats = repeats
        self.min_time_s = min_time_s
        self.clock = clock
        self.disable_gc = disable_gc

    def _sample(self, fn, args, kw) -> float:
        """One repeat: seconds per call, reading the clock in the documented pattern."""
        ### BEGIN SOLUTION
        clock = self.clock
        if self.min_time_s is None:
            start = clock()
            fn(*args, **kw)
            return (clock() - start) / 1e9
        min_time_ns = self.min_time_s * 1e9
        calls, batch = 0, 1
        start = clock()
        while True:
            for _ in itertools.repeat(None, batch):  # timeit's loop: no int object per call
                fn(*args, **kw)
            calls += batch
            elapsed_ns = clock() - start
            if elapsed_ns >= min_time_ns:
                return elapsed_ns / calls / 1e9
            batch *= 2
        ### END SOLUTION

    def measure(self, fn: Callable, *args, **kw) -> TimingStats:
        """Warm up, take `repeats` samples with the collector paused if asked, and summarise them."""
        ### BEGIN SOLUTION
        for _ in range(self.warmup):
            fn(*args, **kw)
        gc_was_on = gc.isenabled()
        if self.disable_gc:
            gc.disable()
        try:
            samples = [self._sample(fn, args, kw) for _ in range(self.repeats)]
        finally:
            if gc_was_on:
                gc.enable()
        return TimingStats.from_samples(samples)
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-timer", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def scripted_clock(readings_ns):
    """A fake clock: each call returns the next scripted nanosecond value; running out is an error."""
    readings = iter(readings_ns)
    return lambda: next(readings)


def test_unit_timer_per_call_samples_from_fake_clock():
    calls = []
    # Three repeats, two readings each: durations 5 ms, 1 ms, 3 ms.
    timer = Timer(warmup=2, repeats=3, clock=scripted_clock([0, 5_000_000, 10_000_000, 11_000_000, 20_000_000, 23_000_000]))
    stats = timer.measure(lambda v: calls.append(v), 7)
    assert calls == [7] * 5  # 2 warm-up calls + 3 timed calls, arguments passed through
    np.testing.assert_allclose(stats.samples_s, [0.005, 0.001, 0.003], rtol=0, atol=1e-15)
    assert abs(stats.median_s - 0.003) < 1e-15 and abs(stats.min_s - 0.001) < 1e-15


def test_unit_timer_min_time_batches():
    calls = []
    # min_time 10 ms; repeat 1: start 0, after 1 call 4 ms, after 2 more 8 ms, after 4 more 12 ms -> 12 ms / 7 calls.
    # repeat 2: start 100 ms, after 1 call 125 ms -> 25 ms / 1 call.
    ms = 1_000_000
    timer = Timer(warmup=0, repeats=2, min_time_s=0.010,
                  clock=scripted_clock([0, 4 * ms, 8 * ms, 12 * ms, 100 * ms, 125 * ms]))
    stats = timer.measure(lambda: calls.append(1))
    assert len(calls) == 8
    np.testing.assert_allclose(stats.samples_s, [0.012 / 7, 0.025], rtol=1e-12)


def timer_side(library_fn):
    """library_fn as it exists in the process where Timer runs (graded tests may run apart from it).

    Timer keeps its clock as given, so a library function handed over as a clock and read back is
    that process's own function: calling it there reads *that* garbage collector, not this one's.
    """
    return Timer(clock=library_fn).clock


def test_unit_timer_restores_gc_state():
    collector_on, enable, disable = timer_side(gc.isenabled), timer_side(gc.enable), timer_side(gc.disable)
    seen = []
    enable()
    Timer(warmup=0, repeats=2, clock=scripted_clock(range(4))).measure(lambda: seen.append(collector_on()))
    assert seen == [False, False] and collector_on()
    disable()
    try:
        Timer(warmup=0, repeats=1, clock=scripted_clock(range(2))).measure(lambda: seen.append(collector_on()))
        assert seen == [False, False, False]
        assert not collector_on()  # a collector that was off stays off
    finally:
        enable()


test_unit_timer_per_call_samples_from_fake_clock()
test_unit_timer_min_time_batches()
test_unit_timer_restores_gc_state()
### BEGIN HIDDEN TESTS
def test_hidden_timer_gc_kept_on_when_asked_and_restored_on_error():
    collector_on, enable = timer_side(gc.isenabled), timer_side(gc.enable)
    enable()
    seen = []
    Timer(warmup=0, repeats=1, disable_gc=False, clock=scripted_clock([0, 1])).measure(lambda: seen.append(collector_on()))
    assert seen == [True]

    def boom():
        seen.append(collector_on())
        raise RuntimeError("fails inside the timed region")

    try:
        Timer(warmup=0, repeats=1, clock=scripted_clock([0, 1])).measure(boom)
        raise AssertionError("the error inside the timed region must propagate")
    except RuntimeError:
        pass
    assert seen == [True, False] and collector_on()


def test_hidden_timer_min_time_exact_threshold_and_kwargs():
    got = []
    ms = 1_000_000
    # A reading exactly at min_time stops the repeat: 2 ms after 1 call -> 2 ms per call.
    timer = Timer(warmup=1, repeats=1, min_time_s=0.002, clock=scripted_clock([0, 2 * ms]))
    stats = timer.measure(lambda a, b=0: got.append(a + b), 1, b=2)
    assert got == [3, 3] and abs(stats.samples_s[0] - 0.002) < 1e-15


test_hidden_timer_gc_kept_on_when_asked_and_restored_on_error()
test_hidden_timer_min_time_exact_threshold_and_kwargs()
### END HIDDEN TESTS

# %% [markdown]
# ### Analysis: what does the clock itself cost?
#
# Time a function that does nothing. Per-call timing reports the cost of a Python call *plus*
# one clock read; batched timing (`min_time_s`) spreads the clock reads over many calls. The gap
# between the two columns is the error you make when you time a microsecond-scale call one at a time.

# %%
def nothing():
    return None


small_a = np.ones((32, 32), dtype=np.float32)
timing_cases = [("empty call", nothing, ()), ("np.add 32x32", np.add, (small_a, small_a)),
                ("np.matmul 32x32", np.matmul, (small_a, small_a))]
min_time = 0.002 if QUICK else 0.05
print(f"{'call':<18}{'per-call median (ns)':>22}{'batched median (ns)':>22}{'per-call cv':>13}")
for label, fn, args in timing_cases:
    per_call = Timer(warmup=5, repeats=200 if QUICK else 2000).measure(fn, *args)
    batched = Timer(warmup=5, repeats=5, min_time_s=min_time).measure(fn, *args)
    print(f"{label:<18}{per_call.median_s * 1e9:>22.0f}{batched.median_s * 1e9:>22.0f}{per_call.cv:>13.2f}")

# %% [markdown]
# ## Part 2: Memory
#
# Two views of memory, and they disagree on purpose:
#
# * **`tracemalloc`** records every allocation made through Python's allocator hooks *while it is
#   tracing*, with the peak. NumPy registers its data buffers with `tracemalloc`, so a
#   `np.ones(10 MB)` shows up as 10 MB. `reset_peak()` lets us measure the peak of one call.
# * **RSS** (resident set size, via `psutil`) is what the operating system has given the process.
#   It moves in pages, lags behind frees (the allocator keeps memory for reuse), and includes
#   everything: the interpreter, libraries, BLAS buffers. It is the number a machine runs out of.
#
# Definitions used below, all measured around one call `fn(*args)`:
#
# | field | meaning |
# |---|---|
# | `peak_bytes` | highest traced bytes during the call, minus the traced bytes at its start |
# | `net_bytes` | traced bytes still held after the call (the result included), minus the start |
# | `rss_before`, `rss_after` | process RSS just before and just after |
#
# The garbage collector runs once before the measurement so that garbage from earlier cells is not
# freed inside our window (which would make `net_bytes` negative for no reason of the call's own).

# %% nbgrader={"grade": false, "grade_id": "memory-profiler", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def process_rss_bytes() -> int:
    """Resident set size of this process, in bytes, as the operating system reports it."""
    return psutil.Process().memory_info().rss


@dataclass
class MemoryStats:
    """Bytes allocated by one call or one with-block (traced by tracemalloc) and process RSS around it."""

    peak_bytes: int = 0
    net_bytes: int = 0
    rss_before: int = 0
    rss_after: int = 0
    result: Any = None


@dataclass
class LeakReport:
    """Traced bytes retained after each of several calls; growth per call above tolerance is a leak."""

    retained_bytes: list[int]
    bytes_per_call: float
    tolerance_bytes: int

    @property
    def leaking(self) -> bool:
        return self.bytes_per_call > self.tolerance_bytes


class MemoryProfiler:
    """Peak and net allocation of a call (tracemalloc), RSS around it (psutil), and a leak check.

    Nesting measurements is allowed, but an inner one resets tracemalloc's peak, so an enclosing
    measurement's peak then only covers the part after the inner one started.
    """

    @contextmanager
    def track(self):
        """Measure the with-block: yields a MemoryStats that is filled in when the block ends."""
        ### BEGIN SOLUTION
        stats = MemoryStats()
        gc.collect()
        started_here = not tracemalloc.is_tracing()
        if started_here:
            tracemalloc.start()
        tracemalloc.reset_peak()
        start_bytes, _ = tracemalloc.get_traced_memory()
        stats.rss_before = process_rss_bytes()
        try:
            yield stats
        finally:
            current, peak = tracemalloc.get_traced_memory()
            stats.rss_after = process_rss_bytes()
            if started_here:
                tracemalloc.stop()
            stats.peak_bytes = peak - start_bytes
            stats.net_bytes = current - start_bytes
        ### END SOLUTION

    def measure(self, fn: Callable, *args, **kw) -> MemoryStats:
        """Run fn(*args, **kw) once under `track`; the result is kept in `.result` (and counted in net)."""
        ### BEGIN SOLUTION
        with self.track() as stats:
            stats.result = fn(*args, **kw)
        return stats
        ### END SOLUTION

    def leak_check(self, fn: Callable, *args, calls: int = 5, tolerance_bytes: int = 4096, **kw) -> LeakReport:
        """Call fn `calls` times (results dropped) and report the traced bytes retained after each call.

        One untraced call runs first, so a cache that fills once is not mistaken for a leak.
        bytes_per_call is the growth from the first to the last counted call, divided by calls - 1.
        """
        ### BEGIN SOLUTION
        if calls < 2:
            raise ValueError(f"leak_check needs calls >= 2 to see growth, got {calls}")
        fn(*args, **kw)
        gc.collect()
        started_here = not tracemalloc.is_tracing()
        if started_here:
            tracemalloc.start()
        try:
            baseline, _ = tracemalloc.get_traced_memory()
            retained = []
            for _ in range(calls):
                fn(*args, **kw)
                gc.collect()
                retained.append(tracemalloc.get_traced_memory()[0] - baseline)
        finally:
            if started_here:
                tracemalloc.stop()
        growth = (retained[-1] - retained[0]) / (calls - 1)
        return LeakReport(retained_bytes=retained, bytes_per_call=growth, tolerance_bytes=tolerance_bytes)
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-memory-profiler", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
TEN_MB = 10 * 2**20


def test_unit_memory_sees_a_returned_10mb_array():
    stats = MemoryProfiler().measure(np.ones, TEN_MB // 8, dtype=np.float64)
    assert stats.result.nbytes == TEN_MB
    assert TEN_MB <= stats.peak_bytes < TEN_MB + 2**16
    assert TEN_MB <= stats.net_bytes < TEN_MB + 2**16
    assert stats.rss_before > 0 and stats.rss_after > 0


def test_unit_memory_temporary_shows_in_peak_not_net():
    values = np.arange(TEN_MB // 8, dtype=np.float64)
    # np.median partitions a copy of its input: a 10 MB temporary, freed before it returns a scalar.
    stats = MemoryProfiler().measure(np.median, values)
    assert stats.result == (values.size - 1) / 2
    assert stats.peak_bytes >= TEN_MB
    assert abs(stats.net_bytes) < 2**16  # the 10 MB copy was freed before the call returned


test_unit_memory_sees_a_returned_10mb_array()
test_unit_memory_temporary_shows_in_peak_not_net()
### BEGIN HIDDEN TESTS
def test_hidden_memory_track_block_keeps_what_the_block_built():
    profiler = MemoryProfiler()
    Linear(8, 8, seed=0)  # one small build first, so one-time set-up of the layer code is not counted
    with profiler.track() as stats:
        kept = Linear(768, 1024, seed=0)  # float32 weight and bias, still alive when the block ends
    parameter_bytes = (768 * 1024 + 1024) * 4
    assert parameter_bytes <= stats.net_bytes < parameter_bytes + 2**16
    assert stats.peak_bytes >= stats.net_bytes
    assert stats.rss_before > 0 and stats.rss_after > 0
    assert kept.weight.shape == (768, 1024)
    again = profiler.measure(np.ones, 2**17)  # the profiler is reusable after a block
    assert 2**20 <= again.net_bytes < 2**20 + 2**16


def test_hidden_memory_nested_measurements_and_tracing_state():
    profiler = MemoryProfiler()
    # tracemalloc belongs to the process the profiler runs in: take_snapshot, handed over through a
    # Timer's clock, runs there (and raises RuntimeError unless that process is tracing)
    take_snapshot = Timer(clock=tracemalloc.take_snapshot).clock
    values = np.arange(TEN_MB // 8, dtype=np.float64)
    with profiler.track() as outer:
        kept = profiler.measure(np.ones, TEN_MB // 8)        # 10 MB that stay alive inside the block
        profiler.measure(np.median, values)                   # a 10 MB temporary, freed again
        small = profiler.measure(np.ones, 1000)               # inner: its own peak and net only
        take_snapshot()                                       # inner measurements left the tracing on
    assert kept.result.nbytes == TEN_MB
    assert 8000 <= small.peak_bytes < 2**16 and 8000 <= small.net_bytes < 2**16
    assert outer.net_bytes >= TEN_MB
    try:
        take_snapshot()
    except RuntimeError:
        pass
    else:
        raise AssertionError("track must stop the tracing it started")


test_hidden_memory_track_block_keeps_what_the_block_built()
test_hidden_memory_nested_measurements_and_tracing_state()
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test-leak-check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_leak_check_finds_a_growing_list():
    hoard = []

    def leaky():
        hoard.append(Linear(512, 1024, seed=0))  # every call builds a 2 MiB layer that is kept forever

    report = MemoryProfiler().leak_check(leaky, calls=4)
    assert len(hoard) == 5  # one untraced warm-up call + 4 counted calls
    assert len(report.retained_bytes) == 4
    per_layer = (512 * 1024 + 1024) * 4  # float32 weight and bias
    assert per_layer <= report.bytes_per_call < per_layer + 2**14
    assert report.leaking


def test_unit_leak_check_clears_a_pure_function():
    report = MemoryProfiler().leak_check(np.arange, 2**18, calls=4)  # a fresh 2 MiB array, dropped each call
    assert len(report.retained_bytes) == 4
    assert all(abs(r) < 2**16 for r in report.retained_bytes), report.retained_bytes  # retained, not peak
    assert abs(report.bytes_per_call) <= report.tolerance_bytes
    assert not report.leaking


test_unit_leak_check_finds_a_growing_list()
test_unit_leak_check_clears_a_pure_function()
### BEGIN HIDDEN TESTS
def test_hidden_leak_check_one_time_cache_is_not_a_leak():
    cache = {}

    def cached(n):
        if n not in cache:
            cache[n] = Linear(n, n, seed=0)  # 1 MiB of weights, built on the first call only
        return n

    report = MemoryProfiler().leak_check(cached, 512, calls=3)
    assert not report.leaking and len(cache) == 1
    assert abs(report.retained_bytes[0]) < 2**16  # filled by the untraced first call, before the baseline


def test_hidden_leak_check_arguments_and_tracing_state():
    profiler = MemoryProfiler()
    take_snapshot = Timer(clock=tracemalloc.take_snapshot).clock   # runs where the profiler runs
    for too_few in (0, 1):
        try:
            profiler.leak_check(np.arange, 10, calls=too_few)
        except ValueError:
            continue
        raise AssertionError(f"calls={too_few} must raise ValueError (growth needs two calls)")
    two = profiler.leak_check(np.arange, 10, calls=2, tolerance_bytes=123)
    assert len(two.retained_bytes) == 2 and two.tolerance_bytes == 123
    try:
        take_snapshot()
    except RuntimeError:
        pass
    else:
        raise AssertionError("leak_check must stop the tracing it started")
    with profiler.track() as outer:
        kept = profiler.measure(np.ones, 2**17)
        inside = profiler.leak_check(np.arange, 10, calls=2)
        take_snapshot()                                   # a leak check inside a block leaves its tracing on
    assert kept.result.nbytes == 2**20 and outer.net_bytes >= 2**20
    # counted from what was traced when the check began: the 1 MiB kept before it is not retained by fn
    assert all(abs(r) < 2**16 for r in inside.retained_bytes), inside.retained_bytes


test_hidden_leak_check_one_time_cache_is_not_a_leak()
test_hidden_leak_check_arguments_and_tracing_state()
### END HIDDEN TESTS

# %% [markdown]
# ### Analysis: what does a Linear forward really allocate?
#
# The earlier version of the course guessed activation memory as "2× the input". Measure instead:
# a `Linear` forward computes `x @ W` (one output-sized array) and then adds the bias, which
# allocates a *second* output-sized array while the first is still alive. The exact output size is
# a formula; the peak is measured.

# %%
batch, fan_in, fan_out = (32, 128, 256) if QUICK else (256, 1024, 2048)
layer = Linear(fan_in, fan_out, seed=0)
x_in = Tensor(np.random.default_rng(0).standard_normal((batch, fan_in)).astype(np.float32))
forward_memory = MemoryProfiler().measure(layer, x_in)
output_bytes = forward_memory.result.data.nbytes  # exact: batch * fan_out * 4 bytes
print(f"input {x_in.data.nbytes:,} B; output (exact) {output_bytes:,} B; '2x input' guess {2 * x_in.data.nbytes:,} B")
print(f"measured peak {forward_memory.peak_bytes:,} B = {forward_memory.peak_bytes / output_bytes:.2f} x output")
print(f"measured net  {forward_memory.net_bytes:,} B = {forward_memory.net_bytes / output_bytes:.2f} x output")
print(f"RSS change    {forward_memory.rss_after - forward_memory.rss_before:,} B (pages; the allocator may reuse freed memory)")

# %% [markdown]
# ## Part 3: Counting FLOPs exactly
#
# A FLOP count is not measured: it is *computed* from the shapes, and it is exact only under a
# stated convention. Ours:
#
# * a **MAC** (multiply-accumulate, `acc += a * b`) is **2 FLOPs**;
# * every elementary operation on one element — add, subtract, multiply, divide, compare/max —
#   and every call of a transcendental (`exp`, `tanh`) counts **1 FLOP**. (A transcendental costs
#   many cycles; the convention counts work, not time. This is one reason activations sit far below
#   the roof in Part 5.)
#
# | layer | formula (input `x` with `N` elements, output `y`) |
# |---|---|
# | `Linear(in, out)` on `x` of shape `(..., in)` | `B = N / in` rows (every leading dim is batch); MACs = `B·in·out`; FLOPs = `2·MACs + B·out` (bias adds, if bias) |
# | `ReLU` | `max(x, 0)`: **1** per element |
# | `Sigmoid` | `1 / (1 + exp(-x))`: negate, exp, add, divide = **4** per element |
# | `Tanh` | one `tanh`: **1** per element |
# | `GELU` (tanh form) | `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`: x³ (2), ·0.044715 (1), +x (1), ·√(2/π) (1), tanh (1), +1 (1), ·x (1), ·0.5 (1) = **9** per element |
# | `Softmax` over an axis of length `n` | per row: max (n−1), subtract (n), exp (n), sum (n−1), divide (n) = **5n − 2**; rows = N / n |
#
# The batch dimension matters: a `Linear(784, 128)` on a batch of 64 does 64× the work of one
# sample. Forgetting it under-counts by exactly the batch size.
#
# Counting needs shapes, and the surest way to know every layer's input shape is to run the model
# once. `trace_layers` (given) does that: it walks a `Sequential` (nested ones too) and records each
# leaf layer's input and output. A *registry* maps layer types to counting rules, so a later module
# that defines `Conv2d` or attention adds a rule with `@FLOPCounter.register(Conv2d)` without editing
# this file. A rule has the signature `rule(layer, x, y) -> FlopCount` (a plain int is read as FLOPs
# with 0 MACs). Lookup follows the class hierarchy, so a subclass of `Linear` uses Linear's rule
# unless it registers its own.
#
# An *earlier* module cannot register a rule: module 09's `Conv2d` and pooling layers exist before
# this counter does, and a module never imports a later one. So a layer may also **count itself**:
# a class with a method `flop_count(x, y) -> (flops, macs)` needs no registration (the given
# `counted_by_the_layer` turns the pair into a `FlopCount`). `rule_for` looks for a registered rule
# along the class hierarchy first (so a registration can override a layer's own count), then for a
# `flop_count` method, and only then raises `TypeError`. Module 09's rules, under the convention
# above and consistent with `Linear`:
#
# | layer | formula (output `y` of shape `(N, C_out, H_out, W_out)`) |
# |---|---|
# | `Conv2d(C_in, C_out, (kh, kw))` | MACs = `N·C_out·H_out·W_out·C_in·kh·kw` (padded zeros included: the GEMM multiplies them too); FLOPs = `2·MACs + N·C_out·H_out·W_out` (bias adds, if bias) |
# | `MaxPool2d((kh, kw))` | `kh·kw − 1` comparisons per output element |
# | `AvgPool2d((kh, kw))` | `kh·kw − 1` adds and 1 divide = `kh·kw` per output element |
# | `Flatten` | 0 (a reshape does no arithmetic) |

# %% nbgrader={"grade": false, "grade_id": "flop-counter", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
@dataclass(frozen=True)
class FlopCount:
    """Exact arithmetic of one layer call: FLOPs, and the MACs among them (1 MAC = 2 FLOPs)."""

    flops: int
    macs: int = 0


@dataclass(frozen=True)
class LayerFlops:
    name: str  # position in the model and type, e.g. "0 Linear" or "2.1 ReLU" inside a nested Sequential
    flops: int
    macs: int
    output_shape: tuple


@dataclass
class FlopReport:
    """Per-layer FLOP and MAC counts of one forward pass, in execution order."""

    layers: list[LayerFlops]

    @property
    def total_flops(self) -> int:
        return sum(entry.flops for entry in self.layers)

    @property
    def total_macs(self) -> int:
        return sum(entry.macs for entry in self.layers)


@dataclass
class LayerCall:
    name: str
    layer: Any
    inputs: Any
    output: Any


def trace_layers(model, x, prefix: str = "") -> list[LayerCall]:
    """Run model on x once, leaf layer by leaf layer, recording each leaf's input and output.

    A Sequential (nested ones too) is unrolled; any other object is a leaf and is called as model(x).
    """
    if isinstance(model, Sequential):
        calls = []
        for index, child in enumerate(model.layers):
            child_calls = trace_layers(child, x, prefix=f"{prefix}{index}.")
            calls.extend(child_calls)
            if child_calls:
                x = child_calls[-1].output
        return calls
    position = prefix[:-1] if prefix else "0"
    return [LayerCall(f"{position} {type(model).__name__}", model, x, model(x))]


def counted_by_the_layer(layer, x, y) -> FlopCount:
    """The rule for a layer that counts itself: layer.flop_count(x, y) returns (flops, macs)."""
    flops, macs = layer.flop_count(x, y)
    return FlopCount(flops=int(flops), macs=int(macs))


class FLOPCounter:
    """Exact FLOP and MAC counts per layer, from rules registered per layer type (or the layer's own flop_count)."""

    _rules: dict = {}

    @classmethod
    def register(cls, layer_type: type):
        """Decorator: `@FLOPCounter.register(MyLayer)` on `def rule(layer, x, y) -> FlopCount`."""

        def add(rule):
            cls._rules[layer_type] = rule
            return rule

        return add

    @classmethod
    def rule_for(cls, layer) -> Callable:
        """The rule registered for the layer's class or its nearest registered base class, else
        counted_by_the_layer if the layer has a flop_count method; TypeError if neither."""
        ### BEGIN SOLUTION
        for klass in type(layer).__mro__:
            if klass in cls._rules:
                return cls._rules[klass]
        if hasattr(layer, "flop_count"):
            return counted_by_the_layer
        raise TypeError(
            f"no FLOP rule for {type(layer).__name__}; register one with "
            f"@FLOPCounter.register({type(layer).__name__}) or give the class a flop_count(x, y) method"
        )
        ### END SOLUTION

    def count_call(self, layer, x, y) -> FlopCount:
        """Apply the layer's rule to one call (input x, output y); a plain int result means FLOPs, 0 MACs."""
        ### BEGIN SOLUTION
        counted = self.rule_for(layer)(layer, x, y)
        return counted if isinstance(counted, FlopCount) else FlopCount(flops=int(counted))
        ### END SOLUTION

    def count(self, model, x) -> FlopReport:
        """Run model on x once (via trace_layers) and count each leaf layer's call."""
        ### BEGIN SOLUTION
        entries = []
        for call in trace_layers(model, x):
            counted = self.count_call(call.layer, call.inputs, call.output)
            entries.append(LayerFlops(call.name, counted.flops, counted.macs, tuple(call.output.shape)))
        return FlopReport(entries)
        ### END SOLUTION


def register_flop_rule(layer_type: type, rule: Callable) -> None:
    """Same as the decorator: make FLOPCounter use rule(layer, x, y) for layer_type."""
    FLOPCounter.register(layer_type)(rule)


# %% nbgrader={"grade": false, "grade_id": "flop-rules", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
# FLOPs per element under the convention above (transcendental call = 1 FLOP).
ELEMENTWISE_FLOPS_PER_ELEMENT = {ReLU: 1, Sigmoid: 4, Tanh: 1, GELU: 9}


@FLOPCounter.register(Linear)
def linear_flops(layer, x, y) -> FlopCount:
    """x @ W (+ b) with W of shape (in, out): every leading dimension of x is a batch dimension."""
    ### BEGIN SOLUTION
    fan_in, fan_out = layer.weight.shape
    rows = x.size // fan_in
    macs = rows * fan_in * fan_out
    has_bias = getattr(layer, "bias", None) is not None
    return FlopCount(flops=2 * macs + (rows * fan_out if has_bias else 0), macs=macs)
    ### END SOLUTION


def elementwise_flops(layer, x, y) -> FlopCount:
    """Per-element cost from ELEMENTWISE_FLOPS_PER_ELEMENT (looked up along the class hierarchy) times y.size."""
    ### BEGIN SOLUTION
    for klass in type(layer).__mro__:
        if klass in ELEMENTWISE_FLOPS_PER_ELEMENT:
            return FlopCount(flops=ELEMENTWISE_FLOPS_PER_ELEMENT[klass] * y.size)
    raise TypeError(f"{type(layer).__name__} has no per-element cost in ELEMENTWISE_FLOPS_PER_ELEMENT")
    ### END SOLUTION


for _activation in ELEMENTWISE_FLOPS_PER_ELEMENT:
    register_flop_rule(_activation, elementwise_flops)


@FLOPCounter.register(Softmax)
def softmax_flops(layer, x, y) -> FlopCount:
    """Per row of length n along layer.axis (default -1): 5n - 2 FLOPs."""
    ### BEGIN SOLUTION
    n = y.shape[getattr(layer, "axis", -1)]
    return FlopCount(flops=(y.size // n) * (5 * n - 2))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-flop-rules", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def flops_of(layer, x_shape):
    x = Tensor(np.ones(x_shape, dtype=np.float32))
    return FLOPCounter().count(layer, x)


def test_unit_linear_flops_include_batch_and_bias():
    for batch, fan_in, fan_out in [(1, 3, 2), (64, 784, 128), (7, 5, 11)]:
        report = flops_of(Linear(fan_in, fan_out, seed=0), (batch, fan_in))
        multiply_adds = batch * fan_in * fan_out  # by hand: one MAC per (row, input, output) triple
        assert report.total_macs == multiply_adds
        assert report.total_flops == multiply_adds * 2 + batch * fan_out
        assert report.layers[0].output_shape == (batch, fan_out)


def test_unit_linear_flops_every_leading_dim_is_batch():
    report = flops_of(Linear(6, 4, seed=0), (2, 3, 6))  # 2*3 = 6 rows
    assert report.total_macs == 6 * 6 * 4
    assert report.total_flops == 2 * 144 + 6 * 4


def test_unit_activation_flops_per_element():
    shape = (4, 5)  # 20 elements
    assert flops_of(ReLU(), shape).total_flops == 20
    assert flops_of(Sigmoid(), shape).total_flops == 80
    assert flops_of(Tanh(), shape).total_flops == 20
    assert flops_of(GELU(), shape).total_flops == 180
    assert flops_of(Softmax(), shape).total_flops == 4 * (5 * 5 - 2)  # 4 rows of length 5
    assert flops_of(ReLU(), shape).total_macs == 0


test_unit_linear_flops_include_batch_and_bias()
test_unit_linear_flops_every_leading_dim_is_batch()
test_unit_activation_flops_per_element()
### BEGIN HIDDEN TESTS
def test_hidden_linear_without_bias_and_softmax_axis0():
    plain = Linear(8, 3, bias=False, seed=0)
    report = flops_of(plain, (10, 8))
    assert report.total_flops == 2 * 10 * 8 * 3 and report.total_macs == 240
    assert flops_of(Softmax(axis=0), (4, 5)).total_flops == 5 * (5 * 4 - 2)  # 5 columns of length 4
    # counts are exact integers, never floats that merely compare equal
    assert isinstance(flops_of(Softmax(), (4, 5)).total_flops, int)
    assert isinstance(flops_of(Linear(6, 4, seed=0), (2, 3, 6)).total_macs, int)
    y = Tensor(np.ones((2, 3), dtype=np.float32))
    try:
        elementwise_flops(Softmax(), y, y)   # Softmax has its own rule, no per-element cost
    except TypeError:
        pass
    else:
        raise AssertionError("elementwise_flops on a layer without a per-element cost must raise TypeError")


test_hidden_linear_without_bias_and_softmax_axis0()
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test-flop-counter", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_flop_counter_walks_nested_sequential():
    mlp = Sequential(Linear(10, 20, seed=1), ReLU(), Sequential(Linear(20, 5, seed=2), Sigmoid()))
    x = Tensor(np.ones((3, 10), dtype=np.float32))
    report = FLOPCounter().count(mlp, x)
    assert [entry.name for entry in report.layers] == ["0 Linear", "1 ReLU", "2.0 Linear", "2.1 Sigmoid"]
    by_hand = [2 * 3 * 10 * 20 + 3 * 20, 3 * 20, 2 * 3 * 20 * 5 + 3 * 5, 4 * 3 * 5]
    assert [entry.flops for entry in report.layers] == by_hand
    assert report.total_flops == sum(by_hand)
    assert report.total_macs == 3 * 10 * 20 + 3 * 20 * 5


def test_unit_flop_counter_registry_extends_and_errors():
    class Doubler:  # a layer type this module has never heard of
        def __call__(self, x):
            return x * 2

    x = Tensor(np.ones((2, 3), dtype=np.float32))
    try:
        FLOPCounter().count(Doubler(), x)
        raise AssertionError("an unregistered layer must raise")
    except TypeError as err:
        assert "Doubler" in str(err)

    @FLOPCounter.register(Doubler)
    def doubler_rule(layer, x, y):
        return y.size  # a plain int: FLOPs, no MACs

    report = FLOPCounter().count(Sequential(Doubler(), ReLU()), x)
    assert [entry.flops for entry in report.layers] == [6, 6] and report.total_macs == 0


test_unit_flop_counter_walks_nested_sequential()
test_unit_flop_counter_registry_extends_and_errors()
### BEGIN HIDDEN TESTS
def test_hidden_flop_counter_lookup_follows_the_class_hierarchy():
    # A hierarchy every process shares: bool is a subclass of int (and True, 3, 2.5 cross as themselves).
    counter = FLOPCounter()
    x = Tensor(np.ones((2, 3), dtype=np.float32))
    y = Tensor(np.ones((3, 4), dtype=np.float32))
    register_flop_rule(int, lambda layer, x, y: FlopCount(flops=2 * x.size * y.size, macs=x.size * y.size))
    inherited = counter.count_call(True, x, y)  # bool has no rule of its own: the nearest base's applies
    assert (inherited.flops, inherited.macs) == (144, 72)

    @FLOPCounter.register(bool)
    def bool_rule(layer, x, y):
        return y.size  # a plain int: FLOPs, no MACs

    own, base = counter.count_call(True, x, y), counter.count_call(3, x, y)
    assert (own.flops, own.macs) == (12, 0)  # the nearer rule wins over the base class's
    assert (base.flops, base.macs) == (144, 72)  # registering a subclass leaves the base alone
    try:
        counter.count_call(2.5, x, y)
        raise AssertionError("float has no rule anywhere on its hierarchy")
    except TypeError as err:
        assert "float" in str(err)


def test_hidden_flop_counter_uses_a_layers_own_count():
    class CountsItself:  # like module 09's Conv2d: defined before the counter, so it cannot register
        def __call__(self, x):
            return x * 3

        def flop_count(self, x, y):
            return 2 * y.size + 1, y.size

    x = Tensor(np.ones((2, 5), dtype=np.float32))
    report = FLOPCounter().count(Sequential(CountsItself(), ReLU()), x)
    assert [entry.flops for entry in report.layers] == [21, 10], "use the layer's flop_count(x, y) -> (flops, macs)"
    assert [entry.macs for entry in report.layers] == [10, 0]

    @FLOPCounter.register(CountsItself)
    def registered_rule(layer, x, y):
        return FlopCount(flops=7, macs=1)

    overridden = FLOPCounter().count(CountsItself(), x)
    assert (overridden.total_flops, overridden.total_macs) == (7, 1), "a registered rule wins over flop_count"


test_hidden_flop_counter_lookup_follows_the_class_hierarchy()
test_hidden_flop_counter_uses_a_layers_own_count()
### END HIDDEN TESTS

# %% [markdown]
# ## Part 4: The Profiler
#
# `Profiler` puts the three instruments behind one object and adds the view that matters most when
# optimising a model: a **per-layer table**. For each leaf layer, on the input it actually receives
# in a forward pass:
#
# | column | kind |
# |---|---|
# | `time ms` | measured: median of the Timer's repeats |
# | `FLOPs` | computed: the registered rule |
# | `params` | computed: number of parameter elements |
# | `out bytes` | computed: `output.nbytes` |
# | `GFLOP/s` | measured: FLOPs / median seconds |
# | `bytes (estimate)` | *estimate*: input + parameter + output bytes, each touched once — the least traffic the layer can cause; real traffic is higher when data does not stay in cache |
#
# It also works as a context manager: `with Profiler() as p: ...` measures the block's elapsed
# time (with the profiler's clock) and its memory (`p.memory.peak_bytes`, `p.memory.net_bytes`).

# %% nbgrader={"grade": false, "grade_id": "profiler", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
@dataclass
class LayerProfile:
    """One row of Profiler.profile_layers: measured time, computed FLOPs/params/bytes, estimated traffic."""

    name: str
    median_s: float
    flops: int
    parameters: int
    output_bytes: int
    bytes_moved_estimate: int
    timing: TimingStats = field(repr=False, default=None)

    @property
    def median_ms(self) -> float:
        return self.median_s * 1e3

    @property
    def achieved_gflops(self) -> float:
        return self.flops / self.median_s / 1e9 if self.median_s > 0 else float("nan")


class Profiler:
    """Parameters, FLOPs, memory, latency and a per-layer table for a tinytorch model.

    clock: passed to every Timer (integer nanoseconds), so tests can script it.
    """

    def __init__(self, clock: Callable[[], int] = time.perf_counter_ns):
        self.clock = clock
        self.elapsed_s: float | None = None
        self.memory: MemoryStats | None = None

    def count_parameters(self, model) -> int:
        """Number of parameter elements; 0 for a layer without a parameters() method (an activation)."""
        ### BEGIN SOLUTION
        if not hasattr(model, "parameters"):
            return 0
        return int(sum(p.size for p in model.parameters()))
        ### END SOLUTION

    def count_flops(self, model, x) -> int:
        """Total FLOPs of one forward pass of model on x, from FLOPCounter."""
        ### BEGIN SOLUTION
        return FLOPCounter().count(model, x).total_flops
        ### END SOLUTION

    def measure_memory(self, model, x) -> MemoryStats:
        """Measured peak and net bytes of one forward pass (the output is in .result)."""
        ### BEGIN SOLUTION
        return MemoryProfiler().measure(model, x)
        ### END SOLUTION

    def measure_latency(self, model, x, warmup: int = 3, iterations: int = 10,
                        min_time_s: float | None = None) -> TimingStats:
        """Forward-pass latency: TimingStats with median_ms, p95_ms, p99_ms (see Timer for min_time_s)."""
        ### BEGIN SOLUTION
        timer = Timer(warmup=warmup, repeats=iterations, min_time_s=min_time_s, clock=self.clock)
        return timer.measure(model, x)
        ### END SOLUTION

    def profile_layers(self, model, x, warmup: int = 2, iterations: int = 5,
                       min_time_s: float | None = None) -> list[LayerProfile]:
        """One LayerProfile per leaf layer, each timed on the input it receives in a forward pass."""
        ### BEGIN SOLUTION
        counter = FLOPCounter()
        rows = []
        for call in trace_layers(model, x):
            flops = counter.count_call(call.layer, call.inputs, call.output).flops
            timing = self.measure_latency(call.layer, call.inputs, warmup, iterations, min_time_s)
            param_bytes = sum(p.data.nbytes for p in call.layer.parameters()) if hasattr(call.layer, "parameters") else 0
            out_bytes = call.output.data.nbytes
            rows.append(LayerProfile(
                name=call.name,
                median_s=timing.median_s,
                flops=flops,
                parameters=self.count_parameters(call.layer),
                output_bytes=out_bytes,
                bytes_moved_estimate=call.inputs.data.nbytes + param_bytes + out_bytes,
                timing=timing,
            ))
        return rows
        ### END SOLUTION

    def __enter__(self) -> "Profiler":
        """Start measuring the block: memory via MemoryProfiler.track, time via self.clock."""
        ### BEGIN SOLUTION
        self._memory_block = MemoryProfiler().track()
        self.memory = self._memory_block.__enter__()
        self._start_ns = self.clock()
        return self
        ### END SOLUTION

    def __exit__(self, *exc_info) -> bool:
        """Stop measuring: sets elapsed_s and fills self.memory; exceptions propagate."""
        ### BEGIN SOLUTION
        self.elapsed_s = (self.clock() - self._start_ns) / 1e9
        self._memory_block.__exit__(*exc_info)
        return False
        ### END SOLUTION


def format_layer_table(rows: list[LayerProfile]) -> str:
    """The per-layer table as aligned text, with a total row."""
    header = f"{'layer':<14}{'time ms':>10}{'FLOPs':>14}{'params':>10}{'out bytes':>12}{'GFLOP/s':>10}{'bytes (estimate)':>18}"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r.name:<14}{r.median_ms:>10.4f}{r.flops:>14,}{r.parameters:>10,}{r.output_bytes:>12,}"
                     f"{r.achieved_gflops:>10.2f}{r.bytes_moved_estimate:>18,}")
    total_s = sum(r.median_s for r in rows)
    total_flops = sum(r.flops for r in rows)
    lines.append(f"{'sum of layers':<14}{total_s * 1e3:>10.4f}{total_flops:>14,}{sum(r.parameters for r in rows):>10,}"
                 f"{'':>12}{total_flops / total_s / 1e9 if total_s > 0 else float('nan'):>10.2f}")
    return "\n".join(lines)


# %% nbgrader={"grade": true, "grade_id": "test-profiler", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def small_mlp():
    return Sequential(Linear(12, 16, seed=0), ReLU(), Linear(16, 4, seed=1), Softmax())


def test_unit_profiler_counts_match_formulas():
    profiler, mlp = Profiler(), small_mlp()
    x = Tensor(np.ones((5, 12), dtype=np.float32))
    assert profiler.count_parameters(mlp) == (12 * 16 + 16) + (16 * 4 + 4)
    assert profiler.count_parameters(ReLU()) == 0
    by_hand = (2 * 5 * 12 * 16 + 5 * 16) + 5 * 16 + (2 * 5 * 16 * 4 + 5 * 4) + 5 * (5 * 4 - 2)
    assert profiler.count_flops(mlp, x) == by_hand
    memory = profiler.measure_memory(mlp, x)
    np.testing.assert_allclose(memory.result.data.sum(axis=-1), np.ones(5), rtol=1e-5)
    assert memory.peak_bytes >= memory.result.data.nbytes


def test_unit_profiler_latency_and_layers_on_fake_clock():
    ticks = iter(range(0, 10**12, 2_000_000))  # every clock read is 2 ms after the previous one
    profiler = Profiler(clock=lambda: next(ticks))
    mlp, x = small_mlp(), Tensor(np.ones((5, 12), dtype=np.float32))
    latency = profiler.measure_latency(mlp, x, warmup=1, iterations=4)
    assert latency.samples_s == [0.002] * 4 and abs(latency.median_ms - 2.0) < 1e-12
    rows = profiler.profile_layers(mlp, x, warmup=0, iterations=3)
    assert [r.name for r in rows] == ["0 Linear", "1 ReLU", "2 Linear", "3 Softmax"]
    first = rows[0]
    assert abs(first.median_s - 0.002) < 1e-15
    assert first.flops == 2 * 5 * 12 * 16 + 5 * 16 and first.parameters == 12 * 16 + 16
    assert first.output_bytes == 5 * 16 * 4
    assert first.bytes_moved_estimate == 5 * 12 * 4 + (12 * 16 + 16) * 4 + 5 * 16 * 4
    assert abs(first.achieved_gflops - first.flops / 0.002 / 1e9) < 1e-9
    assert rows[1].parameters == 0 and rows[1].flops == 5 * 16


def test_unit_profiler_context_manager():
    ticks = iter([0, 7_000_000])
    with Profiler(clock=lambda: next(ticks)) as p:
        block = Linear(1024, 2048, seed=3)  # float32 weight and bias, still alive when the block ends
    parameter_bytes = (1024 * 2048 + 2048) * 4
    assert abs(p.elapsed_s - 0.007) < 1e-15
    assert parameter_bytes <= p.memory.peak_bytes
    assert parameter_bytes <= p.memory.net_bytes < parameter_bytes + 2**16
    assert block.weight.shape == (1024, 2048)


test_unit_profiler_counts_match_formulas()
test_unit_profiler_latency_and_layers_on_fake_clock()
test_unit_profiler_context_manager()
### BEGIN HIDDEN TESTS
def test_hidden_profiler_min_time_and_exception_propagates():
    ms = 1_000_000
    profiler = Profiler(clock=scripted_clock([0, 3 * ms, 6 * ms]))
    stats = profiler.measure_latency(ReLU(), Tensor(np.ones(4, dtype=np.float32)), warmup=0, iterations=1, min_time_s=0.005)
    assert abs(stats.samples_s[0] - 0.002) < 1e-15  # 6 ms over 1 + 2 calls
    try:
        with Profiler(clock=scripted_clock([0, 1])) as p:
            raise KeyError("inside the block")
        raise AssertionError("the exception raised in the block must propagate")
    except KeyError:
        pass
    assert p.elapsed_s == 1e-9
    assert abs(p.memory.net_bytes) < 2**16 and p.memory.peak_bytes >= 0 and p.memory.rss_after > 0


test_hidden_profiler_min_time_and_exception_propagates()


class CountingLeaf:
    """A leaf layer of the test's own: counts its calls, counts its own FLOPs, has no parameters()."""

    def __init__(self):
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        return x

    def flop_count(self, x, y):
        return (3, 0)


def test_hidden_profiler_honours_warmup_iterations_min_time_and_the_clock():
    x = Tensor(np.ones((2, 3), dtype=np.float32))
    profiler = Profiler(clock=scripted_clock(range(0, 10**12, 2_000_000)))   # each read 2 ms after the last
    leaf = CountingLeaf()
    assert profiler.count_parameters(leaf) == 0, "a layer without parameters() has 0 parameters"
    stats = profiler.measure_latency(leaf, x, warmup=1, iterations=4)
    assert (leaf.calls, len(stats.samples_s)) == (1 + 4, 4), "1 warm-up call and 4 timed ones"
    leaf.calls = 0
    rows = profiler.profile_layers(Sequential(leaf), x, warmup=1, iterations=3)
    assert leaf.calls == 1 + 1 + 3, "the traced forward, 1 warm-up call and 3 timed ones"
    assert (rows[0].parameters, rows[0].flops) == (0, 3)
    assert rows[0].bytes_moved_estimate == 2 * x.data.nbytes   # input and output, no parameter bytes
    leaf.calls = 0
    profiler.profile_layers(Sequential(leaf), x, warmup=0, iterations=1, min_time_s=0.005)
    assert leaf.calls > 2, "min_time_s batches calls until 5 ms of clock time have passed"
    with Profiler(clock=scripted_clock([5_000_000, 12_000_000])) as p:
        pass
    assert abs(p.elapsed_s - 0.007) < 1e-15, "elapsed is the difference of the two clock readings"


test_hidden_profiler_honours_warmup_iterations_min_time_and_the_clock()
### END HIDDEN TESTS

# %% [markdown]
# ### Analysis: the per-layer table of a small MLP on your machine

# %%
batch = 32 if QUICK else 128
mlp = Sequential(Linear(784, 256, seed=0), ReLU(), Linear(256, 128, seed=1), GELU(),
                 Linear(128, 10, seed=2), Softmax())
x_batch = Tensor(np.random.default_rng(1).standard_normal((batch, 784)).astype(np.float32))
profiler = Profiler()
layer_min_time = 0.001 if QUICK else 0.02  # batched timing: several layers take only microseconds
rows = profiler.profile_layers(mlp, x_batch, iterations=3 if QUICK else 7, min_time_s=layer_min_time)
print(f"batch {batch}, {profiler.count_parameters(mlp):,} parameters, {profiler.count_flops(mlp, x_batch):,} FLOPs per forward")
print(format_layer_table(rows))
whole = profiler.measure_latency(mlp, x_batch, iterations=3 if QUICK else 7, min_time_s=layer_min_time)
print(f"whole model: median {whole.median_ms:.4f} ms, p95 {whole.p95_ms:.4f} ms, cv {whole.cv:.2f}")

# %% [markdown]
# Read the table by comparing each layer's share of the FLOPs with its share of the *time*. The
# Linear layers do almost all the arithmetic; the activations do a handful of FLOPs per element.
# If an activation's time share is far above its FLOP share on your machine, its GFLOP/s column is
# tiny — the roofline below explains why.
#
# ## Part 5: The roofline
#
# A layer's speed is capped by two ceilings of the machine:
#
# * **compute**: the most FLOP/s the cores can do; we measure it as 1-thread BLAS `matmul` on a
#   square problem (the best-tuned kernel on the machine);
# * **memory bandwidth**: the most bytes/s that can stream through memory; we measure it with
#   `np.copyto` on an array far larger than the caches (read + write bytes counted).
#
# A layer with **arithmetic intensity** `I = FLOPs / bytes moved` can at best reach
# `min(peak GFLOP/s, I × GB/s)`. Below the **ridge point** `I = peak / bandwidth` a layer is
# *memory-bound* (make it move fewer bytes); above it, *compute-bound* (make it do the arithmetic
# faster).
#
# ```
#  GFLOP/s (log)
#     |              ridge
#     |               v______________________  compute roof (1-thread BLAS)
#     |              /       * Linear
#     |            /
#     |          /  memory roof: I x GB/s
#     |        /   * GELU
#     |      /  * ReLU
#     +--------------------------------------- I = FLOP / byte (log)
# ```
#
# The bytes a layer moves are the *estimate* from Part 4 (each byte touched once), so a layer's
# intensity is an upper bound on the true one. The memory roof is bandwidth to main memory: a
# small layer whose data stays in cache can land *above* it (a fraction of roof over 100%), which
# says "this ran from cache", not that the measurement is wrong. Because the compute ceiling is
# single-threaded, the layers are profiled with BLAS limited to one thread as well.

# %% nbgrader={"grade": false, "grade_id": "roofline", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
@dataclass(frozen=True)
class MachineCeilings:
    """Measured ceilings of this machine: 1-thread BLAS GFLOP/s and np.copyto GB/s (read + write)."""

    blas_gflops_1thread: float
    copy_gbs: float

    @property
    def ridge_intensity(self) -> float:
        """FLOP per byte where the memory roof meets the compute roof."""
        return self.blas_gflops_1thread / self.copy_gbs


@dataclass(frozen=True)
class RooflinePoint:
    label: str
    intensity: float  # FLOP per byte moved
    achieved_gflops: float  # measured
    attainable_gflops: float  # min(compute roof, intensity x bandwidth)
    fraction_of_roof: float  # achieved / attainable
    bound: str  # "memory" or "compute": which roof caps this intensity


def measure_ceilings(matmul_n: int = 512, copy_bytes: int = 64 * 2**20, repeats: int = 5,
                     clock: Callable[[], int] = time.perf_counter_ns) -> MachineCeilings:
    """Measure 1-thread float32 matmul GFLOP/s (2 n^3 FLOPs per call) and np.copyto GB/s (2 x bytes per call).

    copy_bytes should be far larger than the last-level cache, or the copy measures the cache.
    """
    ### BEGIN SOLUTION
    rng = np.random.default_rng(0)
    a = rng.standard_normal((matmul_n, matmul_n)).astype(np.float32)
    b = rng.standard_normal((matmul_n, matmul_n)).astype(np.float32)
    timer = Timer(warmup=1, repeats=repeats, clock=clock)
    with threadpool_limits(limits=1):
        matmul_s = timer.measure(np.matmul, a, b).median_s
    source = np.ones(copy_bytes // 4, dtype=np.float32)
    target = np.empty_like(source)
    copy_s = timer.measure(np.copyto, target, source).median_s
    return MachineCeilings(
        blas_gflops_1thread=2 * matmul_n**3 / matmul_s / 1e9,
        copy_gbs=2 * source.nbytes / copy_s / 1e9,
    )
    ### END SOLUTION


def roofline_point(flops: float, bytes_moved: float, seconds: float, ceilings: MachineCeilings,
                   label: str = "") -> RooflinePoint:
    """Place one measured kernel call (flops, bytes moved, median seconds) under this machine's roofs."""
    ### BEGIN SOLUTION
    intensity = flops / bytes_moved
    memory_roof = intensity * ceilings.copy_gbs
    attainable = min(ceilings.blas_gflops_1thread, memory_roof)
    achieved = flops / seconds / 1e9
    return RooflinePoint(
        label=label,
        intensity=intensity,
        achieved_gflops=achieved,
        attainable_gflops=attainable,
        fraction_of_roof=achieved / attainable if attainable > 0 else 0.0,
        bound="memory" if memory_roof < ceilings.blas_gflops_1thread else "compute",
    )
    ### END SOLUTION


def plot_roofline(points: list[RooflinePoint], ceilings: MachineCeilings, ax=None):
    """Log-log roofline: both roofs, the ridge, and one labelled marker per point. Returns the axes."""
    import matplotlib.pyplot as plt  # imported here so the package imports without a display stack

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5))
    shown = [p for p in points if p.intensity > 0 and p.achieved_gflops > 0]
    low = min([ceilings.ridge_intensity / 100] + [p.intensity / 2 for p in shown])
    high = max([ceilings.ridge_intensity * 100] + [p.intensity * 2 for p in shown])
    grid = np.geomspace(low, high, 200)
    ax.loglog(grid, np.minimum(ceilings.blas_gflops_1thread, grid * ceilings.copy_gbs), "k-",
              label=f"roof: {ceilings.copy_gbs:.1f} GB/s, {ceilings.blas_gflops_1thread:.1f} GFLOP/s")
    ax.axvline(ceilings.ridge_intensity, color="grey", linestyle=":",
               label=f"ridge {ceilings.ridge_intensity:.1f} FLOP/B")
    for p in shown:
        ax.plot(p.intensity, p.achieved_gflops, "o")
        ax.annotate(p.label, (p.intensity, p.achieved_gflops), textcoords="offset points", xytext=(5, 5))
    ax.set_xlabel("arithmetic intensity (FLOP / byte, bytes are an estimate)")
    ax.set_ylabel("achieved GFLOP/s (measured)")
    ax.set_title("Roofline of this machine (1 BLAS thread)")
    ax.legend(loc="lower right")
    return ax


# %% nbgrader={"grade": true, "grade_id": "test-roofline", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def test_unit_roofline_point_by_hand():
    roofs = MachineCeilings(blas_gflops_1thread=100.0, copy_gbs=10.0)  # ridge at 10 FLOP/B
    assert abs(roofs.ridge_intensity - 10.0) < 1e-12
    low = roofline_point(flops=2e9, bytes_moved=1e9, seconds=1.0, ceilings=roofs, label="low")
    assert (low.label, low.bound) == ("low", "memory")
    assert abs(low.intensity - 2.0) < 1e-12 and abs(low.achieved_gflops - 2.0) < 1e-12
    assert abs(low.attainable_gflops - 20.0) < 1e-12 and abs(low.fraction_of_roof - 0.1) < 1e-12
    high = roofline_point(flops=5e10, bytes_moved=1e9, seconds=2.0, ceilings=roofs)
    assert high.bound == "compute" and abs(high.attainable_gflops - 100.0) < 1e-9
    assert abs(high.fraction_of_roof - 0.25) < 1e-12


def test_unit_measure_ceilings_formulas_on_fake_clock():
    ticks = iter(range(0, 10**12, 1_000_000))  # every timed call takes exactly 1 ms
    roofs = measure_ceilings(matmul_n=32, copy_bytes=2**20, repeats=3, clock=lambda: next(ticks))
    assert abs(roofs.blas_gflops_1thread - 2 * 32**3 / 1e-3 / 1e9) < 1e-9  # 2 n^3 FLOPs per matmul
    assert abs(roofs.copy_gbs - 2 * 2**20 / 1e-3 / 1e9) < 1e-9  # bytes read + bytes written


test_unit_roofline_point_by_hand()
test_unit_measure_ceilings_formulas_on_fake_clock()
### BEGIN HIDDEN TESTS
def test_hidden_roofline_at_ridge_and_real_ceilings_positive():
    roofs = MachineCeilings(blas_gflops_1thread=50.0, copy_gbs=25.0)
    at_ridge = roofline_point(flops=4e6, bytes_moved=2e6, seconds=1e-3, ceilings=roofs)
    assert abs(at_ridge.attainable_gflops - 50.0) < 1e-9 and abs(at_ridge.achieved_gflops - 4.0) < 1e-9
    real = measure_ceilings(matmul_n=64, copy_bytes=2**20, repeats=2)
    assert np.isfinite(real.blas_gflops_1thread) and real.blas_gflops_1thread > 0
    assert np.isfinite(real.copy_gbs) and real.copy_gbs > 0


test_hidden_roofline_at_ridge_and_real_ceilings_positive()


def test_hidden_roofline_zero_and_tiny_roofs_and_ceilings_repeats():
    roofs = MachineCeilings(blas_gflops_1thread=100.0, copy_gbs=10.0)
    idle = roofline_point(flops=0.0, bytes_moved=1e6, seconds=1e-3, ceilings=roofs)
    assert (idle.attainable_gflops, idle.fraction_of_roof, idle.bound) == (0.0, 0.0, "memory")
    sparse = roofline_point(flops=1e4, bytes_moved=1e6, seconds=1e-3, ceilings=roofs)   # 0.01 FLOP/B
    assert abs(sparse.attainable_gflops - 0.1) < 1e-12 and abs(sparse.fraction_of_roof - 0.1) < 1e-9
    reads = []

    def counting_clock():
        reads.append(None)
        return len(reads) * 1_000_000

    measure_ceilings(matmul_n=8, copy_bytes=2**12, repeats=2, clock=counting_clock)
    with_two = len(reads)
    measure_ceilings(matmul_n=8, copy_bytes=2**12, repeats=4, clock=counting_clock)
    assert len(reads) - with_two > with_two, "4 repeats read the clock more often than 2"


test_hidden_roofline_zero_and_tiny_roofs_and_ceilings_repeats()
### END HIDDEN TESTS

# %% [markdown]
# ### Analysis: this machine's roofline, and where each MLP layer sits

# %%
ceilings = measure_ceilings(matmul_n=256 if QUICK else 1024, copy_bytes=(16 if QUICK else 256) * 2**20,
                            repeats=3 if QUICK else 7)
print(f"1-thread BLAS: {ceilings.blas_gflops_1thread:.1f} GFLOP/s; np.copyto: {ceilings.copy_gbs:.1f} GB/s; "
      f"ridge at {ceilings.ridge_intensity:.1f} FLOP/byte")
with threadpool_limits(limits=1):
    roof_rows = Profiler().profile_layers(mlp, x_batch, iterations=3 if QUICK else 7, min_time_s=layer_min_time)
points = [roofline_point(r.flops, r.bytes_moved_estimate, r.median_s, ceilings, label=r.name) for r in roof_rows]
print(f"{'layer':<12}{'FLOP/B':>9}{'GFLOP/s':>10}{'roof':>10}{'of roof':>9}  bound")
for p in points:
    print(f"{p.label:<12}{p.intensity:>9.2f}{p.achieved_gflops:>10.2f}{p.attainable_gflops:>10.2f}"
          f"{p.fraction_of_roof:>9.1%}  {p.bound}")
plot_roofline(points, ceilings);

# %% [markdown]
# ## Summary
#
# * `Timer` gives a distribution, not a number: warm-up, repeats, median and tail, cv, a
#   monotonic nanosecond clock, batched timing for tiny calls, the collector paused.
# * `MemoryProfiler` measures peak and net bytes with `tracemalloc` and RSS with `psutil`, and
#   tells a leak from a cache.
# * `FLOPCounter` computes exact counts from shapes under a written convention, with the batch
#   dimension, and grows by registration.
# * `Profiler` joins them into a per-layer table; the roofline says, for each layer, which ceiling
#   it is under and how far.
#
# Questions to answer from *your* numbers above:
#
# 1. How many nanoseconds does an empty call cost on your machine when timed one call at a time?
#    For which of the MLP's layers would per-call timing be off by more than 5%?
# 2. The measured peak of a Linear forward was a multiple of the output size. Which line of
#    `Linear.forward` allocates the second array, and how would you avoid it?
# 3. Which MLP layers are memory-bound? For those, would a faster multiply help at all?
# 4. Write the FLOP rule for a layer that computes `x * scale + shift` per element, register it, and
#    check it on a `Sequential`.
