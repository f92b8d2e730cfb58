"""time_kernel and SimpleProfiler: call counts, results, memory. Never a timing value."""

import tracemalloc

import numpy as np
import pytest

from tinytorch.core.kernels import SimpleProfiler, time_kernel


def counting(fn):
    """fn plus a list that records every call (a real function, not a mock)."""
    calls = []

    def wrapped(*args, **kw):
        calls.append((args, kw))
        return fn(*args, **kw)

    return wrapped, calls


@pytest.mark.parametrize("warmup, repeats", [(0, 1), (1, 5), (3, 2)])
def test_time_kernel_calls_warmup_plus_repeats(warmup, repeats):
    fn, calls = counting(lambda a, b=0: a * 10 + b)
    result, micros = time_kernel(fn, 4, warmup=warmup, repeats=repeats, b=2)
    assert result == 42
    assert len(calls) == warmup + repeats
    assert all(c == ((4,), {"b": 2}) for c in calls)
    assert isinstance(micros, float) and np.isfinite(micros) and micros >= 0


def test_time_kernel_rejects_no_repeats():
    with pytest.raises(ValueError):
        time_kernel(abs, -1, repeats=0)


def test_profiler_counts_warmup_timed_and_traced_calls():
    fn, calls = counting(lambda n: np.zeros(n))
    out, metrics = SimpleProfiler(warmup=2, repeats=3).profile(fn, 10)
    assert out.shape == (10,)
    assert len(calls) == 2 + 3 + 1
    assert metrics["repeats"] == 3
    for key in ("wall_us", "cpu_us", "cpu_per_wall"):
        assert np.isfinite(metrics[key]) and metrics[key] >= 0, (key, metrics)


def test_profiler_sees_numpy_allocations():
    size = 3 * 2**20                                       # 3 Mi float64 = 24 MiB
    _, allocating = SimpleProfiler(warmup=0, repeats=1).profile(np.ones, size)
    assert allocating["peak_memory_bytes"] >= size * 8

    src = np.ones(size)
    dst = np.empty_like(src)
    _, in_place = SimpleProfiler(warmup=0, repeats=1).profile(np.copyto, dst, src)
    assert in_place["peak_memory_bytes"] < 2**20


def test_profiler_leaves_foreign_tracing_running():
    tracemalloc.start()
    try:
        SimpleProfiler(warmup=0, repeats=1).profile(np.arange, 100)
        assert tracemalloc.is_tracing()
    finally:
        tracemalloc.stop()
    SimpleProfiler(warmup=0, repeats=1).profile(np.arange, 100)
    assert not tracemalloc.is_tracing()
