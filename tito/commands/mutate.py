"""`tito mutate MODULE|--all`: do the graded tests catch wrong code? Mutants of the solutions, graded."""

from __future__ import annotations

import os

import typer
from rich.markup import escape
from rich.table import Table

from tito.core.console import console
from tito.core.errors import TitoError
from tito.core.manifest import select
from tito.core.mutation_operators import OPERATOR_NAMES
from tito.core.mutation_inputs import inputs_digest
from tito.core.mutation_run import (MutationReport, module_mutants, mutate_module, sample, stored_report,
                                     write_report)
from tito.core.workspace import Workspace


def _operators(text: str | None) -> tuple[str, ...]:
    if not text:
        return OPERATOR_NAMES
    chosen = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [name for name in chosen if name not in OPERATOR_NAMES]
    if unknown:
        raise TitoError(f"unknown mutation operator(s) {', '.join(unknown)}; known: {', '.join(OPERATOR_NAMES)}")
    return chosen


def show_survivors(report: MutationReport, limit: int) -> None:
    survivors = [m for m in report.mutants if m.status == "survived"]
    if not survivors:
        return
    console.rule(f"{report.module}: {len(survivors)} surviving mutant(s)")
    for entry in survivors[:limit]:
        console.print(f"[bold]{entry.id}[/] {escape(entry.description)}  ({entry.cell}, line {entry.line}"
                      f"{', in ' + entry.function if entry.function else ''})")
        console.print(escape(entry.diff), markup=False, highlight=False)
        console.print(f"  should have been caught by: {', '.join(entry.should_catch) or '(no graded cell)'}")
    if len(survivors) > limit:
        console.print(f"... and {len(survivors) - limit} more (all of them are in the JSON report)")


def mutate_command(
    module: str = typer.Argument(None, help="module: 01_tensor, 01 or tensor"),
    all_: bool = typer.Option(False, "--all", help="every module"),
    operators: str = typer.Option(None, "--operators", help=f"comma-separated subset of: {', '.join(OPERATOR_NAMES)}"),
    limit: int = typer.Option(None, "--limit", min=1, help="grade at most N mutants per module, spread evenly"),
    workers: int = typer.Option(min(2, os.cpu_count() or 1), "--workers", "-j", min=1, help="grading processes"),
    min_kill: float = typer.Option(0.9, "--min-kill", min=0.0, max=1.0, help="fail when a module's kill rate is lower"),
    prune: bool = typer.Option(True, "--prune/--full-notebook",
                               help="leave out analysis cells no graded test needs (the reference must keep full marks)"),
    list_only: bool = typer.Option(False, "--list", help="list the mutants without grading them"),
    show: int = typer.Option(20, "--show", min=0, help="survivors to print per module (the JSON holds all)"),
    fresh: bool = typer.Option(False, "--fresh", help="grade again even a module whose inputs are unchanged since its report"),
) -> None:
    """Grade mutants of each module's solution blocks with the real grader; report survivors and kill rates."""
    ws = Workspace.find()
    modules = select(ws, module, all_)
    chosen = _operators(operators)
    if list_only:
        for m in modules:
            mutants = sample(module_mutants(m, chosen), limit)
            for mutant in mutants:
                console.print(f"{m.name} {mutant.id} {mutant.cell}:{mutant.line} {escape(mutant.description)}")
            console.print(f"{m.name}: {len(mutants)} mutant(s)")
        return
    reports = []
    for m in modules:
        inputs = inputs_digest(ws, m, {"operators": list(chosen), "limit": limit, "prune": prune})
        report = None if fresh else stored_report(ws, m.name, inputs)
        if report is not None:
            report.min_kill = min_kill
            console.print(f"{m.name}: nothing it depends on changed since its report: reused (--fresh grades again)")
        else:
            report = mutate_module(ws, m, chosen, limit, workers, prune, min_kill,
                                   progress=lambda text: console.print(escape(text)))
            report.inputs = inputs
        path = write_report(ws, report)
        show_survivors(report, show)
        console.print(f"report: {path.relative_to(ws.root)}")
        reports.append(report)
    table = Table(title="tito mutate")
    for column in ("module", "mutants", "graded", "killed", "survived", "errors", "kill rate", "seconds"):
        table.add_column(column)
    for r in reports:
        rate = f"{r.kill_rate:.1%}"
        table.add_row(r.module, str(r.generated), str(r.graded), str(r.killed), str(r.survived), str(r.errors),
                      f"[green]{rate}[/]" if r.ok else f"[red]{rate}[/]", f"{r.seconds:.0f}")
    console.print(table)
    weak = [f"{r.module} ({r.kill_rate:.1%})" for r in reports if not r.ok]
    if weak:
        raise TitoError(f"kill rate under {min_kill:.0%} in {', '.join(weak)}: strengthen those graded tests "
                        "(the survivors above say where)")
