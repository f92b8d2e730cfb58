"""`tito student-edition OUT_DIR`: a workspace for students, with no solution code anywhere in it."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import typer

from tito.core.console import console
from tito.core.errors import TitoError
from tito.core.exporter import ensure_package_inits, export
from tito.core.lab_settings import SETTINGS_FILE
from tito.core.manifest import discover
from tito.core.workspace import Workspace

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
# Files copied as they are; everything else a student gets is generated below (settings.ini gains
# `edition = student`; the Makefile, README and .gitignore are the students' own, from templates).
COPIED_FILES = ("pyproject.toml", "grading/nbgrader_config.py", str(SETTINGS_FILE))
TEMPLATE_FILES = {"student_README.md": "README.md", "student_Makefile": "Makefile", "student_gitignore": ".gitignore"}
MODULE_FILES = ("module.yaml", "README.md")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")


def build_student_edition(ws: Workspace, out: Path) -> list[str]:
    """Write the student edition into `out` (which must not exist yet); returns the modules included."""
    out = out.resolve()
    if out.exists() and not out.is_dir():
        raise TitoError(f"{out} is a file; give a new folder for the student edition")
    if out.exists() and any(out.iterdir()):
        raise TitoError(f"{out} already exists and is not empty; choose a new folder "
                        "(tito never overwrites a student's work)")
    if out.is_relative_to(ws.root) and not out.is_relative_to(ws.root / "demo-out"):
        raise TitoError(f"{out} is inside the course repository; write the student edition somewhere else")
    modules = discover(ws)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    except OSError as exc:
        raise TitoError(f"cannot write the student edition to {out}: {exc.strerror or exc}; choose a folder you can write to")
    try:
        _write_edition(ws, modules, staging)
        if out.exists():
            out.rmdir()
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [m.name for m in modules]


def _write_edition(ws: Workspace, modules, staging: Path) -> None:
    import jupytext

    from tito.core.course import notebook_name
    from tito.core.source import read_source
    from tito.core.stubs import find_leaks, solution_lines, strip_solutions

    sources = [read_source(m) for m in modules]
    secrets = solution_lines(s.notebook for s in sources)
    for name in COPIED_FILES:   # nbgrader_config.py: `tito nbgrader validate` reads it
        if (ws.root / name).exists():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ws.root / name, staging / name)
    (staging / "settings.ini").write_text(_student_settings(ws), encoding="utf-8")
    for template, name in TEMPLATE_FILES.items():
        shutil.copy2(TEMPLATES / template, staging / name)
    shutil.copytree(ws.root / "tito", staging / "tito", ignore=IGNORE)
    for init in ws.package_dir.rglob("__init__.py"):
        target = staging / init.relative_to(ws.root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(init, target)
    for m, source in zip(modules, sources):
        folder = staging / m.folder.relative_to(ws.root)
        folder.mkdir(parents=True)
        for name in MODULE_FILES:
            if (m.folder / name).exists():
                shutil.copy2(m.folder / name, folder / name)
        stub = strip_solutions(source.notebook)
        jupytext.write(stub, folder / m.source.name, fmt="py:percent")
        # The release as the instructor hands it out: `tito submit` checks against its tests.
        release = staging / ws.path("grading").relative_to(ws.root) / "release" / m.name / notebook_name(m)
        release.parent.mkdir(parents=True, exist_ok=True)
        jupytext.write(stub, release, fmt="ipynb")
        tests = ws.package_tests_dir(m.name)
        if tests.is_dir():
            shutil.copytree(tests, staging / tests.relative_to(ws.root), ignore=IGNORE)
    for extra in ("conftest.py", "__init__.py"):
        for name in (ws.tests_dir / extra, ws.package_tests_dir(extra)):
            if name.exists():
                (staging / name.relative_to(ws.root)).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(name, staging / name.relative_to(ws.root))
    student_ws = Workspace(staging)
    for m in discover(student_ws):
        export(student_ws, m)
    ensure_package_inits(student_ws.package_dir)
    shutil.rmtree(staging / ".tito", ignore_errors=True)   # the export cache is rebuilt on the student's machine
    leaks = find_leaks(staging, secrets)
    if leaks:
        raise TitoError("solution lines would leak into the student edition:\n  " + "\n  ".join(leaks[:20])
                        + "\nremove them from those files (tests must not copy solution lines)")


def _student_settings(ws: Workspace) -> str:
    """The course's settings.ini, marked as a student edition (tito then offers only students' commands)."""
    text = (ws.root / "settings.ini").read_text(encoding="utf-8")
    marker = ("# This workspace is a student edition: tito offers only the students' commands.\n"
              "edition = student\n")
    if "[course]\n" not in text:
        return text + "\n[course]\n" + marker
    return text.replace("[course]\n", "[course]\n" + marker, 1)


def student_edition_command(out_dir: Path = typer.Argument(..., help="new folder for the student workspace")) -> None:
    """Write a student workspace: stubbed sources, visible tests, a tinytorch/ exported from the stubs, tito."""
    ws = Workspace.find()
    names = build_student_edition(ws, out_dir)
    console.print(f"student edition with {len(names)} modules written to {out_dir.resolve()}")
    console.print(f"next: cd {out_dir} && make install && .venv/bin/tito module list")
