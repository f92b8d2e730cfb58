"""`tito system doctor`: every line OK on a ready machine; otherwise it says what to run."""

from __future__ import annotations

from tito_support import REPO, run_tito


def test_doctor_is_all_ok_in_the_course_repository():
    result = run_tito(REPO, "system", "doctor")
    assert result.returncode == 0, str(result)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines and all(line.startswith("OK ") for line in lines), str(result)
    assert any(line.split()[1:3] == ["import", "tinytorch"] and str(REPO / "tinytorch") in line for line in lines)


def test_doctor_says_to_export_before_tinytorch_can_be_imported(toy_template):
    result = run_tito(toy_template, "system", "doctor")
    assert result.returncode == 1, str(result)
    line = next(line for line in result.stdout.splitlines() if "import tinytorch" in line)
    assert line.startswith("FIX "), line
    assert f"run `tito export --all` in {toy_template}" in line
    assert "1 check(s) need fixing" in result.stderr
