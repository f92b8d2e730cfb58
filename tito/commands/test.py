"""`tito test MODULE|--all`: run the module source (inline tests), then its package tests."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from tito.core.console import console
from tito.core.errors import TitoError
from tito.core.exporter import export
from tito.core.manifest import Module, select
from tito.core.pairing import warn_if_files_disagree
from tito.core.runner import StepResult, run_package_tests, run_source
from tito.core.workspace import Workspace


def test_module(ws: Workspace, module: Module) -> list[StepResult]:
    """Both steps for one module, plus a warning step when the package is older than the source."""
    warn_if_files_disagree(module, ws.root)
    steps = [run_source(ws, module)]
    exported = export(ws, module, check_only=True)
    if not exported.in_sync:
        steps.append(StepResult("export", False, f"tinytorch/ is older than {exported.source.name}: "
                                f"run `tito export {module.name}` (package tests use the exported code)"))
    steps.append(run_package_tests(ws, module))
    return steps


def print_results(results: dict[str, list[StepResult]], verbose: bool) -> None:
    table = Table(title="tito test", show_lines=False)
    table.add_column("module")
    table.add_column("step")
    table.add_column("result")
    table.add_column("details", overflow="fold")
    for name, steps in results.items():
        for step in steps:
            table.add_row(name, step.name, "[green]pass[/]" if step.ok else "[red]FAIL[/]",
                          escape(step.summary))   # summaries quote settings such as [grading]
    console.print(table)
    if verbose:
        for name, steps in results.items():
            for step in steps:
                if not step.ok and step.output:
                    console.rule(f"{name}: {step.name} output")
                    console.print(step.output[-6000:], markup=False)


def test_command(
    module: str = typer.Argument(None, help="module: 13_kernels, 13 or kernels"),
    all_: bool = typer.Option(False, "--all", help="test every module"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="show the output of failing steps"),
) -> None:
    """Run a module's own inline tests (your source) and its package tests (the exported tinytorch)."""
    ws = Workspace.find()
    results = {m.name: test_module(ws, m) for m in select(ws, module, all_)}
    print_results(results, verbose)
    failed = [name for name, steps in results.items() if not all(s.ok for s in steps)]
    if failed:
        raise TitoError(f"tests failed in {', '.join(failed)}" + ("" if verbose else "; rerun with -v to see the output"))
