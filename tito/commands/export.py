"""`tito export MODULE|--all [--check]`: module sources -> tinytorch/ (nbdev)."""

from __future__ import annotations

import typer

from tito.core.console import console
from tito.core.errors import TitoError
from tito.core.exporter import export_many
from tito.core.manifest import select
from tito.core.pairing import warn_if_files_disagree
from tito.core.workspace import Workspace


def export_command(
    module: str = typer.Argument(None, help="module: 13_kernels, 13 or kernels"),
    all_: bool = typer.Option(False, "--all", help="export every module"),
    check: bool = typer.Option(False, "--check", help="write nothing; fail if tinytorch/ differs from a fresh export"),
) -> None:
    """Export a module's `#| export` cells into the tinytorch package."""
    ws = Workspace.find()
    stale = []
    modules = select(ws, module, all_)
    for m in modules:
        warn_if_files_disagree(m, ws.root)
    for result in export_many(ws, modules, check_only=check):
        m = result.module
        shown = result.source.relative_to(ws.root)
        if check:
            status = "in sync" if result.in_sync else "OUT OF SYNC: " + ", ".join(str(p.relative_to(ws.root)) for p in result.changed)
            console.print(f"{m.name:<18} {status}")
            if not result.in_sync:
                stale.append(m.name)
        else:
            note = "updated" if result.changed else "unchanged"
            console.print(f"{m.name:<18} {shown} -> {m.exports_to} ({note})")
    if stale:
        raise TitoError(f"the committed package is out of sync with {', '.join(stale)}; run `tito export --all` and commit tinytorch/")
