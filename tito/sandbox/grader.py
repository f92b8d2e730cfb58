"""Grade one submission: student cells run in the limited process, each graded test in this one.

The tests are the instructor's (hidden ones included), never the submission's copies: a student
who edits, deletes, reorders or duplicates a locked cell changes nothing. Cells run in the
submission's order, so a submission that dies or hits a limit keeps what it earned before.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import dataclasses
import io
import json
import os
import re
import resource
import select
import shutil
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from tito.core.source import without_magics
from tito.core.workspace import GradingLimits
from tito.sandbox import launcher, numba_cache
from tito.sandbox.channel import BridgeFailure, ChannelClosed, ChannelTimeout, ProtocolViolation
from tito.sandbox.endpoint import GRADING_MODULE, TEST_SOURCE_PREFIX

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
    # `tito mutate` only: a mutant is killed by its first lost point, so the rest need not run;
    # the reference's numba cache is captured into numba_capture (a folder) and seeds the mutants'
    # sandboxes as numba_seed {"folder", "skip_cells"} (tito.sandbox.numba_cache). Never for real grading.
    stop_at_first_loss: bool = False
    numba_capture: str | None = None
    numba_seed: dict | None = None


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


HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
HIDDEN_FAILED = "a hidden test failed (hidden tests do not show their details)"
AFTER_HIDDEN_NOTE = "[output not shown: this cell ran after hidden tests, whose inputs it could repeat]"
AFTER_HIDDEN_TEXT = 1500     # characters of a visible test's report kept once hidden tests have run
GRACE = 5.0                  # seconds the trusted process gets beyond a limit to stop by itself


def test_segments(source: str) -> list[tuple[bool, str]]:
    """A test cell's code split at the hidden-test markers: [(hidden, code)], in order, each padded
    with blank lines so that line numbers are the cell's own."""
    segments, current, hidden, first = [], [], False, 0
    for number, line in enumerate(source.splitlines()):
        marker = line.strip()
        if marker.startswith((HIDDEN_BEGIN, HIDDEN_END)):
            if "".join(current).strip():
                segments.append((hidden, "\n" * first + "\n".join(current)))
            hidden, current, first = marker.startswith(HIDDEN_BEGIN), [], number + 1
        else:
            current.append(line)
    if "".join(current).strip():
        segments.append((hidden, "\n" * first + "\n".join(current)))
    return segments


def _nearest_builtin(types: list) -> str:
    for name in types if isinstance(types, list) else []:
        kind = getattr(builtins, str(name), None)
        if isinstance(kind, type) and issubclass(kind, BaseException):
            return str(name)
    return "Exception"


def grade(job: GradeJob) -> GradeResult:
    """Grade one submission in a child process of ours, with its own time and memory budget.

    The instructor's tests run in that child (trusted, but it computes on what the submission
    returns): whatever a submission makes it do (arithmetic on huge numbers, a write the sandbox
    never reads), it is killed at the cell or submission limit, and nothing it did outlives it,
    so no submission can touch the grading of the next one in this worker.
    """
    limits = GradingLimits(**job.limits)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the trusted grading process of this one submission
        try:
            os.close(read_fd)
            _grade_in_child(job, limits, write_fd)
        finally:
            os._exit(0)
    os.close(write_fd)
    return _watch(job, limits, pid, read_fd)


def _grade_in_child(job: GradeJob, limits: GradingLimits, write_fd: int) -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG: die with the worker
    except OSError:
        pass
    # Fresh streams: a lock some thread of the parent held at fork time must not block us.
    sys.stdout = sys.stderr = open(os.devnull, "w")
    with open(f"/proc/{os.getpid()}/statm") as statm:
        virtual = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    budget = virtual + (limits.memory_mb + 1024) * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (budget, budget))
    out = os.fdopen(write_fd, "w", buffering=1, encoding="utf-8")

    def report(**event) -> None:
        out.write(json.dumps(event) + "\n")

    try:
        result = grade_here(job, limits, report)
    except BaseException as exc:  # noqa: B902 - the grader itself failed: the worker reports it, records nothing
        report(crash=f"{type(exc).__name__}: {exc}"[:2000])
    else:
        report(result=dataclasses.asdict(result))
    out.close()


