"""Timer and TimingStats on scripted clocks: the statistics are checked against the statistics module."""

import gc
import statistics

import numpy as np
import pytest

from tinytorch.profiling.profiler import Timer, TimingStats

MS = 1_000_000  # nanoseconds


def scripted(readings_ns):
    """Fake clock returning the scripted nanosecond readings in order."""
    readings = iter(readings_ns)
    return lambda: next(readings)


@pytest.mark.parametrize("seed,count", [(0, 1), (1, 2), (2, 5), (3, 40), (4, 101)])
def test_stats_match_statistics_module(seed, count):
    samples = list(np.random.default_rng(seed).uniform(1e-6, 1e-2, count))
    got = TimingStats.from_samples(samples)
    assert got.samples_s == pytest.approx(samples, abs=0)
    assert got.min_s == min(samples)
    assert got.median_s == pytest.approx(statistics.median(samples), rel=1e-12)
    assert got.mean_s == pytest.approx(statistics.fmean(samples), rel=1e-12)
    expected_std = statistics.stdev(samples) if count > 1 else 0.0
    assert got.std_s == pytest.approx(expected_std, rel=1e-9, abs=1e-18)
    assert got.cv == pytest.approx(expected_std / statistics.fmean(samples), rel=1e-9, abs=1e-18)
    if count > 1:
        cuts = statistics.quantiles(samples, n=100, method="inclusive")
        assert got.p95_s == pytest.approx(cuts[94], rel=1e-12)
        assert got.p99_s == pytest.approx(cuts[98], rel=1e-12)
    else:
        assert got.p95_s == got.p99_s == samples[0]
    assert got.median_ms == pytest.approx(got.median_s * 1000, rel=1e-15)


def test_stats_reject_no_samples():
    with pytest.raises(ValueError):
        TimingStats.from_samples([])


def test_per_call_mode_reads_clock_around_each_call():
    log = []
    clock = scripted([10 * MS, 14 * MS, 20 * MS, 21 * MS, 30 * MS, 39 * MS])
    stats = Timer(warmup=4, repeats=3, clock=clock).measure(lambda a, *, b: log.append((a, b)), "x", b=2)
    assert log == [("x", 2)] * 7
    assert stats.samples_s == pytest.approx([0.004, 0.001, 0.009], rel=1e-12)
    assert stats.median_s == pytest.approx(0.004, rel=1e-12)
    assert stats.p95_s == pytest.approx(0.004 + 0.9 * 0.005, rel=1e-12)  # rank 0.95 * 2 = 1.9


def test_min_time_mode_doubles_batches_until_min_time():
    count = []
    # repeat 1: readings after batches of 1, 2, 4, 8 calls; 20 ms is reached after 15 calls.
    # repeat 2: 1 call already takes 50 ms.
    clock = scripted([0, 1 * MS, 3 * MS, 9 * MS, 20 * MS, 100 * MS, 150 * MS])
    stats = Timer(warmup=0, repeats=2, min_time_s=0.02, clock=clock).measure(lambda: count.append(1))
    assert len(count) == 16
    assert stats.samples_s == pytest.approx([0.020 / 15, 0.050], rel=1e-12)


def test_collector_paused_while_timing_and_restored():
    states = []
    assert gc.isenabled()
    Timer(warmup=1, repeats=2, clock=scripted(range(4))).measure(lambda: states.append(gc.isenabled()))
    assert states == [True, False, False]  # warm-up runs before the pause
    assert gc.isenabled()


def test_collector_left_alone_when_not_asked():
    states = []
    Timer(warmup=0, repeats=2, disable_gc=False, clock=scripted(range(4))).measure(lambda: states.append(gc.isenabled()))
    assert states == [True, True]


def test_collector_restored_after_exception():
    def fails():
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        Timer(warmup=0, repeats=1, clock=scripted(range(2))).measure(fails)
    assert gc.isenabled()


def test_real_clock_gives_positive_samples():
    # No time is asserted, only that the default clock produces one finite, positive sample per repeat.
    stats = Timer(warmup=1, repeats=4).measure(sum, range(100))
    assert len(stats.samples_s) == 4
    assert all(np.isfinite(s) and s > 0 for s in stats.samples_s)
