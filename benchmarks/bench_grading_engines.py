"""Grading engines side by side: submissions per second of the local executor at 1 and 2 workers
and of Dask with 2 local workers (`dask scheduler` + `dask worker --nworkers 2 --nthreads 1`),
on the same full-solution submissions, with the Dask path's overhead per submission as a ratio.

Each configuration grades all N submissions through `grade_submissions` (the code path of
`tito nbgrader autograde`, gradebook writes included, CLI start-up excluded), alternating,
REPEATS times; medians are reported. Besides the wall time it prints where the time goes:
- grading s/sub: the mean time one submission spends in its worker (sandbox start, the student's
  cells, the tests); if it grows with the worker count, the workers compete for the cores;
- start-up: what a batch costs besides grading and writing (spawning the workers, probing isolation);
- writer s/sub: recording one result in the gradebook (the single writer, in the coordinator).
The Dask cluster is started once, outside the timings, as a course would keep one running.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import print_header, print_table, write_json

REPO = Path(__file__).resolve().parent.parent
MODULE = os.environ.get("BENCH_GRADING_MODULE", "01_tensor")
SUBMISSIONS = int(os.environ.get("BENCH_GRADING_N", "8"))
REPEATS = int(os.environ.get("BENCH_GRADING_REPEATS", "2"))


def _course(scratch: Path, env: dict) -> Path:
    root = scratch / "course"
    root.mkdir()
    for name in ("settings.ini", "pyproject.toml"):
        shutil.copy2(REPO / name, root / name)
    shutil.copytree(REPO / "modules", root / "modules", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "tinytorch", root / "tinytorch", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "grading").mkdir()
    shutil.copy2(REPO / "grading" / "nbgrader_config.py", root / "grading" / "nbgrader_config.py")
    tito = [sys.executable, "-m", "tito"]
    subprocess.run([*tito, "nbgrader", "generate", MODULE], cwd=root, env=env, check=True, capture_output=True)
    source = next((root / "grading" / "source" / MODULE).glob("*.ipynb"))
    uploads = scratch / "uploads"
    uploads.mkdir()
    for i in range(SUBMISSIONS):
        shutil.copy2(source, uploads / f"student{i:03d}.ipynb")
    subprocess.run([*tito, "nbgrader", "collect", str(uploads)], cwd=root, env=env, check=True, capture_output=True)
    return root


def _start_dask(scratch: Path, env: dict) -> tuple[list[subprocess.Popen], str]:
    """The README's commands: one scheduler, one `dask worker` with 2 single-threaded worker processes."""
    from distributed import Client

    bin_dir = Path(sys.executable).parent
    scheduler_file = scratch / "scheduler.json"
    log = open(scratch / "dask.log", "w")
    scheduler = subprocess.Popen([str(bin_dir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                                  "--dashboard-address", ":0", "--scheduler-file", str(scheduler_file)],
                                 env=env, stdout=log, stderr=log)
    while not scheduler_file.exists():
        time.sleep(0.1)
    workers = subprocess.Popen([str(bin_dir / "dask"), "worker", "--scheduler-file", str(scheduler_file),
                                "--nworkers", "2", "--nthreads", "1", "--local-directory", str(scratch / "dask-workers")],
                               env=env, stdout=log, stderr=log)
    with Client(scheduler_file=str(scheduler_file)) as client:
        client.wait_for_workers(2, timeout=120)
        address = client.scheduler.address
    return [workers, scheduler], address


def _batch(course, module, students, executor_factory) -> dict:
    from tito.core.autograding import grade_submissions
    from tito.core.recorder import record

    executor = executor_factory()
    start = time.perf_counter()
    results = grade_submissions(course, module, students, executor=executor)
    wall = time.perf_counter() - start
    if any(r.failed or r.total != results[0].total for r in results):
        raise RuntimeError(f"a submission was graded differently: {[(r.student, r.total, r.failed) for r in results]}")
    start = time.perf_counter()
    for result in results:                 # the writer alone, on the same results (recording is idempotent)
        record(course, module, result)
    writer = (time.perf_counter() - start) / len(results)
    grading = statistics.mean(r.seconds for r in results)
    workers = getattr(executor, "workers", 1)
    return {"wall": wall, "grading": grading, "writer": writer,
            "startup": max(0.0, wall - len(results) * (grading / workers + writer))}


def main() -> None:
    print_header(f"grading engines: {SUBMISSIONS} submissions of {MODULE}")
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory(prefix="bench-engines-") as scratch:
        scratch = Path(scratch)
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "TITO_AUTOGRADING": "1", "MPLBACKEND": "Agg"}
        root = _course(scratch, {**env, "PYTHONPATH": str(scratch / "course")})
        from tito.core.course import Course
        from tito.core.dask_executor import DaskExecutor
        from tito.core.executor import InlineExecutor, ProcessPoolExecutor
        from tito.core.manifest import resolve
        from tito.core.workspace import Workspace

        course = Course.of(Workspace(root))
        module = resolve(course.ws, MODULE)
        students = course.submitted_students(module)
        processes, address = _start_dask(scratch, env)
        dask = DaskExecutor(address)
        try:
            configs = {
                "local, 1 worker": InlineExecutor,
                "local, 2 workers": lambda: ProcessPoolExecutor(2),
                "dask, 2 local workers": lambda: dask,
            }
            _batch(course, module, students[:2], configs["dask, 2 local workers"])   # the workers' first import and probe
            runs = {name: [] for name in configs}
            for _ in range(REPEATS):   # alternate, so drift on a shared machine hits all alike
                for name, factory in configs.items():
                    runs[name].append(_batch(course, module, students, factory))
        finally:
            dask.close()
            for process in processes:
                process.terminate()
                process.wait(timeout=30)
    medians = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in runs.items()}
    rows = [[name, SUBMISSIONS / m["wall"], m["wall"] / SUBMISSIONS, m["grading"], m["startup"], m["writer"]]
            for name, m in medians.items()]
    print_table(["engine", "submissions / s", "wall s / sub", "grading s / sub (in worker)", "start-up s / batch",
                 "writer s / sub"], rows)
    local2, dask2 = medians["local, 2 workers"]["wall"], medians["dask, 2 local workers"]["wall"]
    local1 = medians["local, 1 worker"]["wall"]
    print(f"Dask overhead per submission: {dask2 / local2:.3g}x the local executor's time at 2 workers "
          f"({(dask2 - local2) / SUBMISSIONS * 1000:+.0f} ms per submission)")
    print(f"2 local workers vs 1: {local1 / local2:.3g}x the throughput on this machine, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} at the end (other work on the cores slows the parallel rows first)")
    from tito.core.executor import default_workers, usable_cores

    print(f"tito's default without --workers: {default_workers(SUBMISSIONS)} worker(s) for {SUBMISSIONS} submissions "
          f"({usable_cores()} usable cores; at most one worker per 4 submissions)")
    write_json("grading_engines", {"module": MODULE, "submissions": SUBMISSIONS, "medians": medians,
                                   "dask_overhead_ratio": dask2 / local2, "two_vs_one_workers": local1 / local2})


if __name__ == "__main__":
    main()
