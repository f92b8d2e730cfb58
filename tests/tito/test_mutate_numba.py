"""`tito mutate` reuses the reference's compiled numba kernels, and never a stale one.

The toy's `double` becomes an @njit(cache=True) kernel that only `square_plus_one`, another kernel
in a later cell, calls; and only that caller is tested. numba keys a cached kernel on its own file
and bytecode, so a changed `double` with a reused `square_plus_one` would run the reference's
inlined `double`: the hazard these tests pin down.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import nbformat
import pytest

import toy
from tito_support import edit, run_tito

pytestmark = pytest.mark.slow

MUTANT = "arithmetic: x * 2 -> (x / 2)"


@pytest.fixture
def numba_ws(exported_ws) -> Path:
    src = exported_ws / toy.ALPHA_SRC
    edit(src, "import math\n", "import math\n\nfrom numba import njit\n")
    edit(src, "def double(x):", "@njit(cache=True)\ndef double(x):")
    edit(src, "def square_plus_one(x):", "@njit(cache=True)\ndef square_plus_one(x):")
    edit(src, toy.ALPHA_SOLUTION_SQUARE, "return double(x) * x / 2 + 1  # alpha-square-solution")
    edit(src, "    assert double(3) == 6\n    assert math.isclose(double(-1.5), -3.0)\n",
         "    assert square_plus_one(3) == 10\n")
    assert run_tito(exported_ws, "export", "01_alpha").returncode == 0
    return exported_ws


def test_dependent_cells_follow_names_through_later_and_earlier_cells():
    from tito.core.mutation_run import dependent_cells

    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("LIMIT = 3\n"),                                  # 0
        nbformat.v4.new_code_cell("def inner(x):\n    return x * LIMIT\n"),        # 1 reads LIMIT
        nbformat.v4.new_markdown_cell("text"),                                      # 2
        nbformat.v4.new_code_cell("def outer(x):\n    return inner(x) + 1\n"),     # 3 reads inner
        nbformat.v4.new_code_cell("def alone(x):\n    return x\n"),                # 4
        nbformat.v4.new_code_cell("config.size = 4\n"),                             # 5 sets an attribute
        nbformat.v4.new_code_cell("def sized():\n    return config.size\n"),       # 6 reads config
    ])
    assert dependent_cells(notebook, 0) == {0, 1, 3}
    assert dependent_cells(notebook, 1) == {1, 3}
    assert dependent_cells(notebook, 3) == {3}
    assert dependent_cells(notebook, 4) == {4}
    assert dependent_cells(notebook, 5) == {5, 6}


def test_a_mutated_kernel_is_caught_through_a_cached_caller(numba_ws):
    result = run_tito(numba_ws, "mutate", "01_alpha", "-j", "1", "--operators", "arithmetic")
    assert result.returncode == 0, str(result)
    assert "its compiled numba kernels are reused" in result.stdout, str(result)
    report = json.loads((numba_ws / ".tito" / "mutate" / "01_alpha.json").read_text())
    verdict = {m["description"]: m for m in report["mutants"]}[MUTANT]
    assert verdict["status"] == "killed" and verdict["failed_cells"] == ["test-double"], verdict
    # killed with the seed already (no survivor needed a second, unseeded grade)
    assert "graded again without" not in result.stdout, str(result)


def test_the_seed_is_used_and_would_hide_the_mutant_without_the_dependency_rule(numba_ws, monkeypatch):
    from tito.core import mutation_run as mr
    from tito.core.autograding import prerequisite_package
    from tito.core.course import Course
    from tito.core.manifest import resolve
    from tito.core.workspace import Workspace

    monkeypatch.chdir(numba_ws)
    ws = Workspace(numba_ws)
    module = resolve(ws, "01_alpha")
    base = mr.read_source(module).notebook
    mutant = next(m for m in mr.module_mutants(module, ("arithmetic",)) if m.description == MUTANT)
    numbers = mr._graded_numbers(base, None)
    reach = mr.dependent_cells(base, mutant.cell_index)
    caller = next(i for i, c in enumerate(base.cells) if "def square_plus_one" in c.source)
    assert caller in reach

    def seeded(folder: Path, skip: list[int]):
        return lambda job: setattr(job, "numba_seed", {"folder": str(folder), "skip_cells": skip})

    with tempfile.TemporaryDirectory() as scratch:
        course = Course(ws, Path(scratch) / "course")
        cache = Path(scratch) / "cache"
        with prerequisite_package(course, module) as package:
            reference = mr._grade(course, module, package, {"reference": base}, 1,
                                  lambda job: setattr(job, "numba_capture", str(cache)))["reference"]
            assert reference.total == 5, reference
            assert list((cache / "work" / "cells").glob(f"cell_{numbers[caller]:04d}.square_plus_one-*.nbi"))
            notebook = mr.mutant_notebook(base, None, {mutant.cell_index: mutant.source})
            naive = mr._grade(course, module, package, {"m": notebook}, 1, seeded(cache, []))["m"]
            kept_out = sorted(numbers[i] for i in reach)
            right = mr._grade(course, module, package, {"m": notebook}, 1, seeded(cache, kept_out))["m"]
    # the reference's square_plus_one, with the reference's double compiled into it, was loaded
    assert naive.scores["test-double"] == 2, naive
    assert right.scores["test-double"] == 0, right
