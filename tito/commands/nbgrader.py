"""`tito nbgrader ...`: the instructor pipeline on real nbgrader (generate, collect, autograde, feedback, grades)."""

from __future__ import annotations

import csv
import html
import re
import time
from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from tito.core.console import console
from tito.core.autograding import check_sandbox, grade_submissions
from tito.core.course import Course, generate, prepare_grading_environment, quiet_sqlalchemy
from tito.core.errors import TitoError
from tito.core.executor import WORKER_DIED, default_workers
from tito.core.intake import collect
from tito.core.manifest import discover, resolve, select
from tito.core.source import read_source
from tito.core.stubs import hidden_test_lines
from tito.core.workspace import Workspace
from tito.sandbox import launcher

app = typer.Typer(help="Grade with nbgrader: release, collect, autograde, feedback, grades.", no_args_is_help=True)


def _course() -> Course:
    return Course.of(Workspace.find())


@app.command("generate")
def generate_command(module: str = typer.Argument(None, help="module to release: 01_tensor, 01 or tensor"),
                     all_: bool = typer.Option(False, "--all", help="release every module")) -> None:
    """Module source -> grading/source (jupytext) -> grading/release (nbgrader generate_assignment)."""
    course = _course()
    run_generate(course, select(course.ws, module, all_))


def run_generate(course: Course, modules) -> None:
    api = course.api()
    for m in modules:
        release = generate(course, m, api)
        console.print(f"{m.name:<18} released {release.relative_to(course.ws.root)}")


@app.command("collect")
def collect_command(
    folder: Path = typer.Argument(..., exists=True, file_okay=False, help="folder of <student_id>.ipynb / .zip files"),
    force: bool = typer.Option(False, "--force", help="replace submissions already collected"),
) -> None:
    """Take in a folder of submissions (one notebook or zip per student, named by student id)."""
    run_collect(_course(), folder, force)


def run_collect(course: Course, folder: Path, force: bool) -> None:
    modules = [m for m in discover(course.ws) if course.release_notebook(m).exists()]
    if not modules:
        raise TitoError("no module has been released yet; run `tito nbgrader generate --all` first")
    placed, rejected = collect(course, folder, modules, force)
    prepare_grading_environment(course.ws)
    with quiet_sqlalchemy(), course.gradebook() as gb:
        for p in placed:
            gb.update_or_create_student(p.student)
    for p in placed:
        console.print(f"collected {p.student}/{p.module}" + "".join(f"\n  note: {n}" for n in p.notes))
    for r in rejected:
        console.print(f"[yellow]not collected[/] {r.item}: {r.reason}")
    console.print(f"{len(placed)} collected, {len(rejected)} not collected")
    if not placed and not rejected:
        raise TitoError(f"{folder} holds no submissions; expected one <student_id>.ipynb or <student_id>.zip per student")
    if not placed:
        raise TitoError("nothing could be collected (reasons above)")


def _graded(course: Course, module, student: str) -> bool:
    return course.autograded_notebook(student, module).exists()


@app.command("autograde")
def autograde_command(
    module: str = typer.Argument(..., help="module to grade: 01_tensor, 01 or tensor"),
    student: str = typer.Option(None, "--student", help="grade only this student"),
    force: bool = typer.Option(False, "--force", help="grade again submissions that already have a grade"),
    workers: int = typer.Option(None, "--workers", "-j", min=1, show_default=False,
                                help="parallel grading workers (1 or more; default: one per core, at most one per "
                                     "4 submissions, the fastest measured)"),
    package_tests: bool = typer.Option(False, "--package-tests",
                                       help="also run the module's package tests on each submission's exported code (reported in feedback)"),
    scheduler: str = typer.Option(None, "--scheduler", metavar="tcp://HOST:8786",
                                  help="grade on this Dask scheduler's workers (default: `scheduler` in settings.ini's grading "
                                       "section; empty: this machine; see docs/dask-grading.md)"),
) -> None:
    """Autograde every collected submission of a module into the gradebook (sandboxed, parallel, resumable)."""
    course = _course()
    run_autograde(course, resolve(course.ws, module), student, force, workers, package_tests, scheduler)


def _scheduler_of(course: Course, scheduler: str | None) -> str | None:
    """--scheduler, else settings.ini [grading] scheduler; None (or empty) grades on this machine."""
    if scheduler is None and course.ws.settings.has_section("grading"):
        scheduler = course.ws.settings["grading"].get("scheduler", "")
    return (scheduler or "").strip() or None


