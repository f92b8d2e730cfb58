"""MemoryProfiler against known allocations: NumPy buffers of known size, a leak of known size per call."""

import tracemalloc

import numpy as np
import pytest

from tinytorch.profiling.profiler import MemoryProfiler

MIB = 2**20
SLACK = 64 * 1024  # interpreter bookkeeping around an allocation


@pytest.mark.parametrize("mib", [1, 10, 32])
def test_returned_array_counts_in_peak_and_net(mib):
    stats = MemoryProfiler().measure(np.zeros, mib * MIB, dtype=np.uint8)
    assert stats.result.nbytes == mib * MIB
    assert mib * MIB <= stats.peak_bytes < mib * MIB + SLACK
    assert mib * MIB <= stats.net_bytes < mib * MIB + SLACK


def test_temporaries_count_in_peak_only():
    def two_temporaries():
        first = np.ones(4 * MIB // 8)
        second = first * 3.0  # both alive together: 8 MiB at peak
        return float(second[0])

    stats = MemoryProfiler().measure(two_temporaries)
    assert stats.result == 3.0
    assert 8 * MIB <= stats.peak_bytes < 8 * MIB + SLACK
    assert abs(stats.net_bytes) < SLACK


def test_rss_grows_by_a_touched_allocation():
    # 64 MiB is above glibc's largest mmap threshold, so it gets fresh pages that np.ones touches.
    stats = MemoryProfiler().measure(np.ones, 64 * MIB // 8)
    assert stats.rss_before > 0
    assert stats.rss_after - stats.rss_before >= 60 * MIB


def test_tracing_state_is_restored():
    assert not tracemalloc.is_tracing()
    MemoryProfiler().measure(np.ones, 10)
    assert not tracemalloc.is_tracing()
    with MemoryProfiler().track():  # an enclosing measurement is tracing already...
        MemoryProfiler().measure(np.ones, 10)
        assert tracemalloc.is_tracing()  # ...so the inner one must not stop it
    assert not tracemalloc.is_tracing()


def test_track_measures_a_block():
    with MemoryProfiler().track() as stats:
        kept = np.empty(5 * MIB, dtype=np.uint8)
    assert 5 * MIB <= stats.net_bytes < 5 * MIB + SLACK
    assert kept.nbytes == 5 * MIB


@pytest.mark.parametrize("kib_per_call", [64, 1024])
def test_leak_check_measures_growth_per_call(kib_per_call):
    kept = []
    report = MemoryProfiler().leak_check(lambda: kept.append(np.ones(kib_per_call * 1024, dtype=np.uint8)), calls=5)
    assert len(report.retained_bytes) == 5
    assert kib_per_call * 1024 <= report.bytes_per_call < kib_per_call * 1024 + 4096
    assert report.leaking


def test_leak_check_ignores_a_cache_filled_once():
    cache = {}

    def lookup(key):
        return cache.setdefault(key, np.ones(MIB)).sum()

    report = MemoryProfiler().leak_check(lookup, "weights", calls=4)
    assert not report.leaking


def test_leak_check_needs_two_calls():
    with pytest.raises(ValueError):
        MemoryProfiler().leak_check(lambda: None, calls=1)


def test_peak_is_reset_for_each_measurement():
    with MemoryProfiler().track():
        spike = np.ones(16 * MIB // 8)
        del spike  # an earlier 16 MiB peak inside an enclosing measurement...
        inner = MemoryProfiler().measure(np.ones, 1000)
    assert inner.peak_bytes < SLACK  # ...is not this call's peak


def test_leak_check_growth_is_between_counted_calls():
    seen, stash = [], []

    def stashes_once_on_second_call():
        seen.append(None)
        if len(seen) == 2:  # the first counted call (the warm-up call is the first call)
            stash.append(np.ones(MIB))

    report = MemoryProfiler().leak_check(stashes_once_on_second_call, calls=4)
    assert report.retained_bytes[0] >= 8 * MIB  # the one-off shows in what is retained...
    assert abs(report.bytes_per_call) < 4096 and not report.leaking  # ...but it does not grow
