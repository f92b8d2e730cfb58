"""Autograde throughput: plain `nbgrader autograde` vs `tito nbgrader autograde`, same submissions, one run.

A scratch copy of the workspace gets one module released and N identical full-solution
submissions; each tool grades all of them (--force), twice, and the median is reported as
seconds per submission and as the ratio tito / nbgrader.
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
        plain, ours = [], []
        for _ in range(REPEATS):   # alternate, so drift on a shared machine hits both alike
            plain.append(_run([str(bin_dir / "nbgrader"), "autograde", MODULE, "--force"], root / "grading", env))
            ours.append(_run([*tito, "nbgrader", "autograde", MODULE, "--force"], root, env))
    plain_s = statistics.median(plain) / SUBMISSIONS
    tito_s = statistics.median(ours) / SUBMISSIONS
    print_table(["tool", "s / submission", "ratio to nbgrader"],
                [["nbgrader autograde (plain, sequential)", plain_s, 1.0],
                 ["tito nbgrader autograde", tito_s, tito_s / plain_s]])
    print("both include process start-up; tito also checks `import tinytorch` in the grading kernel once per run")
    write_json("autograde", {"module": MODULE, "submissions": SUBMISSIONS, "plain_s_per_submission": plain_s,
                             "tito_s_per_submission": tito_s, "ratio": tito_s / plain_s})
