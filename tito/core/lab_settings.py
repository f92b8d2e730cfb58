"""JupyterLab's default viewer for module sources: the workspace's settings, and what JupyterLab will use.

The workspace carries `.jupyter/labconfig/default_setting_overrides.json` (JupyterLab's documented
place for shipped defaults, read from every Jupyter config directory). `make install` copies it into
the environment's own config directory (`.venv/etc/jupyter/labconfig/`), so a plain `jupyter lab`
started from that environment opens `*_dev.py` with the Jupytext Notebook viewer on a double click,
whatever the student's home holds, unless the student chose another viewer in the Settings Editor
(doctor says so).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from tito.core.workspace import Workspace

SETTINGS_FILE = Path(".jupyter") / "labconfig" / "default_setting_overrides.json"
DOCMANAGER = "@jupyterlab/docmanager-extension:plugin"
NOTEBOOK_VIEWER = "Jupytext Notebook"     # the widget factory jupytext's lab extension registers


def workspace_viewer(ws: Workspace) -> str | None:
    """The viewer the workspace's settings file asks for Python files (None if there is no such file)."""
    path = ws.root / SETTINGS_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None
    return data.get(DOCMANAGER, {}).get("defaultViewers", {}).get("python")


def installed_copy() -> Path:
    """Where `make install` puts the workspace's file: this Python environment's Jupyter config."""
    return Path(sys.prefix) / "etc" / "jupyter" / SETTINGS_FILE.relative_to(".jupyter")


def effective_viewer() -> tuple[str | None, str]:
    """(viewer JupyterLab of this environment opens a .py file with on a double click, where it comes from).

    Computed with jupyterlab_server's own settings code: schema defaults, then every
    labconfig/default_setting_overrides.json and overrides.json, then the user's own settings.
    """
    from jupyter_core.paths import jupyter_path
    from jupyterlab.commands import get_app_dir
    from jupyterlab.labapp import get_user_settings_dir
    from jupyterlab_server.settings_utils import get_settings

    app_dir = get_app_dir()
    user_dir = get_user_settings_dir()
    result, _ = get_settings(os.path.join(app_dir, "settings"), os.path.join(app_dir, "schemas"), user_dir,
                             schema_name=DOCMANAGER, labextensions_path=jupyter_path("labextensions"))
    user_choice = (result.get("settings") or {}).get("defaultViewers")
    if user_choice is not None:
        user_file = Path(user_dir) / "@jupyterlab" / "docmanager-extension" / "plugin.jupyterlab-settings"
        return user_choice.get("python"), f"your own setting in {user_file}"
    default = result["schema"]["properties"]["defaultViewers"].get("default", {})
    return default.get("python"), "the installed defaults"


def doctor_check(ws: Workspace) -> tuple[bool, str]:
    """(ok, detail) for `tito system doctor`: a double click on a module source opens a notebook."""
    wanted = workspace_viewer(ws)
    if wanted != NOTEBOOK_VIEWER:
        return False, (f"{SETTINGS_FILE} is missing or does not set python -> {NOTEBOOK_VIEWER!r}; "
                       "restore it from the course repository")
    viewer, origin = effective_viewer()
    if viewer == NOTEBOOK_VIEWER:
        return True, f"double-click opens *_dev.py as a notebook ({NOTEBOOK_VIEWER}, {SETTINGS_FILE})"
    if origin.startswith("your own"):
        return False, (f"double-click opens .py files with {viewer or 'the text editor'!r} because of {origin}; "
                       f"set Document Manager > Default Viewers > python to {NOTEBOOK_VIEWER!r} or delete that entry")
    return False, (f"double-click opens .py files in the text editor: {installed_copy()} is missing; run `make install`")