def _dask_executor(address: str):
    from tito.core.dask_executor import DaskExecutor

    executor = DaskExecutor(address)
    try:
        workers = executor.workers
    except (ConnectionError, RuntimeError) as exc:
        raise TitoError(str(exc)) from None
    if not workers:
        executor.close()
        raise TitoError(f"the Dask scheduler at {address} has no workers; start some with `dask worker {address}`")
    console.print(f"Dask scheduler {escape(address)}: {workers} worker(s); dashboard {escape(executor.dashboard_link)}")
    for worker, isolation in sorted(executor.isolation_by_worker().items()):
        console.print(f"  worker {escape(worker)}: {escape(isolation)}")
    return executor, workers


def run_autograde(course: Course, m, student: str | None = None, force: bool = False, workers: int | None = 1,
                  package_tests: bool = False, scheduler: str | None = None) -> None:
    """workers: None for the default (tito.core.executor.default_workers of the batch's size)."""
    if not course.release_notebook(m).exists():
        raise TitoError(f"{m.name} has not been released; run `tito nbgrader generate {m.name}` first")
    students = course.submitted_students(m)
    if student:
        if student not in students:
            raise TitoError(f"unknown student {student!r} for {m.name}; collected: {', '.join(students) or 'none'}")
        students = [student]
    todo = [s for s in students if force or not _graded(course, m, s)]
    skipped = len(students) - len(todo)
    if skipped:
        console.print(f"{skipped} submission(s) already graded, kept as recorded (use --force to grade again)")
    if not todo:
        console.print("nothing to grade")
        return
    workers = workers or default_workers(len(todo))
    # Both lines hold brackets and paths: printed as text, never read as rich markup.
    console.print(f"isolation: {escape(launcher.isolation().describe())}")
    console.print(f"grading sandbox imports {escape(check_sandbox(course, m))}")
    address, executor = _scheduler_of(course, scheduler), None
    if address:
        executor, workers = _dask_executor(address)
    where = f" on Dask, {workers} worker{'s' if workers > 1 else ''}" if executor else \
        f" ({workers} worker{'s' if workers > 1 else ''})"
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    start = time.perf_counter()
    stopped, failed, died, reports = [], [], [], {}
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(f"autograde {m.name}{where}", total=len(todo), rate="")

        def advance(result):
            done = bar.tasks[0].completed + 1
            bar.update(task, advance=1, rate=f"{done / (time.perf_counter() - start) * 60:.1f}/min")
            if result.stopped and result.stopped.startswith(WORKER_DIED):
                died.append((result.student, result.stopped))
            elif result.stopped:
                stopped.append((result.student, result.stopped))
            if result.failed:
                failed.append((result.student, result.failed))
            reports[result.student] = result.package_tests or ""

        try:
            grade_submissions(course, m, todo, workers=workers, on_result=advance, package_tests=package_tests,
                              executor=executor)
        finally:
            if executor is not None:
                executor.close()
    _print_scores(course, m, todo, reports if package_tests else None)
    for s, reason in stopped:
        console.print(f"[yellow]{s}[/]: stopped early, {escape(reason)} (scored what it earned before)")
    for s, reason in died:
        console.print(f"[red]{s}[/]: recorded with 0 points: {escape(reason)}")
    for s, reason in failed:
        console.print(f"[red]{s}[/]: not graded, {escape(reason)}")
    if died and not failed:
        raise TitoError(f"{len(died)} submission(s) ended their grading worker and were recorded with 0 points "
                        "(the batch went on); after a look, `--student ID --force` grades one again")
    if failed:
        raise TitoError(f"{len(failed)} submission(s) could not be graded (reasons above); run the same command again to grade them")


def _print_scores(course: Course, m, students: list[str], package_tests: dict | None = None) -> None:
    table = Table(title=f"{m.name} scores")
    table.add_column("student")
    table.add_column("score")
    if package_tests is not None:
        table.add_column("package tests on the exported code")
    with quiet_sqlalchemy(), course.gradebook() as gb:
        for s in students:
            try:
                sub = gb.find_submission(m.name, s)
                row = [s, f"{sub.score:g} / {sub.max_score:g}"]
            except Exception:
                row = [s, "not graded"]
            table.add_row(*row, *([package_tests.get(s, "")] if package_tests is not None else []))
    console.print(table)


@app.command("feedback")
def feedback_command(module: str = typer.Argument(..., help="module: 01_tensor, 01 or tensor (autograded first)")) -> None:
    """HTML feedback for every autograded submission, with hidden tests removed."""
    course = _course()
    run_feedback(course, resolve(course.ws, module))


