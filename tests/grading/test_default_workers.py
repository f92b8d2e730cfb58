"""The worker count `tito nbgrader autograde` picks without --workers (issue 12 item 12): never more
workers than usable cores, and no spawned worker for a batch too small to repay its start-up."""

from __future__ import annotations

import os

from tito.core.executor import SUBMISSIONS_PER_WORKER, default_workers, usable_cores


def test_usable_cores_are_those_this_process_may_run_on():
    assert 1 <= usable_cores() <= len(os.sched_getaffinity(0))


def test_a_small_batch_is_graded_by_one_worker():
    for submissions in range(0, 2 * SUBMISSIONS_PER_WORKER):   # up to 7: a second worker would not pay off
        assert default_workers(submissions) == 1


def test_a_large_batch_gets_one_worker_per_usable_core_and_never_more():
    assert default_workers(10_000) == usable_cores()
    for submissions in range(1, 200, 7):
        assert 1 <= default_workers(submissions) <= min(usable_cores(), max(1, submissions // SUBMISSIONS_PER_WORKER))
