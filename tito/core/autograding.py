"""Autograding a module's submissions: jobs out to an executor, results into the gradebook.

Every grading action of tito (`tito nbgrader autograde`, `tito check`, `tito demo`) comes here.
The instructor's tests and the reference package stay in trusted processes; each submission
runs in a limited process that sees only the exported code of the module's prerequisites.
"""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from tito.core.course import Course, notebook_name
from tito.core.exporter import render
from tito.core.errors import TitoError
from tito.core.executor import Executor, executor_for
from tito.core.manifest import Module, discover, transitive_prerequisites
from tito.core.recorder import record
from tito.core.source import read_source
from tito.sandbox import launcher
from tito.sandbox.grader import GradeJob, GradeResult, trusted_import_source

# Folders besides settings.ini's [paths] that a submission must never see either.
OTHER_SECRET_FOLDERS = ("benchmarks", "demo-out", ".tito", ".git")


def secret_folders(course: Course) -> list[str]:
    """Everything a submission must not see: sources with solutions, hidden tests, the reference
    package, the gradebook and other students' work (paths as settings.ini names them)."""
    ws = course.ws
    paths = {ws.modules_dir, ws.tests_dir, ws.package_dir, ws.path("grading"), course.root,
             *(ws.root / f for f in OTHER_SECRET_FOLDERS)}
    return sorted(str(p) for p in paths)


@contextmanager
def prerequisite_package(course: Course, module: Module) -> Iterator[Path]:
    """A copy of the package holding only what the module may import: never its own reference solution."""
    ws = course.ws
    allowed = transitive_prerequisites(ws, module)
    files = {ws.root / m.export_path for m in discover(ws) if m.name in allowed}
    with tempfile.TemporaryDirectory(prefix="tito-package-") as scratch:
        target = Path(scratch) / ws.package_name
        for init in ws.package_dir.rglob("__init__.py"):
            (target / init.relative_to(ws.package_dir)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(init, target / init.relative_to(ws.package_dir))
        for path in files:
            if not path.exists():
                raise TitoError(f"{path.relative_to(ws.root)} is missing: run `tito export --all` before grading")
            destination = target / path.relative_to(ws.package_dir)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)
        yield target


def artifact(course: Course, module: Module, student: str) -> dict:
    """What the student's notebook would export, plus the module's package tests, for the sandbox."""
    ws = course.ws
    notebook = course.submission_dir(student, module) / notebook_name(module)
    try:
        _, files = render(ws, module, notebook)
    except TitoError as exc:
        return {"error": f"the submission does not export: {str(exc).splitlines()[0][:300]}"}
    except Exception as exc:  # nbdev on a mangled notebook: report, do not stop the batch
        return {"error": f"the submission does not export ({type(exc).__name__})"}
    package_files = {str(p.relative_to(ws.package_name)): text for p, text in files.items()}
    tests_dir = ws.package_tests_dir(module.name)
    tests = {p.name: p.read_text(encoding="utf-8") for p in sorted(tests_dir.glob("*.py"))} if tests_dir.is_dir() else {}
    return {"package_files": package_files, "tests": tests}


def make_jobs(course: Course, module: Module, students: list[str], package: Path,
              package_tests: bool = False) -> list[GradeJob]:
    source = read_source(module)
    tests = [{"grade_id": c.metadata["nbgrader"]["grade_id"], "source": c.source,
              "points": float(c.metadata["nbgrader"].get("points", 0))}
             for c in source.nbgrader_cells() if c.metadata["nbgrader"].get("grade")]
    others = [c.source for c in source.code_cells() if not c.metadata.get("nbgrader", {}).get("grade")]
    imports = trusted_import_source(others, course.ws.package_name)
    hide = secret_folders(course)
    limits = course.ws.grading_limits(module.grading).__dict__
    return [GradeJob(module=module.name, student=s, submission=str(course.submission_dir(s, module) / notebook_name(module)),
                     tests=tests, trusted_imports=imports, package=str(package), workspace=str(course.ws.root),
                     hide=hide, limits=dict(limits), slot=slot,
                     artifact=artifact(course, module, s) if package_tests else None)
            for slot, s in enumerate(students)]


def grade_submissions(course: Course, module: Module, students: list[str], workers: int = 1,
                      on_result: Callable[[GradeResult], None] | None = None, package_tests: bool = False,
                      executor: Executor | None = None) -> list[GradeResult]:
    """Grade and record each submission as it finishes (so a killed run resumes where it stopped).

    package_tests: also run the module's package tests on each submission's exported code (a report
    in the feedback, not points: the submission's own code runs in that process).
    executor: where the jobs run (default: `workers` local processes), e.g. a DaskExecutor.
    """
    results = []
    executor = executor or executor_for(workers)
    with prerequisite_package(course, module) as package:
        for result in executor.run(make_jobs(course, module, students, package, package_tests)):
            if not result.failed:
                record(course, module, result)
            results.append(result)
            if on_result:
                on_result(result)
    return results


def check_sandbox(course: Course, module: Module) -> str:
    """Before a batch: the limited process must import the prerequisite package (else every score is 0)."""
    with prerequisite_package(course, module) as package:
        sandbox = launcher.start(package, course.ws.root, [], course.ws.grading_limits(module.grading), slot=0)
        try:
            sandbox.endpoint.channel.deadline = None
            ran = sandbox.endpoint.value("exec", source="import tinytorch\nprint(tinytorch.__file__)")
        finally:
            sandbox.stop()
    if ran.get("error"):
        raise TitoError(f"the grading sandbox cannot import tinytorch: {ran['error'].get('message')}; run `tito export --all`")
    mode = {"root": "isolated as root", "user": "isolated without root"}.get(sandbox.mode, "limits only")
    return f"{ran['output'].strip()} [{mode}]"
