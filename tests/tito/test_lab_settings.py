"""A double click opens a module source as a notebook: the workspace's JupyterLab settings, and
`tito system doctor` checking what JupyterLab of this environment will really do."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tito_support import REPO, run_tito

SETTINGS = REPO / ".jupyter" / "labconfig" / "default_setting_overrides.json"


def _doctor_line(result, name: str) -> str:
    return next(line for line in result.stdout.splitlines() if name in line)


def test_the_workspace_makes_python_files_open_with_the_jupytext_notebook_viewer():
    settings = json.loads(SETTINGS.read_text())
    assert settings["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]["python"] == "Jupytext Notebook"


def test_make_install_puts_the_settings_where_jupyterlab_reads_shipped_defaults(tmp_path):
    plan = subprocess.run(["make", "-n", f"VENV={tmp_path}", "install"], cwd=REPO, capture_output=True, text=True)
    target = f"{tmp_path}/etc/jupyter/labconfig/default_setting_overrides.json"
    assert f"cp .jupyter/labconfig/default_setting_overrides.json {target}" in plan.stdout, plan.stdout + plan.stderr


def test_this_environment_holds_the_workspace_settings():
    installed = os.path.join(sys.prefix, "etc", "jupyter", "labconfig", "default_setting_overrides.json")
    assert open(installed).read() == SETTINGS.read_text(), "run `make install`"


def test_doctor_says_ok_when_jupyterlab_opens_sources_as_notebooks():
    result = run_tito(REPO, "system", "doctor")
    line = _doctor_line(result, "default viewer")
    assert line.startswith("OK ") and "Jupytext Notebook" in line, str(result)


def test_doctor_flags_a_workspace_without_the_settings(toy_ws):
    (toy_ws / ".jupyter" / "labconfig" / "default_setting_overrides.json").unlink()
    result = run_tito(toy_ws, "system", "doctor")
    line = _doctor_line(result, "default viewer")
    assert line.startswith("FIX ") and "default_setting_overrides.json is missing" in line, str(result)


def test_doctor_flags_a_students_own_setting_that_opens_the_text_editor(tmp_path):
    """JupyterLab's user settings win over shipped defaults: doctor must read them as JupyterLab does."""
    user = tmp_path / "lab-user-settings" / "@jupyterlab" / "docmanager-extension" / "plugin.jupyterlab-settings"
    user.parent.mkdir(parents=True)
    user.write_text(json.dumps({"defaultViewers": {"python": "Editor"}}))
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "lab-user-settings"), NO_COLOR="1")
    result = subprocess.run([sys.executable, "-m", "tito", "system", "doctor"], cwd=REPO, env=env,
                            capture_output=True, text=True)
    line = _doctor_line(result, "default viewer")
    assert line.startswith("FIX ") and "'Editor'" in line and str(user) in line.replace("\n", ""), result.stdout
    assert result.returncode == 1
