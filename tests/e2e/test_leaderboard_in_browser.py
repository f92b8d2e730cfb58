"""The TinyMLPerf leaderboard page in a real browser: Debian's chromium, driven by Playwright.

Submissions measured by the harness (a briefly trained reference, the same model again, and a
broken one) plus a corrupt file are ranked by `tito leaderboard`; the page is opened from disk
(it needs no network) and read as a student sees it: the ranked rows, the Pareto plot's points
drawn inside the plot, the skipped file. A screenshot lands in build/e2e/leaderboard/.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tito"))   # the tito tests' helpers
from tito_support import REPO, run_tito  # noqa: E402

pytestmark = pytest.mark.slow
SHOTS = REPO / "build" / "e2e" / "leaderboard"


@pytest.fixture(scope="module")
def leaderboard_page(tmp_path_factory) -> Path:
    from tinytorch.benchmarking import tinymlperf

    folder = tmp_path_factory.mktemp("subs")
    task = tinymlperf.get_task("digits-mlp")
    settings = tinymlperf.HarnessSettings(warmup=1, queries=5, throughput_repeats=2)
    reference = task.reference_entry(task.train_reference(epochs=3))
    measured = tinymlperf.measure_entry(task, reference, settings)
    for entry in (reference,
                  tinymlperf.Entry("constant logits", tinymlperf.digits_mlp(), lambda x: np.zeros((len(x), 10), np.float32))):
        tinymlperf.make_submission("digits-mlp", entry, reference, settings, measured).save(folder)
    (folder / "corrupt.json").write_text("{")
    page = tmp_path_factory.mktemp("page") / "leaderboard.html"
    result = run_tito(REPO, "leaderboard", str(folder), "--out", str(page))
    assert result.returncode == 0, str(result)
    return page


def test_leaderboard_renders_in_chromium(leaderboard_page):
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.fail("the browser tests need Debian's chromium: run `make e2e` (it installs it) or apt-get install -y chromium")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            tab = browser.new_page(viewport={"width": 1200, "height": 900})
            requests = []
            tab.on("request", lambda request: requests.append(request.url))
            tab.goto(leaderboard_page.as_uri())
            rows = tab.locator('table[data-task="digits-mlp"] tbody tr')
            assert rows.count() == 2
            assert rows.nth(0).locator("td").nth(0).inner_text() == "1"
            assert rows.nth(1).locator("td").nth(1).inner_text() == "constant logits"
            assert rows.nth(1).locator("td").nth(8).inner_text() == "FAIL"
            plot = tab.locator('svg.pareto[data-task="digits-mlp"]')
            box = plot.bounding_box()
            assert box and box["width"] > 100 and box["height"] > 100
            circles = plot.locator("circle")
            assert circles.count() == 2
            for index in range(2):
                dot = circles.nth(index).bounding_box()
                assert dot and box["x"] <= dot["x"] and dot["x"] + dot["width"] <= box["x"] + box["width"]
                assert box["y"] <= dot["y"] and dot["y"] + dot["height"] <= box["y"] + box["height"]
            assert plot.locator("circle.pareto").count() >= 1
            assert "corrupt.json" in tab.locator("#problems").inner_text()
            assert all(url.startswith("file://") for url in requests), requests     # no network assets
            tab.screenshot(path=str(SHOTS / "leaderboard.png"), full_page=True)
        finally:
            browser.close()
