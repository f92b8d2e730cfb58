"""`tito demo -m MODULE` proves grading both ways on the modules it ran, not on every module."""

from __future__ import annotations

import csv

import pytest

from tito_support import run_tito

pytestmark = pytest.mark.slow


def test_demo_of_one_module_passes_and_grades_only_that_module(exported_ws):
    result = run_tito(exported_ws, "demo", "-m", "01_alpha", timeout=900)
    assert result.returncode == 0, str(result)
    assert "grading works both ways" in result.stdout
    with (exported_ws / "demo-out" / "grades.csv").open() as handle:
        rows = {row["student"]: row for row in csv.DictReader(handle)}
    assert rows["full"]["01_alpha"] == rows["(max)"]["01_alpha"] == "5"
    assert rows["blank"]["01_alpha"] == "0"
    assert rows["full"]["02_beta"] == "0"     # not run: the old check wrongly failed on it
