"""`tito nbgrader ...` on the toy course with real nbgrader and its SQLite gradebook.

One session-scoped course is exported, released, collected and autograded once; tests read it, and
tests that change it work on a copy (the gradebook and every path in it live under grading/).
"""

from __future__ import annotations

import copy
import csv
import html
import re
import shutil
import warnings
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

import toy
from tito_support import Result, copy_tree, run_tito

pytestmark = pytest.mark.slow

ALPHA, BETA = "01_alpha", "02_beta"
ALPHA_NB, BETA_NB = "alpha_dev.ipynb", "beta_dev.ipynb"
# student -> expected 01_alpha score (the zip student also hands in 02_beta, worth 4)
ALPHA_STUDENTS = {"full": 5.0, "blank": 0.0, "tamper": 0.0, "dup": 5.0, "zara": 5.0, "wrong": 3.0}


@dataclass
class GradedCourse:
    root: Path
    collect: Result
    students_after_collect: list[str]    # the gradebook's students before anything was autograded

    def release(self, module: str, name: str) -> Path:
        return self.root / "grading" / "release" / module / name

    def source(self, module: str, name: str) -> Path:
        return self.root / "grading" / "source" / module / name


@contextmanager
def gradebook(root: Path):
    """nbgrader's own Gradebook on the course's SQLite file: the oracle for every score."""
    from nbgrader.api import Gradebook

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # SQLAlchemy deprecation noise from nbgrader
        with Gradebook(f"sqlite:///{root / 'grading' / 'gradebook.db'}", course_id="tinytorch") as gb:
            yield gb


def grade_of(root: Path, cell: str, student: str) -> float:
    with gradebook(root) as gb:
        return float(gb.find_grade(cell, "alpha_dev", ALPHA, student).score)


def submission_score(root: Path, module: str, student: str) -> float:
    with gradebook(root) as gb:
        return float(gb.find_submission(module, student).score)


def cell_with_id(notebook, grade_id: str):
    return next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def write_uploads(folder: Path, course_root: Path) -> None:
    """What an LMS hands over: one file per student, named by student id."""
    folder.mkdir()
    grading = course_root / "grading"
    solution = nbformat.read(grading / "source" / ALPHA / ALPHA_NB, as_version=4)
    release = nbformat.read(grading / "release" / ALPHA / ALPHA_NB, as_version=4)

    nbformat.write(solution, folder / "full.ipynb")
    nbformat.write(release, folder / "blank.ipynb")

    wrong = copy.deepcopy(solution)                     # a plausible mistake: the double test asserts
    for cell in wrong.cells:
        cell.source = cell.source.replace(toy.ALPHA_SOLUTION_DOUBLE, "return x * 3")
    nbformat.write(wrong, folder / "wrong.ipynb")

    tampered = copy.deepcopy(release)                   # the locked test edited so it always passes
    cell_with_id(tampered, "test-double").source = "assert True"
    nbformat.write(tampered, folder / "tamper.ipynb")

    duplicated = copy.deepcopy(solution)                # a graded cell pasted a second time
    pasted = copy.deepcopy(cell_with_id(duplicated, "test-double"))
    pasted.id = "pasted-copy"
    duplicated.cells.append(pasted)
    nbformat.write(duplicated, folder / "dup.ipynb")

    with zipfile.ZipFile(folder / "zara.zip", "w") as archive:
        archive.write(grading / "source" / ALPHA / ALPHA_NB, f"zara/{ALPHA_NB}")
        archive.write(grading / "source" / BETA / BETA_NB, f"zara/{BETA_NB}")

    (folder / "broken.ipynb").write_text("{ this is not a notebook")
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('hello')")]),
                   folder / "stranger.ipynb")


