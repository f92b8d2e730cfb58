"""`tito check [MODULE]`: the course self-check (run by make test)."""

from __future__ import annotations

import typer
from rich.table import Table

from tito.core.console import console
from tito.core.errors import TitoError
from tito.core.manifest import discover, resolve
from tito.core.selfcheck import check_modules
from tito.core.workspace import Workspace


def check_command(module: str = typer.Argument(None, help="one module (default: every module)")) -> None:
    """Every module: export in sync, manifest agrees, imports only earlier modules, solution = full marks, blank = 0."""
    ws = Workspace.find()
    modules = [resolve(ws, module)] if module else discover(ws)
    if not modules:
        raise TitoError(f"no modules found under {ws.modules_dir}")

    def show(check):
        mark = "[green]ok[/]" if check.ok else "[red]FAIL[/]"
        console.print(f"{mark} {check.module.name}")

    results = check_modules(ws, modules, progress=show)
    table = Table(title="tito check")
    for column in ("module", "points", "solution", "blank", "problems"):
        table.add_column(column, overflow="fold")
    for r in results:
        fmt = lambda v: "-" if v is None else f"{v:g}"  # noqa: E731
        table.add_row(r.module.name, f"{r.module.points:g}", fmt(r.solution_score), fmt(r.blank_score),
                      "[green]none[/]" if r.ok else "[red]" + "; ".join(r.problems) + "[/]")
    console.print(table)
    failed = [r.module.name for r in results if not r.ok]
    if failed:
        raise TitoError(f"course check failed for {', '.join(failed)}")
