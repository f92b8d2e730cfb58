"""Fixtures of the grading tests; helpers live in grading_course.py and submissions.py beside this file."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))   # importlib mode: make the helper modules importable

from grading_course import make_workspace, tito  # noqa: E402


@pytest.fixture(scope="session")
def released_course(tmp_path_factory) -> Path:
    """A workspace whose module 02 is released; tests copy it before they change it."""
    root = make_workspace(tmp_path_factory.mktemp("grading") / "course")
    tito(root, "nbgrader", "generate", "02")
    return root


@pytest.fixture
def course(released_course, tmp_path) -> Path:
    copy = tmp_path / "course"
    shutil.copytree(released_course, copy)
    return copy
