"""A scratch course for the grading tests: module 02 (and its prerequisite 01) with short limits."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[2]
GRADED = "02_activations"   # the module these tests grade (small, one class per graded test)


def _modules_needed():
    """The graded module and its prerequisites, as the module.yaml files say."""
    from tito.core.manifest import discover, resolve, transitive_prerequisites
    from tito.core.workspace import Workspace

    ws = Workspace(REPO)
    graded = resolve(ws, GRADED)
    needed = transitive_prerequisites(ws, graded) | {graded.name}
    return [m for m in discover(ws) if m.name in needed]


LIMITS = {"cell_timeout": "6", "submission_timeout": "90", "memory_mb": "2048", "max_processes": "64"}


def make_workspace(root: Path) -> Path:
    root.mkdir(parents=True)
    shutil.copy2(REPO / "pyproject.toml", root / "pyproject.toml")
    settings = configparser.ConfigParser()
    settings.read(REPO / "settings.ini")
    for key, value in LIMITS.items():
        settings["grading"][key] = value
    with open(root / "settings.ini", "w") as handle:
        settings.write(handle)
    modules = _modules_needed()
    for name in (m.name for m in modules):
        shutil.copytree(REPO / "modules" / name, root / "modules" / name, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(REPO / "tests" / "modules" / name, root / "tests" / "modules" / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    package = root / "tinytorch"
    exported = [REPO / m.export_path for m in modules]
    for path in [*(REPO / "tinytorch").rglob("__init__.py"), *exported]:
        (package / path.relative_to(REPO / "tinytorch")).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, package / path.relative_to(REPO / "tinytorch"))
    (root / "grading").mkdir()
    shutil.copy2(REPO / "grading" / "nbgrader_config.py", root / "grading" / "nbgrader_config.py")
    return root


def tito(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    env.pop("TITO_ROOT", None)
    proc = subprocess.run([sys.executable, "-m", "tito", *args], cwd=root, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"tito {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def released_notebooks(root: Path):
    release = nbformat.read(root / "grading/release/02_activations/activations_dev.ipynb", as_version=4)
    solution = nbformat.read(root / "grading/source/02_activations/activations_dev.ipynb", as_version=4)
    return release, solution


def gradebook_scores(root: Path) -> dict[tuple[str, str], float]:
    """(student, grade_id) -> auto_score, read straight from nbgrader's SQLite gradebook."""
    from nbgrader.api import Gradebook

    scores = {}
    with Gradebook(f"sqlite:///{root / 'grading' / 'gradebook.db'}") as gb:
        for student in gb.students:
            for submission in student.submissions:
                for notebook in submission.notebooks:
                    for grade in notebook.grades:
                        scores[(student.id, grade.name)] = grade.auto_score
    return scores


