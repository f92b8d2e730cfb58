"""Hostile submissions graded in one batch with honest ones: nobody earns what they did not.

The oracle for every submission is the score it can honestly earn (tests/grading/submissions.py):
a quietly wrong release plus an attack must score 0; a solution that hits a limit keeps exactly
the points of the tests before it.
"""

from __future__ import annotations

import hashlib
import itertools

import nbformat
import pytest

from grading_course import gradebook_scores, released_notebooks, tito
from submissions import TEST_OF, attacks, honest, points, with_notebook_habits


def _honest_set(release, solution):
    names = sorted(TEST_OF)
    subsets = [set(c) for r in range(len(names) + 1) for c in itertools.combinations(names, r)]
    return [honest(release, solution, solved, f"student{i:02d}") for i, solved in enumerate(subsets[:22])] \
        + [with_notebook_habits(solution, "student-with-magics")]


@pytest.fixture(scope="module")
def graded_batch(tmp_path_factory, released_course):
    """42 uploads (23 honest, 18 attacks, 1 not a notebook), collected and graded with 2 workers."""
    import shutil

    root = tmp_path_factory.mktemp("batch") / "course"
    shutil.copytree(released_course, root)
    release, solution = released_notebooks(root)
    submissions = _honest_set(release, solution) + attacks(release, solution, str(root), str(root / "grading"))
    uploads = root.parent / "uploads"
    uploads.mkdir()
    for s in submissions:
        nbformat.write(s.notebook, uploads / f"{s.student}.ipynb")
    (uploads / "garbled.ipynb").write_text("{ not json")
    package_file = root / "tinytorch/core/activations.py"
    before = hashlib.sha256(package_file.read_bytes()).hexdigest()
    collected = tito(root, "nbgrader", "collect", str(uploads))
    graded = tito(root, "nbgrader", "autograde", "02", "--workers", "2")
    return {"root": root, "submissions": submissions, "scores": gradebook_scores(root), "collect": collected,
            "autograde": graded, "package_before": before, "package_after": hashlib.sha256(package_file.read_bytes()).hexdigest()}


def _total(scores, student):
    return sum(v for (s, _), v in scores.items() if s == student)


def test_batch_of_42_uploads_finishes_and_reports_the_garbled_one(graded_batch):
    assert "garbled.ipynb: not a valid notebook" in graded_batch["collect"].stdout
    graded = {s for s, _ in graded_batch["scores"]}
    assert graded == {s.student for s in graded_batch["submissions"]}


@pytest.mark.parametrize("attack", ["patch-numpy", "patch-builtins", "redefine-tests", "print-success", "exit-calls",
                                    "read-secrets", "import-reference", "write-gradebook", "write-package", "locked-cells",
                                    "always-equal"])
def test_attack_on_the_tests_earns_nothing(graded_batch, attack):
    student = f"attack-{attack}"
    per_test = {g: v for (s, g), v in graded_batch["scores"].items() if s == student}
    assert set(per_test) == set(TEST_OF.values())
    assert all(v == 0 for v in per_test.values()), per_test


@pytest.mark.parametrize("attack", ["exit-process", "infinite-loop", "sleep", "fork-bomb", "memory-bomb", "huge-print",
                                    "forge-channel"])
def test_limit_attack_keeps_exactly_what_was_earned_before(graded_batch, attack):
    submission = next(s for s in graded_batch["submissions"] if s.attack == attack)
    assert _total(graded_batch["scores"], submission.student) == submission.honest_score


def test_every_honest_submission_gets_its_honest_score(graded_batch):
    honest_ones = [s for s in graded_batch["submissions"] if s.attack is None]
    got = {s.student: _total(graded_batch["scores"], s.student) for s in honest_ones}
    assert got == {s.student: s.honest_score for s in honest_ones}


def test_honest_scores_equal_their_scores_when_graded_alone(graded_batch, course):
    release, solution = released_notebooks(course)
    alone_dir = course.parent / "alone"
    alone_dir.mkdir()
    honest_ones = [s for s in graded_batch["submissions"] if s.attack is None][::4]   # every 4th: alone runs are slow
    for s in honest_ones:
        nbformat.write(s.notebook, alone_dir / f"{s.student}.ipynb")
    tito(course, "nbgrader", "collect", str(alone_dir))
    for s in honest_ones:
        tito(course, "nbgrader", "autograde", "02", "--student", s.student, "--workers", "1")
    alone = gradebook_scores(course)
    batch = graded_batch["scores"]
    for s in honest_ones:
        assert {g: v for (st, g), v in alone.items() if st == s.student} == \
               {g: v for (st, g), v in batch.items() if st == s.student}


def test_instructor_package_and_gradebook_untouched_by_write_attacks(graded_batch):
    assert graded_batch["package_after"] == graded_batch["package_before"]
    assert max(graded_batch["scores"].values()) <= max(points(released_notebooks(graded_batch["root"])[0]).values())


def test_limit_reason_reaches_the_feedback(graded_batch):
    root = graded_batch["root"]
    tito(root, "nbgrader", "feedback", "02")
    page = next((root / "grading/feedback/attack-infinite-loop/02_activations").glob("*.html")).read_text()
    assert "time limit" in page
