"""Where grading jobs run. A small interface, so a distributed engine can take the same jobs later.

`Executor.run(jobs)` yields one GradeResult per job as each finishes, in any order. Jobs and
results are plain data; the caller (the single gradebook writer) records each result as it arrives.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
from typing import Iterable, Iterator, Protocol

from tito.sandbox.grader import GradeJob, GradeResult, grade


class Executor(Protocol):
    def run(self, jobs: Iterable[GradeJob]) -> Iterator[GradeResult]: ...


class InlineExecutor:
    """One job after another in this process (the sandbox is still a separate, limited process)."""

    def run(self, jobs):
        for job in jobs:
            try:
                yield grade(job)
            except Exception as exc:  # the grader itself failed: report it, record nothing
                yield GradeResult(job.module, job.student, failed=f"grading failed: {type(exc).__name__}: {exc}")


class ProcessPoolExecutor:
    """N grading workers, each a separate process driving one sandboxed submission at a time."""

    def __init__(self, workers: int):
        self.workers = workers

    def run(self, jobs):
        jobs = list(jobs)
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(self.workers, mp_context=context) as pool:
            futures = {pool.submit(grade, job): job for job in jobs}
            for future in concurrent.futures.as_completed(futures):
                try:
                    yield future.result()
                except Exception as exc:  # a worker died (killed, out of memory): report, don't record
                    job = futures[future]
                    yield GradeResult(job.module, job.student, failed=f"grading worker failed: {type(exc).__name__}: {exc}")


def executor_for(workers: int) -> Executor:
    return InlineExecutor() if workers <= 1 else ProcessPoolExecutor(workers)
