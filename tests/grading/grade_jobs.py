"""Grading one made-up submission against made-up test cells, with the real split grader.

For tests of the grader itself: each job runs the student's cells in a real sandbox and the test
cells in the real trusted process, exactly as `tito nbgrader autograde` does, without a course.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from tito.sandbox.grader import GradeJob, GradeResult, grade

LIMITS = {"cell_timeout": 5, "submission_timeout": 40, "memory_mb": 2048, "max_processes": 64}


def graded_cell(grade_id: str, source: str, points: float = 1.0) -> dict:
    return {"grade_id": grade_id, "source": source, "points": points}


def grade_cells(folder: Path, student: str, cells: list[str | dict], limits: dict | None = None,
                trusted_imports: str = "import math\nimport numpy as np") -> GradeResult:
    """cells: student code (str) and graded test cells (graded_cell(...)), in notebook order."""
    folder.mkdir(parents=True, exist_ok=True)
    package = folder / "package" / "tinytorch"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("")
    notebook = nbformat.v4.new_notebook()
    tests = []
    for cell in cells:
        if isinstance(cell, str):
            notebook.cells.append(nbformat.v4.new_code_cell(cell))
        else:
            tests.append(cell)
            notebook.cells.append(nbformat.v4.new_code_cell(cell["source"], metadata={"nbgrader": {
                "grade": True, "grade_id": cell["grade_id"], "locked": True, "points": cell["points"],
                "schema_version": 3, "solution": False, "task": False}}))
    path = folder / f"{student}.ipynb"
    nbformat.write(notebook, path)
    job = GradeJob(module="00_made_up", student=student, submission=str(path), tests=tests,
                   trusted_imports=trusted_imports, package=str(package), workspace=str(folder), hide=[],
                   limits=dict(limits or LIMITS), slot=3)
    return grade(job)
