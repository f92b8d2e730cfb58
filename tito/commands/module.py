"""`tito module list` and `tito module complete MODULE`."""

from __future__ import annotations

import typer
from rich.table import Table

from tito.commands.test import print_results, test_module
from tito.core import progress
from tito.core.console import console
from tito.core.errors import TitoError
from tito.core.exporter import export
from tito.core.manifest import discover, resolve
from tito.core.source import source_path
from tito.core.workspace import Workspace

app = typer.Typer(help="List modules and record your progress.", no_args_is_help=True)


@app.command("list")
def list_command() -> None:
    """Every module (from modules/*/module.yaml) with your progress."""
    ws = Workspace.find()
    done = progress.completed(ws)
    table = Table(title="TinyTorch modules")
    for column in ("#", "module", "title", "exports to", "points", "prerequisites", "status"):
        table.add_column(column)
    for m in discover(ws):
        status = f"[green]completed {done[m.name]['completed_at'][:10]}[/]" if m.name in done else "not completed"
        table.add_row(f"{m.number:02d}", m.name, m.title, m.exports_to, f"{m.points:g}",
                      ", ".join(m.prerequisites) or "-", status)
    console.print(table)
    console.print(f"{len(done)} of {len(discover(ws))} modules completed")


@app.command("complete")
def complete_command(module: str = typer.Argument(..., help="module: 13_kernels, 13 or kernels")) -> None:
    """Export, test, and record the module as completed; names the next module."""
    ws = Workspace.find()
    m = resolve(ws, module)
    result = export(ws, m)
    console.print(f"exported {result.source.name} -> {m.exports_to}")
    steps = test_module(ws, m)
    print_results({m.name: steps}, verbose=False)
    failing = [s for s in steps if not s.ok]
    if failing:
        raise TitoError(f"{m.name} is not complete: {failing[0].summary}. Nothing was recorded; "
                        f"fix it and run `tito module complete {m.name}` again")
    progress.record_completion(ws, m, source_path(m).read_bytes())
    later = [x for x in discover(ws) if x.number > m.number]
    nxt = f"next: {later[0].name} ({later[0].title}) - open {later[0].source.relative_to(ws.root)}" if later else "that was the last module"
    console.print(f"[green]{m.name} completed.[/] {nxt}")
