"""`tito demo` (make demo): the whole instructor pipeline on demo submissions, end to end.

Everything happens in demo-out/ (ignored by git; rebuilt on every run): export, release, four demo
students per module zipped as an LMS hands them over (plus one broken upload), collect, autograde,
feedback, grades.csv, and the gradebook printed as a table.
"""

from __future__ import annotations

import shutil
import zipfile

import nbformat
import typer
from rich.table import Table

from tito.commands.nbgrader import run_autograde, run_collect, run_export_grades, run_feedback, run_generate
from tito.core.console import console
from tito.core.course import Course, notebook_name
from tito.core.demo_submissions import STUDENTS, build
from tito.core.errors import TitoError
from tito.core.exporter import export
from tito.core.manifest import discover, resolve
from tito.core.workspace import Workspace


def demo_command(
    module: list[str] = typer.Option(None, "--module", "-m", help="limit the demo to this module (repeat -m for more; default: all)"),
) -> None:
    """Export, release, collect, autograde, feedback and grades for four demo students."""
    ws = Workspace.find()
    modules = [resolve(ws, m) for m in module] if module else discover(ws)
    out = ws.root / "demo-out"
    shutil.rmtree(out, ignore_errors=True)   # demo-out/ holds only what the previous demo wrote
    course = Course(ws, out / "grading")
    console.rule("1. export")
    for m in modules:
        export(ws, m)
    console.print(f"{len(modules)} module(s) exported into {ws.package_dir.relative_to(ws.root)}/")
    console.rule("2. release (nbgrader generate_assignment)")
    run_generate(course, modules)
    console.rule("3. demo submissions, zipped per student")
    uploads = out / "lms-download"
    uploads.mkdir(parents=True)
    for student in STUDENTS:
        with zipfile.ZipFile(uploads / f"{student}.zip", "w") as archive:
            for m in modules:
                notebook = build(course.release_notebook(m), course.source_notebook(m))[student]
                archive.writestr(notebook_name(m), nbformat.writes(notebook))
    (uploads / "late-upload.ipynb").write_text("{ this is not a notebook")
    console.print(f"{len(STUDENTS)} students x {len(modules)} modules + 1 broken upload in {uploads.relative_to(ws.root)}/")
    console.rule("4. collect")
    run_collect(course, uploads, force=False)
    console.rule("5. autograde")
    for m in modules:
        run_autograde(course, m, workers=None)   # the measured default (tito.core.executor.default_workers)
    console.rule("6. feedback and grades")
    for m in modules:
        run_feedback(course, m)
    grades = out / "grades.csv"
    rows = run_export_grades(course, grades)
    table = Table(title="gradebook (demo-out/grading/gradebook.db)")
    for column in rows[0]:
        table.add_column(column)
    for row in rows[1:]:
        table.add_row(*row)
    console.print(table)
    _verify(rows, modules)


def _verify(rows: list[list[str]], modules) -> None:
    """The demo proves the grading both ways, on the modules it ran (the CSV has a column for every
    module); a surprise here is a course bug, not a demo detail."""
    header, maximum, by_student = rows[0], rows[1], {r[0]: r for r in rows[2:]}
    columns = [header.index(m.name) for m in modules]
    problems = []
    for i in columns:
        full, blank = float(by_student["full"][i]), float(by_student["blank"][i])
        if full != float(maximum[i]):
            problems.append(f"{header[i]}: full solution scored {full:g} of {maximum[i]}")
        if blank != 0:
            problems.append(f"{header[i]}: blank release scored {blank:g}")
    most = sum(float(maximum[i]) for i in columns)
    for student in ("partial", "wrong"):
        total = sum(float(by_student[student][i]) for i in columns)
        if not 0 < total < most:
            problems.append(f"{student} scored {total:g} of {most:g}, expected in between")
    if problems:
        raise TitoError("the demo found grading problems:\n  " + "\n  ".join(problems))
    console.print("[green]full = total, blank = 0, partial and wrong in between: grading works both ways[/]")
