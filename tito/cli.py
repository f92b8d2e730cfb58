"""`tito`: one Typer app; each command group lives in tito/commands/<group>.py."""

from __future__ import annotations

import sys

import typer

from tito.commands import check, demo, export, module, nbgrader, student_edition, system, test
from tito.core.console import err_console
from tito.core.errors import TitoError

app = typer.Typer(
    name="tito",
    help="TinyTorch course tool: export, test and complete modules; build the student edition; grade with nbgrader.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("export")(export.export_command)
app.command("test")(test.test_command)
app.add_typer(module.app, name="module")
app.command("student-edition")(student_edition.student_edition_command)
app.add_typer(system.app, name="system")
app.command("check")(check.check_command)
app.add_typer(nbgrader.app, name="nbgrader")
app.command("demo")(demo.demo_command)


def main() -> None:
    try:
        app()  # standalone mode: usage errors print and exit 2, success exits 0
    except TitoError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", markup=True, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
