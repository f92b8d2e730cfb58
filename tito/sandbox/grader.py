"""Grade one submission: student cells run in the limited process, each graded test in this one.

The tests are the instructor's (hidden ones included), never the submission's copies: a student
who edits, deletes, reorders or duplicates a locked cell changes nothing. Cells run in the
submission's order, so a submission that dies or hits a limit keeps what it earned before.
"""

from __future__ import annotations

import ast
import builtins
import re
import contextlib
import io
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from tito.core.source import without_magics
from tito.core.workspace import GradingLimits
from tito.sandbox import launcher
from tito.sandbox.channel import ChannelClosed, ChannelTimeout

MAX_TEST_OUTPUT = 20_000


@dataclass
class CellOutcome:
    index: int                 # position in the submitted notebook (-1: a test the student deleted)
    kind: str                  # "student" or "test"
    output: str = ""
    error: str | None = None   # one line for feedback: "AssertionError: ..." / "time limit ..."
    grade_id: str | None = None
    score: float = 0.0
    max_score: float = 0.0


@dataclass
class GradeResult:
    module: str
    student: str
    cells: list[CellOutcome] = field(default_factory=list)
    stopped: str | None = None          # why the submission stopped early, if it did
    isolated: bool = False
    seconds: float = 0.0
    failed: str | None = None           # the grader (not the submission) failed: nothing is recorded
    package_tests: str | None = None    # the instructor's package tests on the submission's export

    @property
    def scores(self) -> dict[str, float]:
        return {c.grade_id: c.score for c in self.cells if c.kind == "test"}

    @property
    def total(self) -> float:
        return sum(self.scores.values())


@dataclass
class GradeJob:
    """Everything a worker needs, as plain data (jobs cross process boundaries)."""
    module: str
    student: str
    submission: str                # path of the collected notebook
    tests: list[dict]              # [{"grade_id", "source", "points"}] from the instructor's source
    trusted_imports: str           # the instructor's import statements outside the package
    package: str                   # folder with the prerequisite modules' exported code only
    workspace: str
    hide: list[str]
    limits: dict
    slot: int
    # With --package-tests: {"package_files": {path: code}, "tests": {name: text}} or {"error": why}.
    artifact: dict | None = None


def trusted_import_source(cells: list[str], package: str) -> str:
    """The instructor's import statements, except the package's own (those resolve to student objects)."""
    lines = []
    for source in cells:
        try:
            tree = ast.parse(without_magics(source))
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.Import):
                names = [a for a in node.names if a.name.split(".")[0] != package]
                if names:
                    lines.append(ast.unparse(ast.Import(names=names)))
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                    and node.module.split(".")[0] != package:
                lines.append(ast.unparse(node))
    return "\n".join(dict.fromkeys(lines))


def _free_names(source: str) -> list[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    return sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)})


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text if len(text) < 2000 else text[:2000] + " ..."


def grade(job: GradeJob) -> GradeResult:
    start = time.monotonic()
    limits = GradingLimits(**job.limits)
    result = GradeResult(job.module, job.student)
    try:
        notebook = nbformat.read(job.submission, as_version=4)
    except Exception as exc:  # unreadable submission: every test scores 0 with the reason
        result.stopped = f"the submitted notebook could not be read ({type(exc).__name__})"
        result.cells = [CellOutcome(-1, "test", error=result.stopped, grade_id=t["grade_id"], max_score=t["points"])
                        for t in job.tests]
        return result
    tests = {t["grade_id"]: t for t in job.tests}
    plan: list[tuple[int, str, str]] = []          # (index, kind, source or grade_id)
    placed: set[str] = set()
    for index, cell in enumerate(notebook.cells):
        meta = cell.metadata.get("nbgrader", {})
        grade_id = meta.get("grade_id")
        if grade_id in tests:
            if grade_id not in placed:              # a copied test cell counts once
                plan.append((index, "test", grade_id))
                placed.add(grade_id)
        elif cell.cell_type == "code" and not meta.get("locked"):
            # Magics run nowhere here (no IPython): `%%time` or `!pip` must not cost a cell its code.
            plan.append((index, "student", without_magics(cell.source)))
    plan += [(-1, "test", g) for g in tests if g not in placed]   # deleted tests still run, at the end

    sandbox = launcher.start(Path(job.package), Path(job.workspace), [Path(p) for p in job.hide], limits, job.slot)
    result.isolated = sandbox.isolated
    endpoint = sandbox.endpoint
    endpoint.sends_library_names = True
    namespace = {"__name__": "__grading__", "__builtins__": builtins}
    exec(compile(job.trusted_imports, "<instructor imports>", "exec"), namespace)
    trusted_names = set(namespace)
    submission_deadline = time.monotonic() + limits.submission_timeout
    try:
        for index, kind, item in plan:
            test = tests.get(item) if kind == "test" else None
            outcome = CellOutcome(index, kind, grade_id=test["grade_id"] if test else None,
                                  max_score=float(test["points"]) if test else 0.0)
            result.cells.append(outcome)
            if result.stopped:
                outcome.error = f"not run: {result.stopped}"
                continue
            endpoint.channel.deadline = min(time.monotonic() + limits.cell_timeout, submission_deadline)
            try:
                if kind == "student":
                    ran = endpoint.value("exec", source=item)
                    outcome.output = str(ran.get("output", ""))[:MAX_TEST_OUTPUT]
                    if ran.get("error"):
                        outcome.error = str(ran["error"].get("traceback") or ran["error"].get("message"))[:MAX_TEST_OUTPUT]
                else:
                    outcome.output, outcome.error = _run_test(test, namespace, trusted_names, endpoint)
                    outcome.score = 0.0 if outcome.error else outcome.max_score
            except ChannelTimeout:
                limit = "submission" if time.monotonic() >= submission_deadline else "cell"
                seconds = limits.submission_timeout if limit == "submission" else limits.cell_timeout
                result.stopped = f"the {limit} time limit ({seconds} s) was reached in cell {index + 1}"
                outcome.error = result.stopped
                sandbox.stop()
            except ChannelClosed:
                result.stopped = f"the submission's process ended in cell {index + 1} ({sandbox.stop()})"
                outcome.error = result.stopped
            except Exception as exc:  # a malformed answer from the limited process: its fault, not ours
                result.stopped = f"the submission's process answered nonsense in cell {index + 1} ({type(exc).__name__})"
                outcome.error = result.stopped
                sandbox.stop()
    finally:
        endpoint.channel.deadline = None
        sandbox.stop()
    if job.artifact is not None:
        result.package_tests = _run_package_tests(job, limits)
    result.seconds = time.monotonic() - start
    return result


