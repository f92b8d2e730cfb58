"""The single writer: a GradeResult goes into nbgrader's gradebook, then into grading/autograded/.

The autograded notebook is written last, atomically, and is what marks a submission as graded:
if grading is killed in between, the submission is simply graded again on the next run.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile

import nbformat

from tito.core.course import Course, notebook_name, quiet_sqlalchemy
from tito.core.manifest import Module
from tito.core.source import read_source, source_path
from tito.sandbox.grader import GradeResult


def record(course: Course, module: Module, result: GradeResult) -> None:
    student = result.student
    submitted = course.submission_dir(student, module)
    timestamp_file = submitted / "timestamp.txt"
    timestamp = timestamp_file.read_text().strip() if timestamp_file.exists() else None
    notebook_id = notebook_name(module)[: -len(".ipynb")]
    with quiet_sqlalchemy(), course.gradebook() as gb:
        gb.update_or_create_student(student)
        if timestamp:
            gb.update_or_create_submission(module.name, student, timestamp=timestamp)
        else:
            gb.update_or_create_submission(module.name, student)
        for grade_id, score in result.scores.items():
            grade = gb.find_grade(grade_id, notebook_id, module.name, student)
            grade.auto_score = score
            grade.needs_manual_grade = grade.manual_score is not None
        gb.db.commit()
    _write_autograded(course, module, result, timestamp_file)


_parsed: dict = {}


def _instructor_cells(module: Module) -> dict:
    """grade_id -> the instructor's cell, parsed once per version of the source (parsing it costs
    about as much as the rest of recording a result; the single writer records every submission)."""
    path = source_path(module)
    info = path.stat()
    key = (str(path), info.st_mtime_ns, info.st_size)
    if key not in _parsed:
        _parsed.clear()
        _parsed[key] = {c.metadata["nbgrader"]["grade_id"]: c for c in read_source(module).nbgrader_cells()}
    return _parsed[key]


def _write_autograded(course: Course, module: Module, result: GradeResult, timestamp_file) -> None:
    """The submission as graded: locked cells are the instructor's, outputs are what grading saw."""
    submitted = nbformat.read(course.submission_dir(result.student, module) / notebook_name(module), as_version=4)
    instructor = _instructor_cells(module)
    for cell in submitted.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    by_index = {c.index: c for c in result.cells if c.index >= 0}
    counts = _execution_counts(result.cells)
    for index, cell in enumerate(submitted.cells):
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in instructor and instructor[grade_id].metadata["nbgrader"].get("locked"):
            cell.source = instructor[grade_id].source
            cell.metadata["nbgrader"] = dict(instructor[grade_id].metadata["nbgrader"])
        outcome = by_index.get(index)
        if outcome is not None and cell.cell_type == "code":
            cell.outputs, cell.execution_count = _outputs(outcome), counts.get(id(outcome))
    for outcome in result.cells:        # tests the student deleted are graded and shown at the end
        if outcome.index < 0 and outcome.grade_id in instructor:
            restored = nbformat.from_dict(instructor[outcome.grade_id])
            restored.outputs, restored.execution_count = _outputs(outcome), counts.get(id(outcome))
            submitted.cells.append(restored)
    if result.package_tests:
        submitted.cells.append(nbformat.v4.new_markdown_cell(
            f"**Package tests on the code your notebook exports** (`tests/modules/{module.name}`, a report, "
            f"not points): {result.package_tests}"))
    target = course.autograded_notebook(result.student, module)
    target.parent.mkdir(parents=True, exist_ok=True)
    if timestamp_file.exists():
        shutil.copyfile(timestamp_file, target.parent / "timestamp.txt")
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        nbformat.write(submitted, handle)
    os.replace(tmp, target)


NOT_RUN = "not run: "
EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*): ?(.*)$")
RULE = "-" * 75      # the rule above an IPython traceback, as formgrader shows nbgrader's own


def _execution_counts(outcomes) -> dict[int, int]:
    """In [n] as nbgrader's own run shows it: cells numbered in the order grading ran them
    (deleted tests run last); a cell the grading never reached keeps no number."""
    ran = [o for o in outcomes if not (o.error or "").startswith(NOT_RUN)]
    return {id(o): n for n, o in enumerate(ran, start=1)}


def _exception(error: str) -> tuple[str, str]:
    """(ename, evalue) of a grading error: the first `Name: message` line, which is the test's own
    exception even when the student's frames follow; limits and crashes get the names nbclient uses."""
    for line in error.splitlines():
        match = EXCEPTION_LINE.match(line)
        if match and match.group(1) != "Traceback":
            return match.group(1), match.group(2)
    text = error.strip()
    if text.startswith(NOT_RUN):
        return "CellNotRun", text
    if "time limit" in text:
        return "CellTimeoutError", text
    if "process ended" in text:
        return "DeadKernelError", text
    return "GradingError", text


def _outputs(outcome) -> list:
    outputs = []
    if outcome.output:
        outputs.append(nbformat.v4.new_output("stream", name="stdout", text=outcome.output))
    if outcome.error:
        ename, evalue = _exception(outcome.error)
        details = [line for line in outcome.error.strip().splitlines() if line.strip()]
        if details and details[-1] == f"{ename}: {evalue}":
            details.pop()
        traceback = [RULE, f"{ename:<42}Traceback (most recent call last)", *details, f"{ename}: {evalue}"]
        outputs.append(nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=traceback))
    return outputs
