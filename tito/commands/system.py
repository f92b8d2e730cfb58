"""`tito system doctor`: is this machine ready? Each line is OK or says what to run."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib import metadata

import typer
from rich.markup import escape
from packaging.requirements import Requirement

from tito.core import lab_settings
from tito.core.console import console
from tito.core.errors import TitoError
from tito.core.workspace import Workspace

app = typer.Typer(help="Check this machine's setup.", no_args_is_help=True)

INSTALL_HINT = "run `make install` (or `pip install -e .`) in the workspace"


def _checks(ws: Workspace):
    """Yield (name, ok, detail) for each requirement of the course."""
    yield ("python", sys.version_info >= (3, 11), f"{sys.version.split()[0]}" +
           ("" if sys.version_info >= (3, 11) else ": install Python 3.11 or newer"))
    pins = tomllib.loads((ws.root / "pyproject.toml").read_text())["project"]["dependencies"]
    for pin in pins:
        req = Requirement(pin)
        try:
            version = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            yield (req.name, False, f"not installed: {INSTALL_HINT}")
            continue
        ok = req.specifier.contains(version, prereleases=True)
        yield (req.name, ok, version if ok else f"{version} installed, course pins {req.specifier}: {INSTALL_HINT}")
    lab = subprocess.run([sys.executable, "-m", "jupyter", "labextension", "list"], capture_output=True, text=True)
    has_jupytext = "jupytext" in (lab.stdout + lab.stderr)
    yield ("jupytext lab extension", has_jupytext, "enabled" if has_jupytext
           else f"missing: {INSTALL_HINT} (jupytext ships the extension)")
    yield ("default viewer", *lab_settings.doctor_check(ws))
    try:
        from jupyter_client.kernelspec import find_kernel_specs

        kernels = find_kernel_specs()
    except Exception as exc:  # a broken Jupyter install shows up here, not as a crash of doctor
        kernels = {}
        yield ("jupyter kernel", False, f"{exc}: {INSTALL_HINT}")
    else:
        ok = "python3" in kernels
        yield ("jupyter kernel", ok, "python3" if ok else f"no python3 kernel: run `{sys.executable} -m ipykernel install --user`")
    probe = subprocess.run([sys.executable, "-c", "import tinytorch, sys; sys.stdout.write(tinytorch.__file__)"],
                           capture_output=True, text=True, env=ws.subprocess_env(), cwd=ws.root)
    ok = probe.returncode == 0 and probe.stdout.startswith(str(ws.package_dir))
    detail = probe.stdout if ok else (probe.stderr.strip().splitlines() or ["import failed"])[-1] + \
        f": run `tito export --all` in {ws.root}"
    yield ("import tinytorch", ok, detail)
    from tito.sandbox import launcher

    isolation = launcher.isolation()
    # Only instructors grade: weaker isolation is a note for them, not a failed check for a student.
    yield ("grading isolation", True if isolation.isolated else None, isolation.describe())


@app.command("doctor")
def doctor_command() -> None:
    """Python, packages, the jupytext JupyterLab extension, the default viewer of module sources, the Jupyter kernel and `import tinytorch`."""
    ws = Workspace.find()
    failures = 0
    for name, ok, detail in _checks(ws):
        failures += ok is False
        status = {True: "[green]OK  [/]", False: "[red]FIX [/]", None: "[yellow]NOTE[/]"}[ok]
        console.print(f"{status} {name:<24} {escape(detail)}", soft_wrap=True)
    if failures:
        raise TitoError(f"{failures} check(s) need fixing; run the commands shown above")