def run_feedback(course: Course, m) -> None:
    """Feedback pages for every autograded submission; a page that cannot be made, or that would show
    hidden tests, is reported and skipped: it never stops the pages of the others."""
    from tito.core.feedback import page_problem

    if not any(course.autograded_notebook(s, m).exists() for s in course.submitted_students(m)):
        raise TitoError(f"no autograded submission of {m.name} yet; run autograde first: tito nbgrader autograde {m.name}")

    api = course.api()
    with quiet_sqlalchemy():
        result = api.generate_feedback(m.name, force=True)
    if not result.get("success"):
        console.print(f"[yellow]some feedback could not be made[/] (nbgrader's log):\n"
                      f"{escape((result.get('log') or '')[-1500:])}")
    hidden = hidden_test_lines(read_source(m).notebook)
    pages = sorted((course.root / "feedback").glob(f"*/{m.name}/*.html"))
    kept = 0
    for page in pages:
        # Highlighted code is split into <span>s and escaped: compare against the visible text.
        problem = page_problem(html.unescape(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8"))), hidden)
        if problem:
            page.unlink()
            console.print(f"[red]{escape(str(page))}[/]: {escape(problem)}; deleted (check grading/nbgrader_config.py)")
        else:
            kept += 1
    console.print(f"{kept} feedback page(s) under {(course.root / 'feedback').relative_to(course.ws.root)}/*/{m.name}/")


@app.command("export")
def export_grades_command(out: Path = typer.Option(None, "--out", help="CSV file (default grading/grades.csv)")) -> None:
    """One row per student, one column per module, plus the total."""
    course = _course()
    out = out or course.root / "grades.csv"
    if out.is_dir():
        raise TitoError(f"--out {out} is a folder; give a file name, e.g. --out {out / 'grades.csv'}")
    run_export_grades(course, out)


def grade_rows(course: Course) -> tuple[list[str], list[list[str]]]:
    """(header, rows): one row per student in the gradebook, one column per module, plus the total."""
    modules = discover(course.ws)
    prepare_grading_environment(course.ws)
    with quiet_sqlalchemy(), course.gradebook() as gb:
        students = sorted(s.id for s in gb.students)
        rows = []
        for student in students:
            scores = []
            for m in modules:
                try:
                    scores.append(gb.find_submission(m.name, student).score)
                except Exception:
                    scores.append(0.0)
            rows.append([student, *[f"{s:g}" for s in scores], f"{sum(scores):g}"])
    header = ["student", *[m.name for m in modules], "total"]
    maximum = ["(max)", *[f"{m.points:g}" for m in modules], f"{sum(m.points for m in modules):g}"]
    return header, [maximum, *rows]


def run_export_grades(course: Course, out: Path) -> list[list[str]]:
    header, rows = grade_rows(course)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    console.print(f"{len(rows) - 1} student(s) written to {out}")
    return [header, *rows]


@app.command("status")
def status_command(module: str = typer.Argument(None, help="one module: 01_tensor, 01 or tensor (default: all)")) -> None:
    """Per module: submissions, graded, needing manual grading, mean score."""
    course = _course()
    modules = [resolve(course.ws, module)] if module else discover(course.ws)
    prepare_grading_environment(course.ws)
    table = Table(title="grading status")
    for column in ("module", "released", "submitted", "graded", "manual grading", "mean score"):
        table.add_column(column)
    with quiet_sqlalchemy(), course.gradebook() as gb:
        for m in modules:
            students = course.submitted_students(m)
            graded, manual, scores = 0, 0, []
            for s in students:
                if not _graded(course, m, s):
                    continue
                sub = gb.find_submission(m.name, s)
                graded += 1
                manual += bool(sub.needs_manual_grade)
                scores.append(sub.score)
            mean = f"{sum(scores) / len(scores):.1f} / {m.points:g}" if scores else "-"
            table.add_row(m.name, "yes" if course.release_notebook(m).exists() else "no",
                          str(len(students)), str(graded), str(manual), mean)
    console.print(table)


@app.command("validate")
def validate_command(notebook: Path = typer.Argument(..., exists=True, dir_okay=False,
                                                     help="a notebook (.ipynb) or a module source (.py)")) -> None:
    """Run a notebook's (or a module source's) tests the way the grader will; exits non-zero if any test fails."""
    from tito.core.validation import validate

    result = validate(Workspace.find(), notebook)
    for cell in result.failed:
        console.print("[red]failed[/]:", escape(cell.get("source", "")[:200]), "\n" + escape(cell["error"][-800:]))
    for cell in result.changed:
        console.print(f"[yellow]a read-only test cell was edited[/] (the grader will restore it): {escape(cell.get('source', '')[:120])}")
    if result.failed:
        raise TitoError(f"{len(result.failed)} cell(s) fail in {notebook.name}; fix them before you submit")
    console.print(f"[green]{escape(notebook.name)}: all tests pass[/]" + (" (edited read-only cells will be restored by the grader)" if result.changed else ""))
