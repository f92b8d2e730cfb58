"""Feedback is hostile text: what a submission produced is escaped, hidden tests show only that
they failed (never their source, their inputs or what they printed), visible failures show their
assertion and the student's own frames, no grader path appears, and one odd notebook never stops
the feedback of the others.
"""

from __future__ import annotations

import copy
import re

import nbformat
import pytest

from grade_jobs import grade_cells, graded_cell
from grading_course import released_notebooks, tito
from submissions import _index

MIXED = graded_cell("test-mixed", "print('visible says', f())\nassert f() >= 1, 'f gave ' + str(f())\n"
                                  "### BEGIN HIDDEN TESTS\nprint('hidden says', f(10))\nassert f(10) == 20\n### END HIDDEN TESTS", 2)


def test_a_hidden_failure_shows_only_that_it_failed_and_drops_its_output(tmp_path):
    result = grade_cells(tmp_path, "s", ["def f(v=1):\n    return v", MIXED])
    cell = result.cells[-1]
    assert cell.error == "AssertionError: a hidden test failed (hidden tests do not show their details)"
    assert "visible says 1" in cell.output and "hidden says" not in cell.output


def test_a_visible_failure_in_a_cell_with_hidden_tests_shows_its_assertion(tmp_path):
    result = grade_cells(tmp_path, "s", ["def f(v=1):\n    return 0", MIXED])
    assert result.cells[-1].error.startswith("AssertionError: f gave 0 (line 2 of the test)")


def test_a_visible_failure_shows_the_students_own_frames_and_no_grader_path(tmp_path):
    code = "def helper(v):\n    raise ValueError(f'cannot take {v}')\n\ndef f(v=1):\n    return helper(v)"
    result = grade_cells(tmp_path, "s", [code, "f(3)", MIXED])
    student_cell, test_cell = result.cells[1], result.cells[-1]
    for error in (student_cell.error, test_cell.error):
        assert "In [cell 1], line 5, in f" in error and "raise ValueError(f'cannot take {v}')" in error
        assert "tito/sandbox" not in error and "tito-sandbox-" not in error and "child.py" not in error
    assert student_cell.error.startswith("Traceback (your code):\n  In [cell 2], line 1, in <module>")
    assert test_cell.error.startswith("ValueError: cannot take 1 (line 1 of the test)")


def test_cells_after_hidden_tests_cannot_repeat_their_inputs(tmp_path):
    spy = "SEEN = []\ndef f(v=1):\n    SEEN.append(v)\n    return v"
    result = grade_cells(tmp_path, "spy", [spy, MIXED, "print('SPY', SEEN)", "raise ValueError(str(SEEN))"])
    printing, raising = result.cells[2], result.cells[3]
    assert "10" not in printing.output and "not shown" in printing.output
    assert "10" not in raising.error and raising.error.startswith("ValueError at line 1 of this cell")


# -- through `tito nbgrader autograde` and `feedback`, on module 02 ---------------------------

SCRIPT = "<script>alert('x')</script>"


def _solution_with(solution, *cells, after="test-relu"):
    notebook = copy.deepcopy(solution)
    position = _index(notebook, after) + 1
    for cell in reversed(cells):
        notebook.cells.insert(position, cell)
    return notebook


@pytest.fixture(scope="module")
def feedback(tmp_path_factory, released_course):
    import shutil

    root = tmp_path_factory.mktemp("feedback") / "course"
    shutil.copytree(released_course, root)
    _, solution = released_notebooks(root)
    code, markdown = nbformat.v4.new_code_cell, nbformat.v4.new_markdown_cell
    relu = solution.cells[_index(solution, "relu")]
    raising = copy.deepcopy(solution)
    raising.cells[_index(raising, "relu")].source = relu.source.replace(
        "### BEGIN SOLUTION", f"### BEGIN SOLUTION\n        raise ValueError({SCRIPT!r})")
    forged = copy.deepcopy(solution)
    forged.cells.insert(2, code("x = 1", metadata={"nbgrader": {"grade": True, "grade_id": "test-forged", "locked": True,
                                                                "points": 99, "schema_version": 3, "solution": False}}))
    uploads = {
        "honest": solution,
        "xss": _solution_with(solution, markdown(f"{SCRIPT}<img src=x onerror=alert(1)>[go](javascript:alert(2))"),
                              code(f"raise ValueError({SCRIPT!r})")),
        "raising": raising,
        "markers": _solution_with(solution, code("# ### BEGIN HIDDEN TESTS\nprint('### BEGIN HIDDEN TESTS')")),
        "forged": forged,
    }
    folder = root.parent / "uploads"
    folder.mkdir()
    for student, notebook in uploads.items():
        nbformat.write(notebook, folder / f"{student}.ipynb")
    tito(root, "nbgrader", "collect", str(folder))
    tito(root, "nbgrader", "autograde", "02", "--workers", "2")
    ran = tito(root, "nbgrader", "feedback", "02", check=False)
    pages = {s: next((root / "grading/feedback" / s / "02_activations").glob("*.html"), None) for s in uploads}
    return ran, {s: p.read_text() if p else None for s, p in pages.items()}


def test_odd_notebooks_never_stop_the_feedback_of_the_others(feedback):
    ran, pages = feedback
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert all(pages.values()), [s for s, p in pages.items() if not p]
    assert all("BEGIN HIDDEN TESTS" not in page for page in pages.values())


def test_everything_the_submission_wrote_is_escaped(feedback):
    page = feedback[1]["xss"] + feedback[1]["raising"]
    assert "<script>alert" not in page and "<img src=x" not in page and 'href="javascript:' not in page
    assert "&lt;script&gt;alert" in page


def test_visible_failure_reason_reaches_the_feedback_without_grader_paths(feedback):
    page = feedback[1]["raising"]
    assert re.search(r"ValueError: .*\(line \d+ of the test\)", page) and "Traceback (your code)" in page
    assert "tito/sandbox" not in page and "tito-sandbox-" not in page