# Runs in a fresh limited process whose package holds the submission's own export. The editable
# install would map `tinytorch` back to the course's reference package, so its finder goes first.
PACKAGE_TEST_RUNNER = """
import subprocess, sys
code = ("import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in getattr(f, '__name__', '').lower()]; "
        "import pytest; sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', '-o', 'addopts=--import-mode=importlib', "
        "'work/package-tests']))")
run = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
print(run.stdout[-4000:])
"""


def _run_package_tests(job: GradeJob, limits: GradingLimits) -> str:
    """The instructor's package tests against the code the student would export (informational:
    the submission's own code runs in that process, so this is a report, not a score)."""
    if "error" in job.artifact:
        return f"not run: {job.artifact['error']}"
    tests = {f"package-tests/{name}": text for name, text in job.artifact["tests"].items()}
    sandbox = launcher.start(Path(job.package), Path(job.workspace), [Path(p) for p in job.hide], limits, job.slot,
                             package_files=job.artifact["package_files"], work_files=tests)
    try:
        sandbox.endpoint.channel.deadline = time.monotonic() + limits.submission_timeout
        ran = sandbox.endpoint.value("exec", source=PACKAGE_TEST_RUNNER)
    except ChannelTimeout:
        return f"stopped: the submission time limit ({limits.submission_timeout} s) was reached"
    except ChannelClosed:
        return "stopped: the process running them ended"
    finally:
        sandbox.stop()
    output = str(ran.get("output", ""))
    totals = [line.strip("= ") for line in output.splitlines() if re.search(r"\d+ (passed|failed|error)", line)]
    return totals[-1] if totals else "no test summary: " + (output.strip().splitlines() or ["no output"])[-1][:300]


def _run_test(test: dict, namespace: dict, trusted_names: set[str], endpoint) -> tuple[str, str | None]:
    """Run one instructor test cell here; names it needs from the submission arrive as data or proxies."""
    source = test["source"]
    fetched = set()
    for name in _free_names(source):
        if name in trusted_names or hasattr(builtins, name):
            continue
        response = endpoint.ask("lookup", name=name)
        if response.get("missing"):
            namespace.pop(name, None)
        else:
            namespace[name] = endpoint.decode(response.get("ok"))
            fetched.add(name)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            exec(compile(source, f"<test {test['grade_id']}>", "exec"), namespace)
    except (ChannelTimeout, ChannelClosed):
        raise
    except Exception as exc:  # the test failed: that is the grade, not an error of the grader
        frames = traceback.extract_tb(exc.__traceback__)
        where = next((f"line {f.lineno} of the test" for f in reversed(frames) if f.filename.startswith("<test")), "")
        error = f"{_one_line(exc)}" + (f" ({where})" if where else "")
    else:
        error = None
    # What a test cell defines (helpers, expected values) stays the test's: never re-fetched.
    trusted_names |= set(namespace) - fetched
    return printed.getvalue()[:MAX_TEST_OUTPUT], error
