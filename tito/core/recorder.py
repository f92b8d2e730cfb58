"""The single writer: a GradeResult goes into nbgrader's gradebook, then into grading/autograded/.

The autograded notebook is written last, atomically, and is what marks a submission as graded:
if grading is killed in between, the submission is simply graded again on the next run.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import nbformat

from tito.core.course import Course, notebook_name, quiet_sqlalchemy
from tito.core.manifest import Module
from tito.core.source import read_source
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


def _write_autograded(course: Course, module: Module, result: GradeResult, timestamp_file) -> None:
    """The submission as graded: locked cells are the instructor's, outputs are what grading saw."""
    submitted = nbformat.read(course.submission_dir(result.student, module) / notebook_name(module), as_version=4)
    instructor = {c.metadata["nbgrader"]["grade_id"]: c for c in read_source(module).nbgrader_cells()}
    for cell in submitted.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    by_index = {c.index: c for c in result.cells if c.index >= 0}
    for index, cell in enumerate(submitted.cells):
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in instructor and instructor[grade_id].metadata["nbgrader"].get("locked"):
            cell.source = instructor[grade_id].source
            cell.metadata["nbgrader"] = dict(instructor[grade_id].metadata["nbgrader"])
        outcome = by_index.get(index)
        if outcome is not None and cell.cell_type == "code":
            cell.outputs = _outputs(outcome)
    for outcome in result.cells:        # tests the student deleted are graded and shown at the end
        if outcome.index < 0 and outcome.grade_id in instructor:
            restored = nbformat.from_dict(instructor[outcome.grade_id])
            restored.outputs = _outputs(outcome)
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


def _outputs(outcome) -> list:
    outputs = []
    if outcome.output:
        outputs.append(nbformat.v4.new_output("stream", name="stdout", text=outcome.output))
    if outcome.error:
        first = outcome.error.strip().splitlines()[-1] if outcome.error.strip() else "error"
        name = first.split(":", 1)[0] if ":" in first else "Error"
        outputs.append(nbformat.v4.new_output("error", ename=name, evalue=first, traceback=outcome.error.splitlines()))
    return outputs
