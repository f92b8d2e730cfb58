"""Running a module for real: its source in a fresh Python process, then its package tests with pytest.

The source is the student's own file, so its inline tests exercise their code; the package tests
import the exported `tinytorch` of the same workspace (PYTHONPATH puts it first).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tito.core.cell_runner import describe_timeout
from tito.core.manifest import Module
from tito.core.source import source_path
from tito.core.workspace import Workspace

AUTOGRADING_ENV = {"TITO_AUTOGRADING": "1"}   # the documented switch that shrinks analysis cells


@dataclass
class StepResult:
    name: str
    ok: bool
    summary: str
    output: str = ""


def run_source(ws: Workspace, module: Module) -> StepResult:
    """Execute the module source top to bottom in a fresh process, each cell within cell_timeout;
    report the first failing test, or the cell and line that ran out of time."""
    path = source_path(module)
    limits = ws.grading_limits(module.grading)
    with tempfile.TemporaryDirectory(prefix=f"tito-run-{module.name}-") as scratch:
        script = path
        if path.suffix == ".ipynb":
            import jupytext

            script = Path(scratch) / f"{module.slug}_dev.py"
            jupytext.write(jupytext.read(path), script, fmt="py:percent")
        command = [sys.executable, "-m", "tito.core.cell_runner", str(script), str(limits.cell_timeout)]
        try:
            proc = subprocess.run(command, cwd=scratch, capture_output=True, text=True,
                                  timeout=limits.submission_timeout, env=ws.subprocess_env(**AUTOGRADING_ENV))
        except subprocess.TimeoutExpired:
            return StepResult("source", False, f"{path.name} did not finish within {limits.submission_timeout}s "
                              "(settings.ini [grading] submission_timeout); look for an endless loop")
        output = proc.stdout + proc.stderr
        if proc.returncode == 0:
            return StepResult("source", True, f"{path.name} ran, inline tests passed", output)
        timed_out = describe_timeout(proc.stderr, script, limits.cell_timeout, path.name)
    return StepResult("source", False, timed_out or _describe_failure(proc.stderr, path), output)


def _describe_failure(stderr: str, path: Path) -> str:
    """'test_unit_x failed at tensor_dev.py:120: AssertionError: ...' from a traceback."""
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\w+)', stderr)
    tests = [f for f in frames if f[2].startswith("test_")]
    where = tests[-1] if tests else (frames[-1] if frames else None)
    lines = [l for l in stderr.strip().splitlines() if l.strip()]
    error = lines[-1] if lines else "no error message"
    if where:
        return f"{where[2]} failed at {Path(where[0]).name}:{where[1]}: {error}"
    return f"{path.name} failed: {error}"


def run_package_tests(ws: Workspace, module: Module) -> StepResult:
    folder = ws.package_tests_dir(module.name)
    if not folder.is_dir():
        return StepResult("package tests", False, f"no package tests in {folder.relative_to(ws.root)}; "
                          "every module needs them (see modules/AUTHORING.md)")
    proc = subprocess.run([sys.executable, "-m", "pytest", str(folder), "-rf", "--no-header",
                           "-p", "no:cacheprovider"], cwd=ws.root, capture_output=True, text=True,
                          env=ws.subprocess_env(**AUTOGRADING_ENV))
    output = proc.stdout + proc.stderr
    totals = [l for l in proc.stdout.splitlines() if re.search(r"\d+ (passed|failed|error)", l)]
    counts = totals[-1].strip("= ") if totals else "no test summary"
    if proc.returncode == 0:
        return StepResult("package tests", True, counts, output)
    if proc.returncode == 5:
        return StepResult("package tests", False, f"no tests collected in {folder.relative_to(ws.root)}", output)
    # "FAILED tests/x.py::test_y[case] - message" -> one entry per test function, with its case count.
    node_ids = [re.sub(r"\[.*$", "", l.split(" ", 1)[1].split(" - ", 1)[0]) for l in proc.stdout.splitlines()
                if l.startswith("FAILED ")]
    names = [Path(n.split("::")[0]).name + "::" + n.split("::")[-1] for n in node_ids]
    distinct = list(dict.fromkeys(names))
    shown = [f"{n} ({names.count(n)} cases)" if names.count(n) > 1 else n for n in distinct[:4]]
    detail = f"{counts}: " + ", ".join(shown) + (" ..." if len(distinct) > 4 else "") if names else counts
    return StepResult("package tests", False, detail, output)
