"""Bad input gets a message, never a traceback (issue 12, item 11)."""

from __future__ import annotations

import shutil

import nbformat
import pytest

from tito_support import run_tito

pytestmark = pytest.mark.slow


def _no_traceback(result) -> None:
    assert "Traceback" not in result.output, str(result)


def test_help_has_a_short_flag_and_a_version(exported_template):
    short = run_tito(exported_template, "-h")
    assert short.returncode == 0 and "Commands" in short.stdout, str(short)
    assert run_tito(exported_template, "nbgrader", "-h").returncode == 0
    version = run_tito(exported_template, "--version")
    assert version.returncode == 0 and version.stdout.strip().startswith("tito "), str(version)


@pytest.mark.parametrize("command, words", [(("autograde",), "module to grade"), (("feedback",), "module:"),
                                            (("generate",), "module to release"), (("status",), "one module")])
def test_nbgrader_module_arguments_have_help(exported_template, command, words):
    result = run_tito(exported_template, "nbgrader", *command, "--help")
    assert result.returncode == 0 and words in result.stdout, str(result)


@pytest.mark.parametrize("workers", ["0", "-3"])
def test_workers_below_one_are_refused(exported_template, workers):
    result = run_tito(exported_template, "nbgrader", "autograde", "01_alpha", "--workers", workers)
    assert result.returncode == 2, str(result)
    assert "--workers" in result.stderr and "1" in result.stderr
    _no_traceback(result)


def test_student_edition_onto_a_file_is_refused(exported_template, tmp_path):
    target = tmp_path / "edition.txt"
    target.write_text("mine")
    result = run_tito(exported_template, "student-edition", str(target))
    assert result.returncode == 1 and "is a file; give a new folder" in result.stderr, str(result)
    assert target.read_text() == "mine"
    _no_traceback(result)


def test_student_edition_onto_an_unwritable_path_is_refused(exported_template, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    result = run_tito(exported_template, "student-edition", str(blocker / "edition"))
    assert result.returncode == 1 and "cannot write the student edition to" in result.stderr, str(result)
    _no_traceback(result)


def test_grades_export_onto_a_folder_is_refused(exported_template, tmp_path):
    result = run_tito(exported_template, "nbgrader", "export", "--out", str(tmp_path))
    assert result.returncode == 1 and "is a folder; give a file name" in result.stderr, str(result)
    _no_traceback(result)


@pytest.fixture(scope="module")
def released_template(tmp_path_factory, exported_template):
    root = tmp_path_factory.mktemp("released") / "course"
    shutil.copytree(exported_template, root)
    result = run_tito(root, "nbgrader", "generate", "--all")
    assert result.returncode == 0, str(result)
    return root


@pytest.fixture
def released(tmp_path, released_template):
    return shutil.copytree(released_template, tmp_path / "course")


def test_feedback_before_autograde_says_to_autograde_first(released):
    result = run_tito(released, "nbgrader", "feedback", "01_alpha")
    assert result.returncode == 1 and "run autograde first: tito nbgrader autograde 01_alpha" in result.stderr, str(result)
    _no_traceback(result)


def test_an_empty_collect_folder_exits_non_zero(released, tmp_path):
    empty = tmp_path / "lms"
    empty.mkdir()
    result = run_tito(released, "nbgrader", "collect", str(empty))
    assert result.returncode == 1 and "holds no submissions" in result.stderr, str(result)


def _blank_upload(released, path):
    notebook = nbformat.read(released / "grading/release/01_alpha/alpha_dev.ipynb", as_version=4)
    nbformat.write(notebook, path)


def test_student_ids_ignore_case(released, tmp_path):
    """Decision: ids are case-insensitive, as LMS logins are; ALICE.ipynb is alice's."""
    lms = tmp_path / "lms"
    lms.mkdir()
    _blank_upload(released, lms / "ALICE.ipynb")
    result = run_tito(released, "nbgrader", "collect", str(lms))
    assert result.returncode == 0, str(result)
    assert "collected alice/01_alpha" in result.stdout
    assert (released / "grading/submitted/alice/01_alpha/alpha_dev.ipynb").is_file()
    assert not (released / "grading/submitted/ALICE").exists()


def test_two_uploads_that_differ_only_in_case_are_both_refused(released, tmp_path):
    lms = tmp_path / "lms"
    lms.mkdir()
    _blank_upload(released, lms / "ALICE.ipynb")
    _blank_upload(released, lms / "alice.ipynb")
    result = run_tito(released, "nbgrader", "collect", str(lms))
    assert result.returncode == 1, str(result)
    assert "ALICE.ipynb and alice.ipynb are both uploads of student 'alice'" in " ".join(result.stdout.split())
    assert not (released / "grading/submitted").exists() or not any((released / "grading/submitted").iterdir())


def test_the_repository_help_runs_without_a_workspace(tmp_path):
    result = run_tito(tmp_path, "--help")
    assert result.returncode == 0 and "export" in result.stdout, str(result)

