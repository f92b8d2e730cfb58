"""Validating a notebook as the grader would (nbgrader's Validator, in a kernel of its own), and
building the notebook a student hands in.

The notebook to hand in is the student's file (the `.py`, or the paired `.ipynb` saved last) as
an `.ipynb`, with every graded test cell as the instructor released it: a student who edited or
deleted a read-only test cell sees the real test's verdict before submitting, as the grader will
restore those cells anyway.
"""

from __future__ import annotations

import copy
import html
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tito.core.errors import TitoError
from tito.core.manifest import Module
from tito.core.workspace import Workspace


@dataclass
class Validation:
    failed: list[dict] = field(default_factory=list)     # nbgrader's cells: source, error
    changed: list[dict] = field(default_factory=list)    # edited read-only cells


def _graded_test(cell) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return bool(meta.get("grade")) and not meta.get("solution")


def _grade_id(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def validate(ws: Workspace, notebook: Path) -> Validation:
    """nbgrader's Validator on an .ipynb, or on a percent .py (converted to an .ipynb first)."""
    from nbgrader.validator import Validator

    from tito.core.course import Course, prepare_grading_environment

    prepare_grading_environment(ws)
    config = Course.of(ws).config()
    with tempfile.TemporaryDirectory(prefix="tito-validate-") as scratch:
        target = notebook.resolve()
        if notebook.suffix == ".py":
            import jupytext

            try:
                converted = jupytext.read(target, fmt="py:percent")
            except Exception as exc:
                raise TitoError(f"{notebook}: not a percent-format notebook source ({exc})")
            target = Path(scratch) / notebook.with_suffix(".ipynb").name
            jupytext.write(converted, target, fmt="ipynb")
        try:
            results = Validator(config=config).validate(str(target))
        except Exception as exc:  # invalid JSON, missing kernel: say so instead of a traceback
            last = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise TitoError(f"{notebook}: could not validate ({last}); a notebook is an .ipynb file or a "
                            "percent-format .py module source")
    failed = [dict(c, error=html.unescape(re.sub(r"<[^>]+>", "", c.get("error", ""))))  # nbgrader's HTML colours
              for c in results.get("failed", []) + results.get("type_changed", [])]
    return Validation(failed, results.get("changed", []))


def released_notebook(ws: Workspace, module: Module):
    """The instructor's release of a module: visible tests, stubbed solutions."""
    import nbformat

    from tito.core.course import Course
    from tito.core.source import read_source
    from tito.core.stubs import strip_solutions

    release = Course.of(ws).release_notebook(module)
    if release.exists():
        return nbformat.read(release, as_version=4)
    if ws.is_student_edition:
        raise TitoError(f"{release.relative_to(ws.root)} is missing: it holds the instructor's tests that "
                        "tito submit checks against; restore it from your student edition (or ask your instructor)")
    # The course repository before `tito nbgrader generate`: the release is the stripped source.
    return strip_solutions(read_source(module, module.source).notebook)


def submission_notebook(ws: Workspace, module: Module) -> tuple[object, Path, list[str]]:
    """(notebook to hand in, the file it was read from, notes on test cells put back as released)."""
    from tito.core.source import read_source

    source = read_source(module)
    release = released_notebook(ws, module)
    notebook = copy.deepcopy(source.notebook)
    released_tests = {_grade_id(c): c for c in release.cells if _graded_test(c)}
    notes = []
    positions = {_grade_id(c): i for i, c in enumerate(notebook.cells) if _grade_id(c)}
    for grade_id, test in released_tests.items():
        if grade_id in positions:
            cell = notebook.cells[positions[grade_id]]
            if cell.source != test.source or cell.metadata.get("nbgrader") != test.metadata.get("nbgrader"):
                notes.append(f"test cell {grade_id} differed from the release; it is checked (and graded) as released")
                cell.source, cell.metadata["nbgrader"] = test.source, copy.deepcopy(test.metadata["nbgrader"])
            continue
        # A deleted test cell goes back after the nearest earlier released cell the student still has.
        order = [_grade_id(c) for c in release.cells]
        earlier = [g for g in order[: order.index(grade_id)] if g in positions]
        at = positions[earlier[-1]] + 1 if earlier else len(notebook.cells)
        notebook.cells.insert(at, copy.deepcopy(test))
        positions = {_grade_id(c): i for i, c in enumerate(notebook.cells) if _grade_id(c)}
        notes.append(f"test cell {grade_id} was missing; it is back, as released")
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.setdefault("outputs", [])
            cell.setdefault("execution_count", None)
    return notebook, source.path, notes
