"""The student edition offers only what works for students: its `tito --help`, Makefile and README;
instructor commands refuse clearly there and stay available in the course repository."""

from __future__ import annotations

import re
import subprocess

import pytest

from tito_support import REPO, run_tito

pytestmark = pytest.mark.slow
INSTRUCTOR_COMMANDS = ("check", "demo", "student-edition", "mutate")
STUDENT_COMMANDS = ("export", "test", "submit", "module", "system", "nbgrader")


def _listed(help_text: str) -> set[str]:
    commands = help_text.split("Commands", 1)[-1]
    return set(re.findall(r"^│ ([a-z][\w-]*)\s", commands, re.M))


def test_student_help_lists_only_student_commands(toy_edition_template):
    result = run_tito(toy_edition_template, "--help")
    assert result.returncode == 0, str(result)
    listed = _listed(result.stdout)
    assert set(STUDENT_COMMANDS) <= listed, result.stdout
    assert not listed & set(INSTRUCTOR_COMMANDS), result.stdout


def test_course_help_still_lists_the_instructor_commands():
    listed = _listed(run_tito(REPO, "--help").stdout)
    assert {"check", "demo", "student-edition", "submit"} <= listed


@pytest.mark.parametrize("command", [("check",), ("demo", "-m", "01_alpha"), ("nbgrader", "generate", "--all"),
                                     ("nbgrader", "autograde", "01_alpha"), ("student-edition", "/tmp/x")])
def test_instructor_commands_refuse_in_the_student_edition(toy_edition_template, command):
    result = run_tito(toy_edition_template, *command)
    assert result.returncode == 1, str(result)
    assert "is an instructor command and is not part of the student edition" in result.stderr, str(result)
    assert "Traceback" not in result.output


def test_students_nbgrader_help_offers_validate_only(toy_edition_template):
    listed = _listed(run_tito(toy_edition_template, "nbgrader", "--help").stdout)
    assert listed == {"validate"}


def test_student_makefile_has_only_student_targets(toy_edition_template):
    makefile = (toy_edition_template / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.M))
    assert {"install", "lab", "test", "submit", "doctor"} <= targets
    assert not targets & {"bench", "lint", "check", "demo", "export"}
    for target in ("bench", "lint", "check"):
        plan = subprocess.run(["make", "-n", target], cwd=toy_edition_template, capture_output=True, text=True)
        assert plan.returncode != 0 and "No rule to make target" in plan.stderr


def test_student_readme_names_student_commands_only(toy_edition_template):
    readme = (toy_edition_template / "README.md").read_text()
    assert "tito submit" in readme and "double-click" in readme
    for word in ("make bench", "make lint", "tito check", "tito demo", "nbgrader generate", "student-edition"):
        assert word not in readme, word


def test_the_edition_is_marked_and_carries_the_release(toy_edition_template):
    settings = (toy_edition_template / "settings.ini").read_text()
    assert re.search(r"^\[course\]\n(#.*\n)?edition = student$", settings, re.M)
    assert (toy_edition_template / "grading/release/01_alpha/alpha_dev.ipynb").is_file()
    assert (toy_edition_template / ".jupyter/labconfig/default_setting_overrides.json").is_file()