@pytest.fixture(scope="session")
def graded(tmp_path_factory, exported_template) -> GradedCourse:
    base = tmp_path_factory.mktemp("graded")
    root = copy_tree(exported_template, base / "course")
    generated = run_tito(root, "nbgrader", "generate", "--all")
    assert generated.returncode == 0, str(generated)
    uploads = base / "lms"
    write_uploads(uploads, root)
    collected = run_tito(root, "nbgrader", "collect", str(uploads))
    assert collected.returncode == 0, str(collected)
    with gradebook(root) as gb:
        students = sorted(s.id for s in gb.students)
    for module in (ALPHA, BETA):
        result = run_tito(root, "nbgrader", "autograde", module)
        assert result.returncode == 0, str(result)
    return GradedCourse(root, collected, students)


@pytest.fixture
def graded_copy(tmp_path, graded) -> Path:
    return copy_tree(graded.root, tmp_path / "course")


# -- generate -----------------------------------------------------------------------------------

@pytest.mark.parametrize("module, name", [(ALPHA, ALPHA_NB), (BETA, BETA_NB)])
def test_generate_releases_notebooks_without_solutions_or_hidden_tests(graded, module, name):
    release = graded.release(module, name)
    text = "\n".join(c.source for c in nbformat.read(release, as_version=4).cells)
    assert "raise NotImplementedError()" in text
    for secret in (toy.ALPHA_SOLUTION_DOUBLE, toy.ALPHA_SOLUTION_SQUARE, toy.BETA_SOLUTION,
                   toy.ALPHA_HIDDEN_LINE, toy.BETA_HIDDEN_LINE, "BEGIN SOLUTION", "HIDDEN TESTS"):
        assert secret not in text



def test_generate_releases_into_the_course_exchange_so_formgrader_lists_it_as_released(graded):
    """formgrader reads the exchange through nbgrader's own API: no 'exchange missing', no 'draft'."""
    from nbgrader.apps import NbGraderAPI
    from traitlets.config import Config

    config = Config()
    config.CourseDirectory.root = str(graded.root / "grading")
    config.CourseDirectory.course_id = "tinytorch"
    config.Exchange.root = str(graded.root / "grading" / "exchange")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        api = NbGraderAPI(config=config)
        assert not api.exchange_missing
        assert {api.get_assignment(m)["status"] for m in (ALPHA, BETA)} == {"released"}
    outbound = graded.root / "grading" / "exchange" / "tinytorch" / "outbound" / ALPHA / ALPHA_NB
    assert outbound.read_bytes() == graded.release(ALPHA, ALPHA_NB).read_bytes()

# -- collect ------------------------------------------------------------------------------------

def test_collect_places_a_notebook_named_by_student(graded):
    placed = graded.root / "grading" / "submitted" / "full" / ALPHA / ALPHA_NB
    expected = nbformat.read(graded.source(ALPHA, ALPHA_NB), as_version=4)
    assert [c.source for c in nbformat.read(placed, as_version=4).cells] == [c.source for c in expected.cells]
    assert "collected full/01_alpha" in graded.collect.stdout


def test_collect_places_every_notebook_of_a_zip(graded):
    submitted = graded.root / "grading" / "submitted" / "zara"
    assert sorted(p.relative_to(submitted).as_posix() for p in submitted.rglob("*.ipynb")) == \
        [f"{ALPHA}/{ALPHA_NB}", f"{BETA}/{BETA_NB}"]


def test_collect_adds_the_students_to_the_gradebook(graded):
    assert graded.students_after_collect == sorted(ALPHA_STUDENTS)


def test_collect_reports_invalid_json_and_goes_on(graded):
    assert "not collected broken.ipynb: not a valid notebook" in graded.collect.stdout, str(graded.collect)
    assert not (graded.root / "grading" / "submitted" / "broken").exists()
    assert "7 collected, 2 not collected" in graded.collect.stdout


def test_collect_reports_a_notebook_that_matches_no_module(graded):
    assert "not collected stranger.ipynb: matches no module" in graded.collect.stdout, str(graded.collect)
    assert not (graded.root / "grading" / "submitted" / "stranger").exists()


