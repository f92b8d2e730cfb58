"""Fixtures for the tito CLI tests: the real `python -m tito` in a subprocess, on real workspaces.

Expensive state is built once per session (an exported toy workspace, a graded nbgrader course,
a student edition); tests that change files work on a private copy.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # importlib mode: make the helpers importable

import toy  # noqa: E402
from tito_support import REPO, copy_tree, run_tito  # noqa: E402


# -- toy workspaces -----------------------------------------------------------------------------

@pytest.fixture(scope="session")
def toy_template(tmp_path_factory) -> Path:
    """The toy workspace as written (nothing exported). Read-only: copy it before changing it."""
    return toy.write_workspace(tmp_path_factory.mktemp("template") / "course")


@pytest.fixture(scope="session")
def exported_template(tmp_path_factory, toy_template) -> Path:
    """The toy workspace after `tito export --all`. Read-only: copy it before changing it."""
    root = copy_tree(toy_template, tmp_path_factory.mktemp("exported") / "course")
    result = run_tito(root, "export", "--all")
    assert result.returncode == 0, str(result)
    return root


@pytest.fixture
def toy_ws(tmp_path, toy_template) -> Path:
    """A private, unexported toy workspace."""
    return copy_tree(toy_template, tmp_path / "course")


@pytest.fixture
def exported_ws(tmp_path, exported_template) -> Path:
    """A private, exported toy workspace."""
    return copy_tree(exported_template, tmp_path / "course")


# -- a toy student edition ------------------------------------------------------------------------

@pytest.fixture(scope="session")
def toy_edition_template(tmp_path_factory, exported_template) -> Path:
    """`tito student-edition` of the toy course (with this repository's tito). Read-only."""
    course = copy_tree(exported_template, tmp_path_factory.mktemp("course") / "course")
    copy_tree(REPO / "tito", course / "tito")
    out = tmp_path_factory.mktemp("edition") / "student"
    result = run_tito(course, "student-edition", str(out))
    assert result.returncode == 0, str(result)
    return out


@pytest.fixture
def student(tmp_path, toy_edition_template) -> Path:
    """A private copy of the toy student edition."""
    return copy_tree(toy_edition_template, tmp_path / "student")
