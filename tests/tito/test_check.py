"""`tito check`: export in sync, manifest agrees, solution = full marks and blank = 0 on real nbgrader."""

from __future__ import annotations

import pytest

import toy
from tito_support import edit, run_tito

pytestmark = pytest.mark.slow


def _problems(result) -> str:
    """The check table's text with its borders and line breaks removed (long problems wrap)."""
    return " ".join(part.strip() for line in result.stdout.splitlines() for part in line.split("│") if part.strip())


def test_check_passes_on_a_correct_course(exported_ws):
    result = run_tito(exported_ws, "check")
    assert result.returncode == 0, str(result)
    assert "ok 01_alpha" in result.stdout and "ok 02_beta" in result.stdout
    assert "01_alpha 5 5 0 none" in _problems(result), str(result)
    assert "02_beta 4 4 0 none" in _problems(result), str(result)
    assert not (exported_ws / "grading" / "gradebook.db").exists()   # the instructor's course is not touched


def test_check_fails_when_a_graded_cell_does_not_depend_on_student_code(exported_ws):
    edit(exported_ws / toy.ALPHA_SRC, "    assert double(3) == 6\n    assert math.isclose(double(-1.5), -3.0)\n",
         "    assert abs(-6) == 6\n")
    result = run_tito(exported_ws, "check", "01_alpha")
    assert result.returncode == 1, str(result)
    assert "blank release earns 2 point(s) on test-double" in _problems(result), str(result)
    assert "course check failed for 01_alpha" in result.stderr


def test_check_fails_when_manifest_points_disagree_with_graded_cells(exported_ws):
    edit(exported_ws / "modules/01_alpha/module.yaml", "points: 5", "points: 6")
    result = run_tito(exported_ws, "check", "01_alpha")
    assert result.returncode == 1, str(result)
    assert "module.yaml says 6 points, graded cells add up to 5" in _problems(result), str(result)


def test_check_fails_when_the_export_is_out_of_sync(exported_ws):
    edit(exported_ws / toy.ALPHA_SRC, toy.ALPHA_SOLUTION_DOUBLE, "return x + x")
    result = run_tito(exported_ws, "check", "01_alpha")
    assert result.returncode == 1, str(result)
    assert "export out of sync (alpha.py): run tito export 01_alpha" in _problems(result), str(result)