def _watch(job: GradeJob, limits: GradingLimits, pid: int, read_fd: int) -> GradeResult:
    """The worker's side: follow the child's reports, and stop it when it runs past its limits."""
    start = time.monotonic()
    overall = start + limits.submission_timeout * (2 if job.artifact is not None else 1) + 2 * GRACE
    deadline, where = overall, None
    plan, outcomes, sandbox, final, crash, buffer = [], {}, {}, None, None, b""
    reader = os.fdopen(read_fd, "rb", buffering=0)
    try:
        while final is None and crash is None:
            timeout = deadline - time.monotonic()
            if timeout <= 0 or not select.select([reader], [], [], timeout)[0]:
                break
            chunk = reader.read(1 << 16)
            if not chunk:
                break
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                event = json.loads(line)
                if "plan" in event:
                    plan = event["plan"]
                elif "sandbox" in event:
                    sandbox = event["sandbox"]
                elif "cell" in event:
                    where = event["cell"]
                    deadline = min(overall, time.monotonic() + float(event["seconds"]) + GRACE)
                elif "outcome" in event:
                    outcomes[len(outcomes)] = event["outcome"]
                    deadline = overall
                elif "result" in event:
                    final = event["result"]
                elif "crash" in event:
                    crash = event["crash"]
    finally:
        reader.close()
    if final is None and crash is None:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    if crash is not None:
        raise RuntimeError(crash)
    if final is not None:
        cells = [CellOutcome(**c) for c in final.pop("cells")]
        return GradeResult(**final, cells=cells)
    # The trusted process ran past its limit (or died): what it finished counts, the rest is 0.
    if sandbox.get("pid"):
        try:
            os.killpg(int(sandbox["pid"]), signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        shutil.rmtree(sandbox.get("scratch", ""), ignore_errors=True)
    timed_out = time.monotonic() >= deadline - GRACE
    if not timed_out:
        why = f"the grading process for this submission ended ({_status_text(status)})"
    elif deadline >= overall:
        why = f"the submission time limit ({limits.submission_timeout} s) was reached"
    else:
        why = f"the cell time limit ({limits.cell_timeout} s) was reached"
    if where == -2:
        why += " while the package tests ran"
    elif where is not None:
        why += f" in cell {where + 1}" if where >= 0 else " in a test the submission deleted"
    result = GradeResult(job.module, job.student, stopped=why, seconds=time.monotonic() - start)
    for position, (index, kind, grade_id, max_score) in enumerate(plan):
        if position in outcomes:
            result.cells.append(CellOutcome(**outcomes[position]))
        else:
            error = why if position == len(outcomes) else f"not run: {why}"
            result.cells.append(CellOutcome(index, kind, error=error, grade_id=grade_id, max_score=max_score))
    return result


def _status_text(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit code {os.WEXITSTATUS(status)}"


def grade_here(job: GradeJob, limits: GradingLimits, report=lambda **event: None) -> GradeResult:
    """Grade one submission in this process; report(...) tells a watching parent how far it got."""
    start = time.monotonic()
    result = GradeResult(job.module, job.student)
    try:
        notebook = nbformat.read(job.submission, as_version=4)
        cells = list(notebook.cells)
    except Exception as exc:  # unreadable submission: every test scores 0 with the reason
        result.stopped = f"the submitted notebook could not be read ({type(exc).__name__})"
        result.cells = [CellOutcome(-1, "test", error=result.stopped, grade_id=t["grade_id"], max_score=t["points"])
                        for t in job.tests]
        return result
    tests = {t["grade_id"]: t for t in job.tests}
    plan: list[tuple[int, str, str]] = []          # (index, kind, source or grade_id)
    placed: set[str] = set()
    for index, cell in enumerate(cells):
        meta = cell.get("metadata", {}).get("nbgrader", {}) if isinstance(cell.get("metadata"), dict) else {}
        meta = meta if isinstance(meta, dict) else {}
        grade_id = meta.get("grade_id")
        if isinstance(grade_id, str) and grade_id in tests:
            if grade_id not in placed:              # a copied test cell counts once
                plan.append((index, "test", grade_id))
                placed.add(grade_id)
        elif cell.get("cell_type") == "code" and not meta.get("locked") and isinstance(cell.get("source"), str):
            # Magics run nowhere here (no IPython): `%%time` or `!pip` must not cost a cell its code.
            plan.append((index, "student", without_magics(cell.source)))
    plan += [(-1, "test", g) for g in tests if g not in placed]   # deleted tests still run, at the end
    report(plan=[[i, k, item if k == "test" else None, float(tests[item]["points"]) if k == "test" else 0.0]
                 for i, k, item in plan])

    sandbox = launcher.start(Path(job.package), Path(job.workspace), [Path(p) for p in job.hide], limits, job.slot,
                             numba_seed=job.numba_seed)
    report(sandbox={"pid": sandbox.process.pid, "scratch": str(sandbox.scratch)})
    result.isolated = sandbox.isolated
    endpoint = sandbox.endpoint
    namespace = {"__name__": GRADING_MODULE, "__builtins__": builtins}
    exec(compile(job.trusted_imports, "<instructor imports>", "exec"), namespace)
    trusted_names = set(namespace)
    submission_deadline = time.monotonic() + limits.submission_timeout
    hidden_ran = False       # from then on, what the submission prints could repeat hidden inputs
    try:
        for index, kind, item in plan:
            test = tests.get(item) if kind == "test" else None
            outcome = CellOutcome(index, kind, grade_id=test["grade_id"] if test else None,
                                  max_score=float(test["points"]) if test else 0.0)
            result.cells.append(outcome)
            if result.stopped:
                outcome.error = f"not run: {result.stopped}"
                report(outcome=dataclasses.asdict(outcome))
                continue
            cell_seconds = min(limits.cell_timeout, max(0.0, submission_deadline - time.monotonic()))
            report(cell=index, seconds=cell_seconds)
            endpoint.channel.deadline = time.monotonic() + cell_seconds
            try:
                if kind == "student":
                    ran = endpoint.value("exec", source=item, name=f"cell {index + 1}")
                    ran = ran if isinstance(ran, dict) else {}
                    error = ran.get("error") if isinstance(ran.get("error"), dict) else None
                    if hidden_ran:
                        outcome.output = AFTER_HIDDEN_NOTE if ran.get("output") else ""
                        if error:
                            line = error.get("line")
                            where = f" at line {line} of this cell" if type(line) is int else ""
                            outcome.error = (f"{_nearest_builtin(error.get('types'))}{where} (details of cells that run "
                                             "after hidden tests are not shown)")
                    else:
                        outcome.output = str(ran.get("output", ""))[:MAX_TEST_OUTPUT]
                        if error:
                            outcome.error = str(error.get("traceback") or error.get("message"))[:MAX_TEST_OUTPUT]
                else:
                    outcome.output, outcome.error, ran_hidden = _run_test(test, namespace, trusted_names, endpoint,
                                                                          hidden_ran)
                    hidden_ran = hidden_ran or ran_hidden
                    outcome.score = 0.0 if outcome.error else outcome.max_score
                    if outcome.score < outcome.max_score and job.stop_at_first_loss:
                        result.stopped = f"stopped at the first failed test (cell {index + 1}): the verdict is known"
            except ChannelTimeout:
                limit = "submission" if time.monotonic() >= submission_deadline else "cell"
                seconds = limits.submission_timeout if limit == "submission" else limits.cell_timeout
                result.stopped = f"the {limit} time limit ({seconds} s) was reached in cell {index + 1}"
                outcome.error = result.stopped
                sandbox.stop()
            except ChannelClosed:
                result.stopped = f"the submission's process ended in cell {index + 1} ({sandbox.stop()})"
                outcome.error = result.stopped
            except ProtocolViolation as violation:
                result.stopped = f"the submission broke the grading protocol in cell {index + 1} ({violation}): ended"
                outcome.error = result.stopped
                outcome.score = 0.0
                sandbox.stop()
            except Exception as exc:  # a malformed answer from the limited process: its fault, not ours
                result.stopped = f"the submission's process answered nonsense in cell {index + 1} ({type(exc).__name__})"
                outcome.error = result.stopped
                sandbox.stop()
            report(outcome=dataclasses.asdict(outcome))
    finally:
        endpoint.channel.deadline = None
        if job.numba_capture and sandbox.alive():
            with contextlib.suppress(OSError):    # no capture only costs the mutants their compile time
                numba_cache.capture(sandbox.process.pid, sandbox.scratch, Path(job.numba_capture))
        sandbox.stop()
    if job.artifact is not None:
        report(cell=-2, seconds=limits.submission_timeout)
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


def _run_test(test: dict, namespace: dict, trusted_names: set[str], endpoint,
              after_hidden: bool = False) -> tuple[str, str | None, bool]:
    """Run one instructor test cell here; names it needs from the submission arrive as data or proxies.

    Returns (output, error, whether a hidden part ran). The visible part reports its output and
    its failure (the assertion, the line of the test, the student's own frames); a hidden part
    reports only that it failed, and what was printed while it ran is dropped.
    """
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
    shown, error, ran_hidden = [], None, False
    filename = f"{TEST_SOURCE_PREFIX}{test['grade_id']}>"
    for hidden, code in test_segments(source):
        ran_hidden = ran_hidden or hidden
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed):
                exec(compile(code, filename, "exec"), namespace)
        except BridgeFailure:
            raise
        except Exception as exc:  # the test failed: that is the grade, not an error of the grader
            error = f"{type(exc).__name__}: {HIDDEN_FAILED}" if hidden else _visible_failure(exc)
        finally:
            if endpoint.channel.failure is not None:   # even if the test swallowed it
                raise endpoint.channel.failure
        if not hidden:
            shown.append(printed.getvalue())
        if error:
            break
    output = "".join(shown)[:MAX_TEST_OUTPUT]
    if after_hidden:   # the submission's answers could now carry hidden inputs: keep the report short
        output = output[:AFTER_HIDDEN_TEXT]
        error = error if error is None or len(error) <= AFTER_HIDDEN_TEXT else error[:AFTER_HIDDEN_TEXT] + " ..."
    # What a test cell defines (helpers, expected values) stays the test's: never re-fetched.
    trusted_names |= set(namespace) - fetched
    return output, error, ran_hidden


def _visible_failure(exc: BaseException) -> str:
    """The failure of a visible test: its message, the test's line, and the student's own frames."""
    frames = traceback.extract_tb(exc.__traceback__)
    line = next((f.lineno for f in reversed(frames) if f.filename.startswith(TEST_SOURCE_PREFIX)), None)
    text = _one_line(exc) + (f" (line {line} of the test)" if line else "")
    student = getattr(exc, "student_frames", "")
    return text + (f"\nwhere the submission's code raised it:\n{student}" if student else "")
