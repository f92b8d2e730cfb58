"""The trusted side is bounded per submission too: no submission costs more than its limits.

The instructor's test runs in a grading process of its own for each submission; whatever the
submission makes it do (loop over a number it returned, write into a pipe it stopped reading), it
is stopped at the cell limit, what ran before keeps its points, and the next submission is
graded as if nothing happened.
"""

from __future__ import annotations

from grade_jobs import LIMITS, grade_cells, graded_cell

SHORT = {**LIMITS, "cell_timeout": 3, "submission_timeout": 30}
BEFORE = graded_cell("test-before", "assert steps() > 0", 1)
AFTER = graded_cell("test-after", "assert steps() > 0", 1)


def test_a_number_the_submission_returns_cannot_keep_the_trusted_side_busy(tmp_path):
    # Pure computation in the trusted process, no message on the channel: only its own budget stops it.
    busy = graded_cell("test-busy", "total = 0\nfor step in range(steps()):\n    total += step\nassert total >= 0", 1)
    result = grade_cells(tmp_path / "a", "looper", ["def steps():\n    return 10**13", BEFORE, busy, AFTER], SHORT)
    assert "cell time limit (3 s)" in result.stopped and "cell 3" in result.stopped
    assert result.scores == {"test-before": 1.0, "test-busy": 0.0, "test-after": 0.0}
    assert result.cells[-1].error.startswith("not run")
    honest = grade_cells(tmp_path / "b", "next", ["def steps():\n    return 3", BEFORE, AFTER], SHORT)
    assert honest.total == 2 and honest.stopped is None


def test_a_submission_that_stops_reading_cannot_block_the_trusted_side(tmp_path):
    # After detach(), the grader's pipe is still open but nobody reads it: a large argument fills it.
    detaching = ("import os\n_keep = []\ndef detach():\n    r, w = os.pipe()\n    _keep.extend([w, os.dup(3)])\n"
                 "    os.dup2(r, 3)\n    return 1\ndef steps(*args):\n    return 1")
    blocked = graded_cell("test-blocked", "import numpy as np\nassert detach() == 1\nassert steps(np.zeros(2_000_000)) == 1", 1)
    result = grade_cells(tmp_path, "detacher", [detaching, BEFORE, blocked, AFTER], SHORT)
    assert "time limit" in result.stopped and "cell 3" in result.stopped
    assert result.scores == {"test-before": 1.0, "test-blocked": 0.0, "test-after": 0.0}
