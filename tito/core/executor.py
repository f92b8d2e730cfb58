"""Where grading jobs run. A small interface, so a distributed engine can take the same jobs later.

`Executor.run(jobs)` yields one GradeResult per job as each finishes, in any order. Jobs and
results are plain data; the caller (the single gradebook writer) records each result as it arrives.

The worker pool survives its workers: one that dies (killed, out of memory, a crash in a native
library) is replaced and its submission tried once more in a fresh worker; a submission that ends
its worker twice is recorded with 0 points and the reason, and the batch goes on. Workers die with
the coordinator (PR_SET_PDEATHSIG), so `kill -9` of `tito nbgrader autograde` leaves nothing running.
"""

from __future__ import annotations

import collections
import ctypes
import multiprocessing
import multiprocessing.connection
import os
import signal
from typing import Callable, Iterable, Iterator, Protocol

from tito.sandbox.grader import CellOutcome, GradeJob, GradeResult, grade

WORKER_DIED = "the grading worker died"
ATTEMPTS = 2         # a worker may die of causes outside the submission (the OOM killer): try once more


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


def die_with_parent(parent: int) -> None:
    """SIGKILL this process when the process that started it dies; exit now if it already has."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
    except OSError:
        pass
    if os.getppid() != parent:          # the coordinator died before the line above
        os._exit(1)


def _worker(connection, parent: int, grade_fn: Callable[[GradeJob], GradeResult]) -> None:
    die_with_parent(parent)
    from tito.sandbox import launcher

    launcher.isolation()                # probed once per worker, not once per submission
    while True:
        job = connection.recv()
        if job is None:
            return
        try:
            result = grade_fn(job)
        except Exception as exc:  # the grader failed on this job: report, the worker goes on
            result = GradeResult(job.module, job.student, failed=f"grading failed: {type(exc).__name__}: {exc}")
        connection.send(result)


def how_it_ended(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


def died_result(job: GradeJob, ending: str) -> GradeResult:
    why = f"{WORKER_DIED} ({ending}) each of the {ATTEMPTS} times it graded this submission"
    cells = [CellOutcome(-1, "test", error=why, grade_id=t["grade_id"], max_score=float(t["points"])) for t in job.tests]
    return GradeResult(job.module, job.student, cells=cells, stopped=why)


class _Worker:
    def __init__(self, context, grade_fn):
        self.connection, child_end = context.Pipe()
        self.process = context.Process(target=_worker, args=(child_end, os.getpid(), grade_fn))
        self.process.start()
        child_end.close()
        self.job: GradeJob | None = None

    def give(self, job: GradeJob) -> None:
        self.job = job
        self.connection.send(job)

    def close(self) -> None:
        try:
            self.connection.send(None)
        except OSError:
            pass
        self.process.join(timeout=2)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.connection.close()


class ProcessPoolExecutor:
    """N grading workers, each a separate process grading one submission at a time."""

    def __init__(self, workers: int, grade_fn: Callable[[GradeJob], GradeResult] = grade):
        self.workers = workers
        self.grade_fn = grade_fn     # a module-level function (workers are spawned)

    def run(self, jobs):
        pending = collections.deque(jobs)
        attempts: collections.Counter = collections.Counter()
        context = multiprocessing.get_context("spawn")
        pool = [_Worker(context, self.grade_fn) for _ in range(min(self.workers, len(pending)))]
        try:
            while pending or any(w.job for w in pool):
                for position, worker in enumerate(pool):
                    if worker.job is None and pending:
                        try:
                            worker.give(pending[0])
                        except OSError:      # it died while idle: a fresh worker takes the job
                            worker.job = None
                            worker.close()
                            pool[position] = worker = _Worker(context, self.grade_fn)
                            worker.give(pending[0])
                        pending.popleft()
                busy = {w.connection: w for w in pool if w.job is not None}
                busy.update({w.process.sentinel: w for w in pool if w.job is not None})
                for ready in multiprocessing.connection.wait(list(busy)):
                    worker = busy[ready]
                    if worker.job is None:
                        continue             # both its pipe and its sentinel were ready
                    result = None
                    if ready is worker.connection:
                        try:
                            result = worker.connection.recv()
                        except (EOFError, OSError):
                            result = None
                    if result is not None:
                        worker.job = None
                        yield result
                        continue
                    job, worker.job = worker.job, None
                    worker.process.join()
                    ending = how_it_ended(worker.process.exitcode)
                    attempts[id(job)] += 1
                    if attempts[id(job)] < ATTEMPTS:
                        pending.appendleft(job)
                    else:
                        yield died_result(job, ending)
                    pool[pool.index(worker)] = _Worker(context, self.grade_fn)
                    worker.connection.close()
        finally:
            for worker in pool:
                worker.close()


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity, bounded by a cgroup CPU quota (a container's
    --cpus), which os.cpu_count() ignores: more workers than that only compete for the same cores."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:          # not Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()
        if quota != "max":
            cores = min(cores, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return max(1, cores)


SUBMISSIONS_PER_WORKER = 4   # fewer per worker and spawning it costs more than it saves (bench_grading_engines)


def default_workers(submissions: int) -> int:
    """Workers for a batch when --workers is not given: one per usable core, at most one per
    SUBMISSIONS_PER_WORKER submissions. Measured on 2 shared cores (benchmarks/bench_grading_engines.py):
    a spawned worker costs 1-4 s to start (interpreter, imports, its namespace probe) while grading in
    the coordinator costs none, and each grading already keeps about one core busy; 2 workers were
    1.3x one from 12 submissions on, with a break-even near 3."""
    return max(1, min(usable_cores(), submissions // SUBMISSIONS_PER_WORKER))


def executor_for(workers: int) -> Executor:
    return InlineExecutor() if workers <= 1 else ProcessPoolExecutor(workers)
