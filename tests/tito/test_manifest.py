"""Module discovery from modules/*/module.yaml and module name resolution."""

from __future__ import annotations

import pytest

import toy
from tito_support import run_tito, tree_digest


def test_module_list_shows_every_manifest(toy_template):
    result = run_tito(toy_template, "module", "list")
    assert result.returncode == 0, str(result)
    rows = [line for line in result.stdout.splitlines() if "tinytorch.core." in line]
    assert len(rows) == 2, str(result)
    assert "01_alpha" in rows[0] and "tinytorch.core.alpha" in rows[0] and "Alpha: doubling and squaring" in rows[0]
    assert "02_beta" in rows[1] and "tinytorch.core.beta" in rows[1] and "01_alpha" in rows[1].split("tinytorch.core.beta")[1]
    assert "0 of 2 modules completed" in result.stdout


@pytest.mark.parametrize("name", ["1", "01_alpha", "alpha"])
def test_export_accepts_number_folder_and_slug(toy_ws, name):
    result = run_tito(toy_ws, "export", name)
    assert result.returncode == 0, str(result)
    assert set(tree_digest(toy_ws / "tinytorch")) == {"__init__.py", "core/__init__.py", "core/alpha.py"}


def test_unknown_module_suggests_the_closest_name(toy_template):
    result = run_tito(toy_template, "export", "alhpa")
    assert result.returncode != 0
    assert "unknown module 'alhpa'" in result.stderr and "did you mean alpha?" in result.stderr, str(result)
    assert not (toy_template / "tinytorch").exists()


def test_two_modules_with_the_same_number_are_an_error(toy_ws):
    clone = toy_ws / "modules" / "01_gamma"
    clone.mkdir()
    (clone / "module.yaml").write_text(toy.ALPHA_YAML.replace("slug: alpha", "slug: gamma")
                                       .replace("core.alpha", "core.gamma"))
    (clone / "gamma_dev.py").write_text(toy.ALPHA_SOURCE.replace("core.alpha", "core.gamma"))
    result = run_tito(toy_ws, "module", "list")
    assert result.returncode != 0
    assert "modules 01_alpha and 01_gamma share number 1" in result.stderr, str(result)