def test_second_collect_without_force_keeps_the_first(graded, graded_copy, tmp_path):
    placed = graded_copy / "grading" / "submitted" / "full" / ALPHA / ALPHA_NB
    first = placed.read_bytes()
    again = tmp_path / "again"
    again.mkdir()
    shutil.copy(graded.release(ALPHA, ALPHA_NB), again / "full.ipynb")     # a different notebook
    shutil.copy(graded.source(ALPHA, ALPHA_NB), again / "newbie.ipynb")

    result = run_tito(graded_copy, "nbgrader", "collect", str(again))

    assert result.returncode == 0, str(result)
    assert "full.ipynb: full/01_alpha already collected; use --force" in result.stdout, str(result)
    assert placed.read_bytes() == first
    assert (graded_copy / "grading" / "submitted" / "newbie" / ALPHA / ALPHA_NB).exists()


def test_a_pasted_graded_cell_is_demoted_with_a_note_and_the_rest_graded(graded):
    assert "collected dup/01_alpha\n  note: cell" in graded.collect.stdout, str(graded.collect)
    assert "repeated grade_id 'test-double'; the copy was graded as a plain cell" in graded.collect.stdout
    assert submission_score(graded.root, ALPHA, "dup") == 5.0


# -- autograde ----------------------------------------------------------------------------------

def test_autograde_gives_the_solution_full_marks(graded):
    assert grade_of(graded.root, "test-double", "full") == 2.0
    assert grade_of(graded.root, "test-square-plus-one", "full") == 3.0
    assert submission_score(graded.root, BETA, "zara") == 4.0


def test_autograde_gives_the_blank_release_zero(graded):
    assert submission_score(graded.root, ALPHA, "blank") == 0.0


def test_an_edited_locked_test_is_restored_and_earns_nothing(graded):
    assert grade_of(graded.root, "test-double", "tamper") == 0.0
    autograded = nbformat.read(graded.root / "grading" / "autograded" / "tamper" / ALPHA / ALPHA_NB, as_version=4)
    original = cell_with_id(nbformat.read(graded.release(ALPHA, ALPHA_NB), as_version=4), "test-double")
    assert cell_with_id(autograded, "test-double").source == original.source



