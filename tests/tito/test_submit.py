"""`tito submit MODULE` and `tito nbgrader validate` on a toy student edition: the notebook to hand
in comes from the file saved last, is checked with the instructor's visible tests in a fresh
kernel, and a failing test means a non-zero exit. Also the one pairing rule: when the .py and a
paired .ipynb disagree, tito says which one it used and what to do."""

from __future__ import annotations

import os
from pathlib import Path

import jupytext
import nbformat
import pytest

import toy
from tito_support import edit, run_tito

pytestmark = pytest.mark.slow
WRONG_DOUBLE = "return x + 2"
UPLOAD = Path("submit") / "alpha_dev.ipynb"


def _solve(root: Path, double: str = toy.ALPHA_SOLUTION_DOUBLE) -> None:
    """Fill both stubs of 01_alpha, as a student would."""
    path = root / toy.ALPHA_SRC
    text = path.read_text()
    parts = text.split("# YOUR CODE HERE\n    raise NotImplementedError()")
    assert len(parts) == 3, "two stubs in 01_alpha"
    path.write_text(parts[0] + double + parts[1] + toy.ALPHA_SOLUTION_SQUARE + parts[2])


def _later(path: Path, than: Path) -> None:
    stamp = than.stat().st_mtime + 5
    os.utime(path, (stamp, stamp))


def test_submit_writes_the_upload_and_passes_a_solved_module(student):
    _solve(student)
    result = run_tito(student, "submit", "01_alpha")
    assert result.returncode == 0, str(result)
    assert f"wrote {UPLOAD} from {toy.ALPHA_SRC}" in result.stdout
    assert "all visible tests pass" in result.stdout and str(student / UPLOAD) in result.stdout.replace("\n", "")
    upload = nbformat.read(student / UPLOAD, as_version=4)
    nbformat.validate(upload)
    assert any(toy.ALPHA_SOLUTION_DOUBLE in c.source for c in upload.cells)


def test_submit_exits_non_zero_and_shows_the_failing_test(student):
    _solve(student, WRONG_DOUBLE)
    result = run_tito(student, "submit", "01_alpha")
    assert result.returncode == 1, str(result)
    assert "test_unit_double" in result.stdout and "AssertionError" in result.stdout, str(result)
    assert "1 test cell(s) fail in submit/alpha_dev.ipynb" in result.stderr
    assert (student / UPLOAD).is_file()     # written anyway: the student sees what would be graded


def test_submit_checks_with_the_released_tests_not_an_edited_copy(student):
    _solve(student, WRONG_DOUBLE)
    edit(student / toy.ALPHA_SRC, "    assert double(3) == 6\n", "    pass\n")
    result = run_tito(student, "submit", "01_alpha")
    assert result.returncode == 1, str(result)
    assert "test cell test-double differed from the release" in result.stdout, str(result)


def test_submit_takes_the_paired_notebook_when_it_was_saved_last_and_warns(student):
    py = student / toy.ALPHA_SRC
    _solve(student)
    notebook = py.with_suffix(".ipynb")
    jupytext.write(jupytext.read(py), notebook, fmt="ipynb")
    edit(py, toy.ALPHA_SOLUTION_DOUBLE, WRONG_DOUBLE)     # the .py is older and wrong; the notebook is right
    _later(notebook, than=py)
    result = run_tito(student, "submit", "01_alpha")
    assert result.returncode == 0, str(result)
    assert f"from {notebook.relative_to(student)}" in result.stdout
    assert "alpha_dev.py and alpha_dev.ipynb differ" in result.stderr and "tito uses alpha_dev.ipynb" in result.stderr
    assert "jupytext --to py:percent modules/01_alpha/alpha_dev.ipynb" in result.stderr.replace("\n", "")


def test_files_that_agree_raise_no_warning(student):
    _solve(student)
    py = student / toy.ALPHA_SRC
    jupytext.write(jupytext.read(py), py.with_suffix(".ipynb"), fmt="ipynb")
    result = run_tito(student, "export", "01_alpha")
    assert result.returncode == 0, str(result)
    assert "differ" not in result.stderr, str(result)


def test_export_and_test_warn_when_the_two_files_disagree(student):
    _solve(student)
    py = student / toy.ALPHA_SRC
    jupytext.write(jupytext.read(py), py.with_suffix(".ipynb"), fmt="ipynb")
    edit(py, toy.ALPHA_SOLUTION_DOUBLE, WRONG_DOUBLE)
    _later(py, than=py.with_suffix(".ipynb"))
    for command in ("export", "test"):
        result = run_tito(student, command, "01_alpha")
        assert "alpha_dev.py and alpha_dev.ipynb differ (cells" in result.stderr, str(result)
        assert "tito uses alpha_dev.py" in result.stderr and "delete alpha_dev.ipynb" in result.stderr.replace("\n", "")


def test_validate_accepts_the_py_source(student):
    _solve(student)
    result = run_tito(student, "nbgrader", "validate", toy.ALPHA_SRC)
    assert result.returncode == 0, str(result)
    assert "alpha_dev.py: all tests pass" in result.stdout


def test_validate_of_a_failing_py_exits_non_zero(student):
    _solve(student, WRONG_DOUBLE)
    result = run_tito(student, "nbgrader", "validate", toy.ALPHA_SRC)
    assert result.returncode == 1, str(result)
    assert "fix them before you submit" in result.stderr
