"""`tito test MODULE` and `tito module complete MODULE` on the toy workspace."""

from __future__ import annotations

import toy
from tito_support import edit, run_tito

WRONG_DOUBLE = "return x + 2"                      # double(3) == 5: test_unit_double fails
ZERO_EDGE_CASE = "return x * 2 if x else 1"        # inline tests pass; the package test at 0 fails


def test_test_passes_on_the_correct_module(exported_template):
    result = run_tito(exported_template, "test", "01_alpha")
    assert result.returncode == 0, str(result)
    assert "alpha_dev.py ran, inline tests passed" in result.stdout
    assert "2 passed" in result.stdout


def test_test_fails_on_a_wrong_solution_and_names_the_test(exported_ws):
    edit(exported_ws / toy.ALPHA_SRC, toy.ALPHA_SOLUTION_DOUBLE, WRONG_DOUBLE)
    result = run_tito(exported_ws, "test", "01_alpha")
    assert result.returncode == 1, str(result)
    assert "test_unit_double failed at alpha_dev.py:" in result.stdout, str(result)
    assert "tests failed in 01_alpha" in result.stderr


def test_test_fails_when_a_package_test_fails(exported_ws):
    edit(exported_ws / toy.ALPHA_SRC, toy.ALPHA_SOLUTION_DOUBLE, ZERO_EDGE_CASE)
    exported = run_tito(exported_ws, "export", "01_alpha")
    assert exported.returncode == 0, str(exported)

    result = run_tito(exported_ws, "test", "01_alpha")

    assert result.returncode == 1, str(result)
    assert "alpha_dev.py ran, inline tests passed" in result.stdout, str(result)
    assert "test_alpha.py::test_double_matches_addition" in result.stdout, str(result)


def test_complete_records_progress_and_names_the_next_module(toy_ws):
    result = run_tito(toy_ws, "module", "complete", "1")
    assert result.returncode == 0, str(result)
    assert "01_alpha completed. next: 02_beta" in result.stdout, str(result)

    listing = run_tito(toy_ws, "module", "list")
    assert listing.returncode == 0, str(listing)
    alpha_row = next(line for line in listing.stdout.splitlines() if "01_alpha" in line and "tinytorch" in line)
    beta_row = next(line for line in listing.stdout.splitlines() if "02_beta" in line and "tinytorch" in line)
    assert "completed" in alpha_row and "not completed" not in alpha_row
    assert "not completed" in beta_row
    assert "1 of 2 modules completed" in listing.stdout


def test_failed_complete_records_nothing_and_names_the_test(toy_ws):
    edit(toy_ws / toy.ALPHA_SRC, toy.ALPHA_SOLUTION_DOUBLE, WRONG_DOUBLE)
    result = run_tito(toy_ws, "module", "complete", "01_alpha")
    assert result.returncode == 1, str(result)
    assert "01_alpha is not complete: test_unit_double failed" in result.stderr, str(result)

    listing = run_tito(toy_ws, "module", "list")
    assert "0 of 2 modules completed" in listing.stdout, str(listing)
