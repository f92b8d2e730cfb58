"""`tito leaderboard`: the real CLI on a folder of real (measured) submissions plus a corrupt file."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from tito_support import REPO, run_tito

tinymlperf = pytest.importorskip("tinytorch.benchmarking.tinymlperf")


@pytest.fixture(scope="module")
def submissions(tmp_path_factory):
    """Two entries measured by the harness against a briefly trained reference, and one broken file."""
    folder = tmp_path_factory.mktemp("subs")
    task = tinymlperf.get_task("digits-mlp")
    settings = tinymlperf.HarnessSettings(warmup=1, queries=5, throughput_repeats=2)
    reference = task.reference_entry(task.train_reference(epochs=3))
    ref_measured = tinymlperf.measure_entry(task, reference, settings)
    same = tinymlperf.Entry("reference again", reference.model, reference.predict)
    constant = tinymlperf.Entry("constant logits", tinymlperf.digits_mlp(),
                                lambda x: np.zeros((len(x), 10), dtype=np.float32), ["nothing"])
    for entry in (same, constant):
        tinymlperf.make_submission("digits-mlp", entry, reference, settings, ref_measured).save(folder)
    (folder / "broken.json").write_text("{not json")
    return folder


def test_leaderboard_ranks_and_reports_the_corrupt_file(submissions, tmp_path):
    page = tmp_path / "page.html"
    result = run_tito(REPO, "leaderboard", str(submissions), "--out", str(page))
    assert result.returncode == 0, str(result)
    assert "#1 reference again" in result.stdout
    assert "#2 constant logits: score 0.000" in result.stdout and "FAIL" in result.stdout
    assert "skipped broken.json: not valid JSON" in result.stdout
    assert "2 ranked, 1 skipped" in result.stdout
    assert page.is_file() and 'data-rank="2"' in page.read_text()
    with sqlite3.connect(page.with_suffix(".sqlite")) as db:
        assert db.execute("SELECT model FROM submissions ORDER BY rank").fetchall() == [("reference again",), ("constant logits",)]


def test_default_outputs_go_into_the_folder(submissions, tmp_path):
    db = tmp_path / "board.sqlite"
    result = run_tito(REPO, "leaderboard", str(submissions), "--db", str(db))
    assert result.returncode == 0, str(result)
    assert (submissions / "leaderboard.html").is_file() and db.is_file()


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing", "is not a folder"),
    (lambda d: d, "no *.json submissions"),
])
def test_bad_folders_are_clear_errors(tmp_path, make, message):
    result = run_tito(REPO, "leaderboard", str(make(tmp_path)))
    assert result.returncode == 1, str(result)
    assert message in result.stderr and "Traceback" not in result.output


def test_a_folder_of_only_corrupt_files_fails(tmp_path):
    (tmp_path / "a.json").write_text("[]")
    result = run_tito(REPO, "leaderboard", str(tmp_path), "--out", str(tmp_path / "p.html"))
    assert result.returncode == 1, str(result)
    assert "skipped a.json" in result.stdout and "none of the 1 files" in result.stderr
