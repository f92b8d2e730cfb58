"""`tito`: one Typer app; each command group lives in tito/commands/<group>.py.

Commands are imported only when they run (nbgrader alone takes seconds to import, and most tito
runs never touch it), so `tito export 01_tensor` starts in a fraction of a second. In a student
edition (settings.ini [course] edition = student) the instructor's commands are left out of
`tito --help` and refuse to run, saying why.
"""

from __future__ import annotations

import importlib
import sys
from importlib import metadata

import typer
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from tito.core.console import err_console
from tito.core.errors import TitoError

# name: (module, attribute: a command function or a Typer group, for students?)
COMMANDS = {
    "export": ("tito.commands.export", "export_command", True),
    "test": ("tito.commands.test", "test_command", True),
    "submit": ("tito.commands.submit", "submit_command", True),
    "module": ("tito.commands.module", "app", True),
    "system": ("tito.commands.system", "app", True),
    "nbgrader": ("tito.commands.nbgrader", "app", True),      # students keep `validate` only
    "student-edition": ("tito.commands.student_edition", "student_edition_command", False),
    "check": ("tito.commands.check", "check_command", False),
    "demo": ("tito.commands.demo", "demo_command", False),
    "mutate": ("tito.commands.mutate", "mutate_command", False),
    "leaderboard": ("tito.commands.leaderboard", "leaderboard_command", True),
}
STUDENT_NBGRADER_COMMANDS = {"validate"}
STUDENT_HELP = "TinyTorch: export, test and submit your modules; track your progress."
CONTEXT = {"help_option_names": ["-h", "--help"]}


def _student_edition() -> bool:
    from tito.core.workspace import Workspace

    try:
        return Workspace.find().is_student_edition
    except TitoError:
        return False        # outside any workspace: show everything; commands say what is missing


def _refusal(name: str):
    def refuse(**_options) -> None:
        raise TitoError(f"`tito {name}` is an instructor command and is not part of the student edition; "
                        "`tito --help` lists yours")
    return refuse


def _to_click(name: str, target, student: bool):
    if isinstance(target, typer.Typer):
        command = typer.main.get_group(target)   # a group even when it holds one command (system doctor)
        command.name = name
        if student and name == "nbgrader":
            command.help = command.short_help = "Validate a notebook as the grader will (tito submit does it for you)."
            for sub_name, sub in command.commands.items():
                if sub_name not in STUDENT_NBGRADER_COMMANDS:
                    sub.hidden = True
                    sub.callback = _refusal(f"nbgrader {sub_name}")
        return command
    single = typer.Typer(context_settings=CONTEXT, add_completion=False, pretty_exceptions_enable=False)
    single.command(name)(target)
    command = typer.main.get_command(single)
    command.name = name
    return command


class LazyGroup(TyperGroup):
    """Command names are known up front; a command's module is imported when it is looked up."""

    def format_help(self, ctx, formatter) -> None:
        if _student_edition():
            self.help = STUDENT_HELP
        super().format_help(ctx, formatter)

    def list_commands(self, ctx) -> list[str]:
        student = _student_edition()
        return [n for n, (_, _, for_students) in COMMANDS.items() if for_students or not student]

    def get_command(self, ctx, cmd_name: str):
        if cmd_name not in COMMANDS:
            return None
        module_name, attribute, for_students = COMMANDS[cmd_name]
        student = _student_edition()
        if student and not for_students:   # whatever arguments follow, the answer is the same
            return TyperCommand(cmd_name, callback=_refusal(cmd_name), hidden=True, add_help_option=False,
                                context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
        try:
            target = getattr(importlib.import_module(module_name), attribute)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            return None     # a command whose file this workspace does not ship
        return _to_click(cmd_name, target, student)


def _version(value: bool) -> None:
    if value:
        print(f"tito {metadata.version('tinytorch')}")
        raise typer.Exit()


app = typer.Typer(
    name="tito",
    cls=LazyGroup,
    help="TinyTorch course tool: export, test, submit and complete modules; build the student edition; grade with nbgrader.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings=CONTEXT,
)


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                          help="print tito's version and exit")) -> None:
    """TinyTorch course tool: export, test, submit and complete modules; build the student edition; grade with nbgrader."""


def main() -> None:
    try:
        app()  # standalone mode: usage errors print and exit 2, success exits 0
    except TitoError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
