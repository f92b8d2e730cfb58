"""`tito leaderboard SUBMISSIONS_DIR [--out page.html] [--db board.sqlite]`: rank TinyMLPerf submissions.

The ranking, the checks and the page are module 19's (`tinytorch.benchmarking.tinymlperf`), imported
from this workspace's package, so the command shows what the workspace's own code computes.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import typer

from tito.core.console import console
from tito.core.errors import TitoError
from tito.core.workspace import Workspace

BENCHMARK_MODULE = "benchmarking.tinymlperf"


def _tinymlperf(ws: Workspace):
    """Module 19's export from this workspace's package (not whatever tinytorch is installed)."""
    sys.path.insert(0, str(ws.root))
    name = f"{ws.package_name}.{BENCHMARK_MODULE}"
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise TitoError(f"cannot import {name} ({exc}); export module 19 first: `tito export 19_benchmarking`") from None


def leaderboard_command(
    submissions_dir: Path = typer.Argument(..., help="folder of submission .json files (Submission.save writes them)"),
    out: Path = typer.Option(None, "--out", help="the HTML page to write (default: SUBMISSIONS_DIR/leaderboard.html)"),
    db: Path = typer.Option(None, "--db", help="the SQLite file to write (default: the page's name with .sqlite)"),
) -> None:
    """Rank a folder of TinyMLPerf submissions into SQLite and an HTML page with the accuracy-speed Pareto plot."""
    if not submissions_dir.is_dir():
        raise TitoError(f"{submissions_dir} is not a folder; pass the folder that holds the submission .json files")
    files = sorted(submissions_dir.glob("*.json"))
    if not files:
        raise TitoError(f"no *.json submissions in {submissions_dir}; write them with "
                        "make_submission(...).save(folder) (module 19)")
    tinymlperf = _tinymlperf(Workspace.find())
    page = out or submissions_dir / "leaderboard.html"
    database = db or page.with_suffix(".sqlite")
    board = tinymlperf.build_leaderboard(submissions_dir, page, database)
    for task_name, entries in board.ranked.items():
        console.print(f"{task_name}: {len(entries)} ranked")
        for entry in entries:
            ratios = entry.submission.data["ratios"]
            gate = "pass" if ratios["passes_gate"] else "FAIL (below the quality gate: scores 0)"
            front = ", Pareto front" if entry.on_pareto_front else ""
            console.print(f"  #{entry.rank} {entry.submission.model}: score {ratios['score']:.3f}, "
                          f"quality {entry.submission.data['measured']['quality']:.4f}, gate {gate}{front}")
    for file_name, reason in board.problems:
        console.print(f"skipped {file_name}: {reason}")
    ranked = sum(len(entries) for entries in board.ranked.values())
    console.print(f"{ranked} ranked, {len(board.problems)} skipped; page {page}, database {database}")
    if ranked == 0:
        raise TitoError(f"none of the {len(files)} files in {submissions_dir} is a valid submission (reasons above)")
