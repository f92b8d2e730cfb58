"""kill -9 of the grader halfway, then the same command again: the gradebook equals a clean run."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys

import nbformat

from grading_course import gradebook_scores, released_notebooks, tito
from submissions import TEST_OF, honest


def _collect_honest(root, count=10):
    release, solution = released_notebooks(root)
    names = sorted(TEST_OF)
    uploads = root.parent / f"uploads-{root.name}"
    uploads.mkdir()
    for i in range(count):
        solved = {n for j, n in enumerate(names) if (i >> j) & 1}
        nbformat.write(honest(release, solution, solved, f"s{i:02d}").notebook, uploads / f"s{i:02d}.ipynb")
    tito(root, "nbgrader", "collect", str(uploads))


def test_killed_grader_resumes_to_the_same_gradebook(course):
    clean = course.parent / "clean"
    shutil.copytree(course, clean)
    for root in (course, clean):
        _collect_honest(root)
    tito(clean, "nbgrader", "autograde", "02", "--workers", "2")

    env = {**os.environ, "PYTHONPATH": str(course)}
    grader = subprocess.Popen([sys.executable, "-m", "tito", "nbgrader", "autograde", "02", "--workers", "2"],
                              cwd=course, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    autograded = course / "grading" / "autograded"
    graded = lambda: len(list(autograded.glob("*/02_activations/*.ipynb")))  # noqa: E731
    try:
        while graded() < 3:
            try:
                grader.wait(timeout=0.2)   # returns early only if the grader finished on its own
                break
            except subprocess.TimeoutExpired:
                continue
    finally:
        os.killpg(grader.pid, signal.SIGKILL)
        grader.wait()
    done_before = graded()
    assert 3 <= done_before < 10, "the grader should have been killed halfway"

    resumed = tito(course, "nbgrader", "autograde", "02", "--workers", "2")
    kept = int(re.search(r"(\d+) submission\(s\) already graded", resumed.stdout).group(1))
    assert kept >= done_before
    assert gradebook_scores(course) == gradebook_scores(clean)