def test_autograded_cells_carry_execution_counts_and_named_exceptions_as_under_nbgrader(graded):
    """Formgrader shows In [n] and the traceback: cells are numbered in the order grading ran them,
    and a failed test names its exception (AssertionError, not 'Error')."""
    autograded = nbformat.read(graded.root / "grading" / "autograded" / "blank" / ALPHA / ALPHA_NB, as_version=4)
    code = [c for c in autograded.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    errors = [o for o in cell_with_id(autograded, "test-double").outputs if o.output_type == "error"]
    assert [e.ename for e in errors] == ["NotImplementedError"], errors
    assert errors[0].traceback[1].startswith("NotImplementedError") and "Traceback" in errors[0].traceback[1]
    assert errors[0].traceback[-1] == f"NotImplementedError: {errors[0].evalue}"


def test_a_failed_assertion_is_named_assertion_error_in_the_autograded_notebook(graded):
    autograded = nbformat.read(graded.root / "grading" / "autograded" / "wrong" / ALPHA / ALPHA_NB, as_version=4)
    errors = [o for o in cell_with_id(autograded, "test-double").outputs if o.output_type == "error"]
    assert [e.ename for e in errors] == ["AssertionError"], errors
    assert any("line 2 of the test" in line for line in errors[0].traceback), errors[0].traceback
    assert not [o for o in cell_with_id(autograded, "test-square-plus-one").outputs if o.output_type == "error"]

def test_autograde_without_force_keeps_the_recorded_grade(graded, graded_copy):
    submitted = graded_copy / "grading" / "submitted" / "full" / ALPHA / ALPHA_NB
    shutil.copy(graded.release(ALPHA, ALPHA_NB), submitted)           # the file changes after grading

    result = run_tito(graded_copy, "nbgrader", "autograde", ALPHA)

    assert result.returncode == 0, str(result)
    assert "already graded, kept as recorded" in result.stdout, str(result)
    assert submission_score(graded_copy, ALPHA, "full") == 5.0


def test_autograde_of_an_unknown_student_is_an_error(graded):
    result = run_tito(graded.root, "nbgrader", "autograde", ALPHA, "--student", "nobody")
    assert result.returncode == 1, str(result)
    assert "unknown student 'nobody' for 01_alpha" in result.stderr, str(result)


# -- feedback, grades, status, validate ---------------------------------------------------------

def test_feedback_never_shows_hidden_tests(graded_copy):
    result = run_tito(graded_copy, "nbgrader", "feedback", ALPHA)
    assert result.returncode == 0, str(result)
    pages = sorted((graded_copy / "grading" / "feedback").glob(f"*/{ALPHA}/*.html"))
    assert sorted(p.parts[-3] for p in pages) == sorted(ALPHA_STUDENTS)
    hidden = toy.ALPHA_SOURCE.split("### BEGIN HIDDEN TESTS")[1].split("### END HIDDEN TESTS")[0]
    hidden_lines = [line.strip() for line in hidden.splitlines() if line.strip()]
    for page in pages:
        text = html.unescape(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8")))
        assert "def test_unit_double" in text        # the visible tests are shown
        leaked = [line for line in hidden_lines if line in text]
        assert not leaked, f"{page} shows hidden test lines {leaked}"


def test_grade_export_writes_one_row_per_student(graded, tmp_path):
    out = tmp_path / "grades.csv"
    result = run_tito(graded.root, "nbgrader", "export", "--out", str(out))
    assert result.returncode == 0, str(result)
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["student", ALPHA, BETA, "total"]
    by_student = {row[0]: [float(v) for v in row[1:]] for row in rows[1:] if row[0] != "(max)"}
    expected = {s: [score, 4.0 if s == "zara" else 0.0, score + (4.0 if s == "zara" else 0.0)]
                for s, score in ALPHA_STUDENTS.items()}
    assert by_student == expected


def test_status_shows_counts_per_module(graded):
    result = run_tito(graded.root, "nbgrader", "status")
    assert result.returncode == 0, str(result)
    rows = {line.split()[1]: [cell.strip() for cell in line.strip("│ ").split("│")]
            for line in result.stdout.splitlines() if line.startswith("│")}
    assert rows[ALPHA] == [ALPHA, "yes", "6", "6", "0", "3.0 / 5"]
    assert rows[BETA] == [BETA, "yes", "1", "1", "0", "4.0 / 4"]


def test_validate_fails_on_the_blank_release(graded):
    result = run_tito(graded.root, "nbgrader", "validate", str(graded.release(ALPHA, ALPHA_NB)))
    assert result.returncode == 1, str(result)
    assert "cell(s) fail in alpha_dev.ipynb" in result.stderr, str(result)


def test_validate_passes_on_the_solution(graded):
    result = run_tito(graded.root, "nbgrader", "validate", str(graded.source(ALPHA, ALPHA_NB)))
    assert result.returncode == 0, str(result)
    assert "alpha_dev.ipynb: all tests pass" in result.stdout


def test_a_submission_replaced_with_force_is_graded_again(graded, graded_copy, tmp_path):
    resubmit = tmp_path / "resubmit"
    resubmit.mkdir()
    shutil.copy(graded.release(ALPHA, ALPHA_NB), resubmit / "full.ipynb")   # "full" now hands in the blank

    collected = run_tito(graded_copy, "nbgrader", "collect", str(resubmit), "--force")
    regraded = run_tito(graded_copy, "nbgrader", "autograde", ALPHA, "--student", "full")

    assert collected.returncode == 0 and regraded.returncode == 0, str(regraded)
    assert submission_score(graded_copy, ALPHA, "full") == 0.0
