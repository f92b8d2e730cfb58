"""A tiny two-module course workspace, written from scratch, for the tito CLI tests.

01_alpha exports tinytorch.core.alpha (two solution functions, two graded test cells worth 2 + 3
points, one hidden-test block); 02_beta exports tinytorch.core.beta, lists 01_alpha as its
prerequisite and imports from it (one graded cell worth 4 points, one hidden-test block).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tito_support import REPO

HEADER = """\
# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---
"""


def meta(grade_id: str, *, solution: bool = False, points: int | None = None) -> str:
    """The `# %% nbgrader={...}` header line of an implementation (solution) or graded test cell."""
    if solution:
        return ('# %% nbgrader={"grade": false, "grade_id": "' + grade_id + '", "locked": false, '
                '"schema_version": 3, "solution": true, "task": false}')
    return ('# %% nbgrader={"grade": true, "grade_id": "' + grade_id + '", "locked": true, '
            f'"points": {points}, "schema_version": 3, "solution": false, "task": false}}')


ALPHA_SOLUTION_DOUBLE = "return x * 2  # alpha-double-solution"
ALPHA_SOLUTION_SQUARE = "return x * x + 1  # alpha-square-solution"
ALPHA_HIDDEN_LINE = "assert square_plus_one(-3) == 10  # alpha-hidden-check"
BETA_SOLUTION = "return double(double(x))  # beta-quadruple-solution"
BETA_HIDDEN_LINE = "assert quadruple(-2) == -8  # beta-hidden-check"

ALPHA_SOURCE = HEADER + f"""
# %% [markdown]
# # Module 01: Alpha
# Two small functions.

# %%
#| default_exp core.alpha

# %%
#| export
import math

{meta("double", solution=True)}
#| export
def double(x):
    \"\"\"Twice x.\"\"\"
    ### BEGIN SOLUTION
    {ALPHA_SOLUTION_DOUBLE}
    ### END SOLUTION

{meta("square-plus-one", solution=True)}
#| export
def square_plus_one(x):
    \"\"\"x squared, plus one.\"\"\"
    ### BEGIN SOLUTION
    {ALPHA_SOLUTION_SQUARE}
    ### END SOLUTION

{meta("test-double", points=2)}
def test_unit_double():
    assert double(3) == 6
    assert math.isclose(double(-1.5), -3.0)

test_unit_double()

{meta("test-square-plus-one", points=3)}
def test_unit_square_plus_one():
    assert square_plus_one(2) == 5

test_unit_square_plus_one()
### BEGIN HIDDEN TESTS
def test_hidden_square_plus_one_negative():
    {ALPHA_HIDDEN_LINE}

test_hidden_square_plus_one_negative()
### END HIDDEN TESTS
"""

BETA_SOURCE = HEADER + f"""
# %% [markdown]
# # Module 02: Beta
# Builds on alpha.

# %%
#| default_exp core.beta

# %%
#| export
from tinytorch.core.alpha import double

{meta("quadruple", solution=True)}
#| export
def quadruple(x):
    \"\"\"Four times x, through alpha's double.\"\"\"
    ### BEGIN SOLUTION
    {BETA_SOLUTION}
    ### END SOLUTION

{meta("test-quadruple", points=4)}
def test_unit_quadruple():
    assert quadruple(3) == 12

test_unit_quadruple()
### BEGIN HIDDEN TESTS
def test_hidden_quadruple_negative():
    {BETA_HIDDEN_LINE}

test_hidden_quadruple_negative()
### END HIDDEN TESTS
"""

ALPHA_YAML = """\
number: 1
slug: alpha
title: "Alpha: doubling and squaring"
exports_to: tinytorch.core.alpha
prerequisites: []
points: 5
time_estimate: "10 minutes"
objectives:
  - Double a number
"""

BETA_YAML = """\
number: 2
slug: beta
title: "Beta: quadrupling on top of alpha"
exports_to: tinytorch.core.beta
prerequisites: [01_alpha]
points: 4
time_estimate: "10 minutes"
objectives:
  - Reuse an earlier module
"""

ALPHA_PACKAGE_TESTS = """\
from tinytorch.core.alpha import double, square_plus_one


def test_double_matches_addition():
    for x in (-2, 0, 7):
        assert double(x) == x + x


def test_square_plus_one_matches_product():
    for x in (-2, 0, 7):
        assert square_plus_one(x) == x * x + 1
"""

BETA_PACKAGE_TESTS = """\
from tinytorch.core.beta import quadruple


def test_quadruple_matches_sum():
    for x in (-2, 0, 7):
        assert quadruple(x) == x + x + x + x
"""

ALPHA_SRC = "modules/01_alpha/alpha_dev.py"
BETA_SRC = "modules/02_beta/beta_dev.py"


def write_workspace(root: Path) -> Path:
    """Write the toy workspace into root (created) and return root. Nothing is exported yet."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("settings.ini", "pyproject.toml"):
        shutil.copy2(REPO / name, root / name)
    (root / "grading").mkdir()
    shutil.copy2(REPO / "grading" / "nbgrader_config.py", root / "grading" / "nbgrader_config.py")
    lab_settings = Path(".jupyter", "labconfig", "default_setting_overrides.json")   # double-click opens a notebook
    (root / lab_settings).parent.mkdir(parents=True)
    shutil.copy2(REPO / lab_settings, root / lab_settings)
    files = {
        "modules/01_alpha/module.yaml": ALPHA_YAML,
        ALPHA_SRC: ALPHA_SOURCE,
        "modules/02_beta/module.yaml": BETA_YAML,
        BETA_SRC: BETA_SOURCE,
        "tests/modules/01_alpha/test_alpha.py": ALPHA_PACKAGE_TESTS,
        "tests/modules/02_beta/test_beta.py": BETA_PACKAGE_TESTS,
    }
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root
