"""Autograde throughput: plain sequential `nbgrader autograde` vs `tito nbgrader autograde` with 1 and
with N workers (sandbox and limits on), on the same submissions, side by side in one run.

A scratch copy of the workspace gets one module released and N identical full-solution
submissions; each configuration grades all of them (--force), alternating, REPEATS times; the
median is reported as seconds per submission and as the ratio to plain nbgrader.
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

from benchmarks.harness import print_header, print_table, verdict, write_json

REPO = Path(__file__).resolve().parent.parent
MODULE = os.environ.get("BENCH_AUTOGRADE_MODULE", "01_tensor")
SUBMISSIONS = int(os.environ.get("BENCH_AUTOGRADE_N", "6"))
REPEATS = 2


def _run(cmd: list[str], cwd: Path, env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True, text=True)
    return time.perf_counter() - start


def _workspace(scratch: Path) -> Path:
    root = scratch / "course"
    root.mkdir()
    for name in ("settings.ini", "pyproject.toml"):
        shutil.copy2(REPO / name, root / name)
    shutil.copytree(REPO / "modules", root / "modules")
    shutil.copytree(REPO / "tinytorch", root / "tinytorch", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "grading").mkdir()
    shutil.copy2(REPO / "grading" / "nbgrader_config.py", root / "grading" / "nbgrader_config.py")
    return root


def main() -> None:
    print_header(f"autograde throughput: {SUBMISSIONS} submissions of {MODULE}")
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory(prefix="bench-autograde-") as scratch:
        root = _workspace(Path(scratch))
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(root),
               "TITO_AUTOGRADING": "1", "MPLBACKEND": "Agg"}
        tito = [sys.executable, "-m", "tito"]
        subprocess.run([*tito, "nbgrader", "generate", MODULE], cwd=root, env=env, check=True, capture_output=True)
        source = next((root / "grading" / "source" / MODULE).glob("*.ipynb"))
        uploads = root / "uploads"
        uploads.mkdir()
        for i in range(SUBMISSIONS):
            shutil.copy2(source, uploads / f"student{i:03d}.ipynb")
        subprocess.run([*tito, "nbgrader", "collect", str(uploads)], cwd=root, env=env, check=True, capture_output=True)
        workers = os.cpu_count() or 1
        configs = {
            "nbgrader autograde (plain, sequential, no limits)": ([str(bin_dir / "nbgrader"), "autograde", MODULE, "--force"], root / "grading"),
            "tito nbgrader autograde --workers 1 (sandboxed)": ([*tito, "nbgrader", "autograde", MODULE, "--force", "--workers", "1"], root),
            f"tito nbgrader autograde --workers {workers} (sandboxed)": ([*tito, "nbgrader", "autograde", MODULE, "--force", "--workers", str(workers)], root),
        }
        times = {name: [] for name in configs}
        for _ in range(REPEATS):   # alternate, so drift on a shared machine hits all alike
            for name, (cmd, cwd) in configs.items():
                times[name].append(_run(cmd, cwd, env))
    per_submission = {name: statistics.median(t) / SUBMISSIONS for name, t in times.items()}
    plain_s = next(iter(per_submission.values()))
    print_table(["configuration", "s / submission", "ratio to plain nbgrader"],
                [[name, s, s / plain_s] for name, s in per_submission.items()])
    print("every row includes its process start-up; tito also starts one sandbox per run to check `import tinytorch`")
    one_worker = list(per_submission.values())[1]
    print(verdict("tito 1 worker / plain nbgrader (sandbox and limits on)", one_worker / plain_s, 1.2, higher_is_better=False))
    write_json("autograde", {"module": MODULE, "submissions": SUBMISSIONS, "workers": workers,
                             "seconds_per_submission": per_submission})
