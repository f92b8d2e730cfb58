"""Exporting an unchanged module skips the work (no jupytext, nbformat or nbdev import), and the
skip never hides a change: an edited source, a damaged or deleted export, an edited module.yaml."""

from __future__ import annotations

import subprocess
import sys

import toy
from tito_support import edit, run_tito

HEAVY = ("jupytext", "nbformat", "nbdev", "nbgrader")


def _imported(workspace, *args) -> set[str]:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "tito", *args], cwd=workspace,
                          capture_output=True, text=True, env={"PYTHONPATH": str(workspace), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if line.startswith("import time:")}


def test_exporting_an_unchanged_module_imports_no_notebook_library(exported_ws):
    assert run_tito(exported_ws, "export", "01_alpha").returncode == 0      # fills the cache
    imported = _imported(exported_ws, "export", "01_alpha")
    assert not imported & set(HEAVY), imported & set(HEAVY)


def test_a_changed_source_is_exported_again(exported_ws):
    run_tito(exported_ws, "export", "01_alpha")
    edit(exported_ws / toy.ALPHA_SRC, toy.ALPHA_SOLUTION_DOUBLE, "return x + x  # alpha-double-solution")
    result = run_tito(exported_ws, "export", "01_alpha")
    assert "(updated)" in result.stdout, str(result)
    assert "return x + x" in (exported_ws / "tinytorch/core/alpha.py").read_text()


def test_a_damaged_or_deleted_export_is_rewritten(exported_ws):
    run_tito(exported_ws, "export", "01_alpha")
    exported = exported_ws / "tinytorch/core/alpha.py"
    good = exported.read_text()
    exported.write_text(good + "\n# edited by hand\n")
    check = run_tito(exported_ws, "export", "--all", "--check")
    assert check.returncode == 1 and "01_alpha" in check.stdout and "OUT OF SYNC" in check.stdout, str(check)
    assert run_tito(exported_ws, "export", "01_alpha").returncode == 0
    assert exported.read_text() == good
    exported.unlink()
    assert "(updated)" in run_tito(exported_ws, "export", "01_alpha").stdout
    assert exported.read_text() == good


def test_an_edited_manifest_is_checked_again(exported_ws):
    run_tito(exported_ws, "export", "02_beta")
    edit(exported_ws / "modules/02_beta/module.yaml", "prerequisites: [01_alpha]", "prerequisites: []")
    result = run_tito(exported_ws, "export", "02_beta")
    assert result.returncode == 1 and "01_alpha" in result.stderr, str(result)
