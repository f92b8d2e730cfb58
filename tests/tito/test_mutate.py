"""`tito mutate`: mutants of the solution blocks, graded by the real grader; and the process-local rule."""

from __future__ import annotations

import json

import pytest

import toy
from tito_support import edit, run_tito

pytestmark = pytest.mark.slow


def _report(workspace, module: str = "01_alpha") -> dict:
    return json.loads((workspace / ".tito" / "mutate" / f"{module}.json").read_text())


def test_the_mutant_set_is_deterministic_and_stays_inside_solution_blocks(exported_ws):
    first = run_tito(exported_ws, "mutate", "01_alpha", "--list")
    second = run_tito(exported_ws, "mutate", "01_alpha", "--list")
    assert first.returncode == 0, str(first)
    assert first.stdout == second.stdout
    assert "arithmetic: x * 2 -> (x / 2)" in first.stdout
    assert "constant: 2 -> (3)" in first.stdout
    assert "statement: return x * x + 1 -> return None" in first.stdout
    # only solution lines are mutated: the given `import math` and the tests never are
    assert "math" not in first.stdout and "double(3)" not in first.stdout
    limited = run_tito(exported_ws, "mutate", "01_alpha", "--list", "--limit", "3", "--operators", "constant")
    assert limited.stdout.count("constant:") == 3 and "arithmetic" not in limited.stdout, str(limited)


def test_mutants_the_graded_tests_catch_are_killed(exported_ws):
    result = run_tito(exported_ws, "mutate", "01_alpha", "-j", "1")
    assert result.returncode == 0, str(result)
    report = _report(exported_ws)
    assert report["graded"] == report["generated"] > 5
    assert report["killed"] == report["graded"] and report["survived"] == 0 and report["kill_rate"] == 1.0
    by_description = {m["description"]: m for m in report["mutants"]}
    doubled = by_description["arithmetic: x * 2 -> (x / 2)"]
    assert doubled["status"] == "killed" and doubled["failed_cells"] == ["test-double"]
    assert not (exported_ws / "grading" / "gradebook.db").exists()   # the instructor's course is untouched


def test_a_mutant_no_test_sees_survives_and_fails_the_threshold(exported_ws):
    # test-double now only checks double(0): x / 2 and x * 3 give 0 too, so nothing sees them
    edit(exported_ws / toy.ALPHA_SRC, "    assert double(3) == 6\n    assert math.isclose(double(-1.5), -3.0)\n",
         "    assert double(0) == 0\n")
    result = run_tito(exported_ws, "mutate", "01_alpha", "-j", "1", "--operators", "arithmetic,constant")
    assert result.returncode == 1, str(result)
    assert "kill rate under 90% in 01_alpha" in result.stderr
    report = _report(exported_ws)
    survivors = {m["description"]: m for m in report["mutants"] if m["status"] == "survived"}
    assert set(survivors) == {"arithmetic: x * 2 -> (x / 2)", "constant: 2 -> (3)"}, survivors
    survivor = survivors["arithmetic: x * 2 -> (x / 2)"]
    assert survivor["should_catch"] == ["test-double"]
    assert "-    return x * 2  # alpha-double-solution" in survivor["diff"]
    assert "+    return (x / 2)  # alpha-double-solution" in survivor["diff"]
    assert "should have been caught by: test-double" in result.stdout
    # the square_plus_one mutants are still caught by its own tests
    assert all(m["status"] == "killed" for m in report["mutants"] if m["function"] == "square_plus_one")
    # a low enough bar passes
    assert run_tito(exported_ws, "mutate", "01_alpha", "-j", "1", "--operators", "arithmetic,constant",
                    "--min-kill", "0.5").returncode == 0


def test_check_rejects_a_graded_test_that_reads_process_local_state(exported_ws):
    edit(exported_ws / toy.ALPHA_SRC, "def test_unit_square_plus_one():\n    assert square_plus_one(2) == 5\n",
         "def test_unit_square_plus_one():\n    with warnings.catch_warnings():\n"
         "        warnings.simplefilter('error')\n        assert square_plus_one(2) == 5\n")
    edit(exported_ws / toy.ALPHA_SRC, "import math\n", "import math\nimport warnings\n")
    assert run_tito(exported_ws, "export", "01_alpha").returncode == 0
    result = run_tito(exported_ws, "check", "01_alpha")
    assert result.returncode == 1, str(result)
    flat = " ".join(result.stdout.split())
    assert "graded cell test-square-plus-one" in flat and "calls warnings.catch_warnings()" in flat, str(result)
    assert "calls warnings.simplefilter()" in flat


def test_a_library_function_handed_to_student_code_is_allowed(exported_ws):
    # passing gc.isenabled along (it then runs where the student's code runs) is the documented way
    edit(exported_ws / toy.ALPHA_SRC, "    assert square_plus_one(2) == 5\n",
         "    assert square_plus_one(2) == 5\n    assert callable(gc.isenabled)\n")
    edit(exported_ws / toy.ALPHA_SRC, "import math\n", "import gc\nimport math\n")
    assert run_tito(exported_ws, "export", "01_alpha").returncode == 0
    result = run_tito(exported_ws, "check", "01_alpha")
    assert result.returncode == 0, str(result)


def test_an_unchanged_module_reuses_its_report_and_any_change_grades_again(exported_ws):
    options = ("mutate", "01_alpha", "-j", "1", "--operators", "constant", "--limit", "2")
    first = run_tito(exported_ws, *options)
    assert first.returncode == 0 and "reused" not in first.stdout, str(first)
    stored = _report(exported_ws)
    again = run_tito(exported_ws, *options)
    assert again.returncode == 0 and "01_alpha: nothing it depends on changed since its report: reused" in again.stdout
    assert _report(exported_ws) == stored
    # other options are other inputs
    other = run_tito(exported_ws, "mutate", "01_alpha", "-j", "1", "--operators", "constant", "--limit", "1")
    assert "reused" not in other.stdout and _report(exported_ws)["graded"] == 1, str(other)
    assert "reused" in run_tito(exported_ws, "mutate", "01_alpha", "-j", "1", "--operators", "constant",
                                "--limit", "1").stdout
    # a changed comment in the module's source is a changed input; so is --fresh
    edit(exported_ws / toy.ALPHA_SRC, "# Two small functions.", "# Two small functions, reworded.")
    changed = run_tito(exported_ws, "mutate", "01_alpha", "-j", "1", "--operators", "constant", "--limit", "1")
    assert "reused" not in changed.stdout and "graded 1/1" in changed.stdout, str(changed)
    fresh = run_tito(exported_ws, "mutate", "01_alpha", "-j", "1", "--operators", "constant", "--limit", "1", "--fresh")
    assert "reused" not in fresh.stdout and "graded 1/1" in fresh.stdout, str(fresh)
