"""The leaderboard: ranking, the Pareto front against brute force, corrupt files skipped, SQLite, the page."""

import itertools
import json
import sqlite3
from dataclasses import asdict
from html.parser import HTMLParser

import numpy as np
import pytest

from tinytorch.benchmarking.tinymlperf import (
    SCHEMA_VERSION,
    Measurement,
    build_leaderboard,
    environment_record,
    get_task,
    load_submissions,
    pareto_front,
    relative_scores,
)

REFERENCE = Measurement(quality=0.97, p50_ms=0.10, p90_ms=0.12, p99_ms=0.20, throughput_per_s=50_000.0,
                        peak_bytes=600_000, model_bytes=104_488)
# name: (accuracy, p50 ms); the ratios in each file follow from these, as make_submission writes them
ENTRIES = {
    "fast-int8": (0.965, 0.025),      # 4x, passes (half a point under)
    "fastest-broken": (0.80, 0.010),  # 10x but 17 points under: fails the gate, scores 0
    "accurate": (0.98, 0.09),         # a little faster and more accurate
    "dominated": (0.96, 0.08),        # slower and less accurate than fast-int8: off the front
    "boundary": (0.96, 0.05),         # exactly one point under: passes
}


def submission_dict(task, model, quality, p50_ms, reference=REFERENCE):
    measured = Measurement(quality, p50_ms, p50_ms * 1.2, p50_ms * 2, reference.throughput_per_s * reference.p50_ms / p50_ms,
                           reference.peak_bytes, reference.model_bytes // 2)
    ratios = relative_scores(reference, measured, get_task(task).tolerance)
    return {"schema_version": SCHEMA_VERSION, "task": task, "model": model, "optimizations": ["test"],
            "measured": asdict(measured), "reference": asdict(reference),
            "ratios": {k: (bool(v) if k == "passes_gate" else float(v)) for k, v in ratios.items()},
            "environment": environment_record()}


@pytest.fixture
def folder(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    for name, (quality, p50) in ENTRIES.items():
        (subs / f"{name}.json").write_text(json.dumps(submission_dict("digits-mlp", name, quality, p50)))
    (subs / "cnn-only.json").write_text(json.dumps(submission_dict("digits-cnn", "cnn-only", 0.97, 0.05)))
    return subs


def add_corrupt_files(subs):
    (subs / "truncated.json").write_text('{"task": "digits-mlp", ')
    (subs / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    (subs / "list.json").write_text("[1, 2, 3]")
    missing = submission_dict("digits-mlp", "missing", 0.97, 0.05)
    del missing["measured"]["p99_ms"]
    (subs / "missing-field.json").write_text(json.dumps(missing))
    extra = submission_dict("digits-mlp", "extra", 0.97, 0.05)
    extra["ratios"]["trust_me"] = 100.0
    (subs / "extra-field.json").write_text(json.dumps(extra))
    unknown = submission_dict("digits-mlp", "unknown", 0.97, 0.05)
    unknown["task"] = "imagenet"
    (subs / "unknown-task.json").write_text(json.dumps(unknown))
    tampered = submission_dict("digits-mlp", "tampered", 0.97, 0.05)
    tampered["ratios"]["speedup"] = tampered["ratios"]["score"] = 1000.0
    (subs / "tampered.json").write_text(json.dumps(tampered))
    (subs / "notes.txt").write_text("not a submission: not a .json file, not read")
    return {"truncated.json": "JSON", "binary.json": "", "list.json": "JSON object", "missing-field.json": "measured.p99_ms",
            "extra-field.json": "ratios.trust_me", "unknown-task.json": "imagenet", "tampered.json": "speedup"}


class PageReader(HTMLParser):
    """Rows of each leaderboard table and the circles of each Pareto plot, as the browser sees them."""

    def __init__(self):
        super().__init__()
        self.rows, self.points, self.problems, self.fronts = {}, {}, [], {}
        self.task, self.cells, self.in_cell, self.in_problem = None, None, False, False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("table", "svg") and "data-task" in a:
            self.task = a["data-task"]
        if tag == "tr" and "data-rank" in a:
            self.cells = []
        if tag == "td" and self.cells is not None:
            self.in_cell = True
            self.cells.append("")
        if tag == "circle":
            self.points.setdefault(self.task, []).append(
                (int(a["data-rank"]), "pareto" in a["class"].split(), float(a["data-quality"]), float(a["data-speedup"])))
        if tag == "path" and a.get("class") == "front":
            self.fronts[self.task] = a["d"]
        if tag == "li" and "data-file" in a:
            self.in_problem = True
            self.problems.append("")

    def handle_endtag(self, tag):
        if tag == "td":
            self.in_cell = False
        if tag == "tr" and self.cells is not None:
            self.rows.setdefault(self.task, []).append(self.cells)
            self.cells = None
        if tag == "li":
            self.in_problem = False

    def handle_data(self, data):
        if self.in_cell:
            self.cells[-1] += data
        if self.in_problem:
            self.problems[-1] += data


def read_page(path):
    reader = PageReader()
    reader.feed(path.read_text(encoding="utf-8"))
    return reader


def brute_force_front(points):
    return [i for i, p in enumerate(points)
            if not any(q[0] >= p[0] and q[1] >= p[1] and q != p for q in points)]


# --- Pareto front ------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(5))
def test_pareto_front_matches_brute_force_with_ties(seed):
    gen = np.random.default_rng(seed)
    for n in range(0, 15):
        points = [tuple(map(float, p)) for p in gen.integers(0, 5, size=(n, 2))]
        assert pareto_front(points) == brute_force_front(points), points


def test_pareto_front_of_every_arrangement_of_three_points():
    values = [0.0, 1.0, 2.0]
    for points in itertools.product(itertools.product(values, values), repeat=3):
        assert pareto_front(list(points)) == brute_force_front(list(points)), points


# --- ranking, problems, database, page -----------------------------------------------------------

def test_ranking_by_score_with_the_gate(folder, tmp_path):
    board = build_leaderboard(folder, tmp_path / "out" / "page.html")
    assert board.problems == []
    order = [e.submission.model for e in board.ranked["digits-mlp"]]
    assert order == ["fast-int8", "boundary", "dominated", "accurate", "fastest-broken"]   # 4x, 2x, 1.25x, 1.11x, 0
    broken = board.ranked["digits-mlp"][-1].submission.data["ratios"]
    assert broken["passes_gate"] is False and broken["score"] == 0.0
    front = {e.submission.model for e in board.ranked["digits-mlp"] if e.on_pareto_front}
    assert front == {"fast-int8", "accurate", "fastest-broken"}       # boundary and dominated are beaten by fast-int8
    assert [e.rank for e in board.ranked["digits-cnn"]] == [1]


def test_corrupt_files_are_reported_and_the_rest_ranked(folder, tmp_path):
    expected = add_corrupt_files(folder)
    board = build_leaderboard(folder, tmp_path / "page.html")
    reasons = dict(board.problems)
    assert set(reasons) == set(expected)
    for name, word in expected.items():
        assert word in reasons[name], (name, reasons[name])
    assert len(board.ranked["digits-mlp"]) == len(ENTRIES)


def test_sqlite_holds_the_ranked_rows_and_the_problems(folder, tmp_path):
    add_corrupt_files(folder)
    build_leaderboard(folder, tmp_path / "page.html", db_path=tmp_path / "board.sqlite")
    with sqlite3.connect(tmp_path / "board.sqlite") as db:
        rows = db.execute("SELECT rank, model, passes_gate, on_pareto_front FROM submissions "
                          "WHERE task = 'digits-mlp' ORDER BY rank").fetchall()
        problems = db.execute("SELECT file FROM problems ORDER BY file").fetchall()
    assert [r[1] for r in rows] == ["fast-int8", "boundary", "dominated", "accurate", "fastest-broken"]
    assert rows[-1][2] == 0 and rows[0][3] == 1
    assert len(problems) == 7


def test_rebuilding_replaces_the_database_and_gives_the_same_page(folder, tmp_path):
    build_leaderboard(folder, tmp_path / "a.html")
    build_leaderboard(folder, tmp_path / "a.html")
    with sqlite3.connect(tmp_path / "a.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM submissions").fetchone()[0] == len(ENTRIES) + 1
    build_leaderboard(folder, tmp_path / "b.html")
    assert (tmp_path / "a.html").read_bytes() == (tmp_path / "b.html").read_bytes()


def test_the_page_shows_rows_ranks_and_the_pareto_points(folder, tmp_path):
    add_corrupt_files(folder)
    page = tmp_path / "page.html"
    build_leaderboard(folder, page)
    text = page.read_text()
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in text
    reader = read_page(page)
    rows = reader.rows["digits-mlp"]
    assert [int(r[0]) for r in rows] == [1, 2, 3, 4, 5]
    assert [r[1] for r in rows] == ["fast-int8", "boundary", "dominated", "accurate", "fastest-broken"]
    assert rows[-1][8] == "FAIL" and rows[-1][9] == "0.000" and rows[0][8] == "pass"
    assert rows[0][4] == "4.000"                                  # speedup = 0.10 / 0.025
    points = reader.points["digits-mlp"]
    assert sorted(p[0] for p in points) == [1, 2, 3, 4, 5]
    on_front = sorted((q, s) for _, pareto, q, s in points if pareto)
    assert on_front == sorted([(0.965, pytest.approx(4.0)), (0.98, pytest.approx(0.10 / 0.09)), (0.80, pytest.approx(10.0))])
    assert reader.fronts["digits-mlp"].count("L") == 2            # the front joins its three points
    assert len(reader.points["digits-cnn"]) == 1
    assert len(reader.problems) == 7 and any("tampered.json" in p for p in reader.problems)


def test_an_empty_or_missing_folder(tmp_path):
    board = build_leaderboard(tmp_path, tmp_path / "page.html")
    assert board.ranked == {} and board.problems == []
    with pytest.raises(FileNotFoundError, match="no submissions folder"):
        load_submissions(tmp_path / "nowhere")
