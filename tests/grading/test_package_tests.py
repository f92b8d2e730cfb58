"""--package-tests: the instructor's package tests run against the code each submission exports."""

from __future__ import annotations

import re
import subprocess
import sys

import nbformat

from grading_course import REPO, released_notebooks, tito
from submissions import honest


def _report(root, student):
    notebook = nbformat.read(root / f"grading/autograded/{student}/02_activations/activations_dev.ipynb", as_version=4)
    return notebook.cells[-1].source


def _package_test_count() -> int:
    """Oracle: how many package tests module 02 has, as pytest itself collects them."""
    listing = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                              str(REPO / "tests/modules/02_activations")], capture_output=True, text=True, cwd=REPO)
    # `-q` twice (the project's addopts adds one) prints "path: count" per file.
    return sum(int(n) for n in re.findall(r"\.py: (\d+)", listing.stdout))


def test_package_tests_run_on_each_submissions_exported_code(course):
    release, solution = released_notebooks(course)
    uploads = course.parent / "uploads"
    uploads.mkdir()
    for s in (honest(release, solution, {"relu", "sigmoid", "tanh", "gelu", "softmax"}, "full"),
              honest(release, solution, {"relu"}, "relu-only")):
        nbformat.write(s.notebook, uploads / f"{s.student}.ipynb")
    tito(course, "nbgrader", "collect", str(uploads))
    tito(course, "nbgrader", "autograde", "02", "--package-tests", "--workers", "2")

    full, partial = _report(course, "full"), _report(course, "relu-only")
    assert f"{_package_test_count()} passed" in full and "failed" not in full
    failed = int(re.search(r"(\d+) failed", partial).group(1))
    assert failed > 0 and "passed" in partial   # ReLU's own package tests pass on the student's export
