"""What a `tito mutate` report depends on, as one digest, so `tito mutate --all` grades only what changed.

A module's verdicts can change only when one of these does: its own folder (the source, module.yaml,
shipped data), the folders of the modules it builds on (their exports are its prerequisite package),
the grader (all of tito), the grading limits (settings.ini), the pinned dependencies (pyproject.toml),
or the run's options. A stored report whose digest equals the current one is therefore the report a
new run would write (up to timing noise near a limit), and is reused; any other byte means a new run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tito.core.manifest import Module, discover, transitive_prerequisites
from tito.core.workspace import Workspace

SKIPPED_PARTS = {"__pycache__", ".ipynb_checkpoints"}


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not SKIPPED_PARTS & set(p.parts))


def inputs_digest(ws: Workspace, module: Module, options: dict) -> str:
    import tito

    by_name = {m.name: m for m in discover(ws)}
    folders = [by_name[name].folder for name in sorted(transitive_prerequisites(ws, module) | {module.name})]
    files = [f for folder in folders for f in _files(folder)] + _files(Path(tito.__file__).parent)
    files += [ws.root / name for name in ("settings.ini", "pyproject.toml") if (ws.root / name).is_file()]
    digest = hashlib.sha256(json.dumps(options, sort_keys=True).encode())
    for path in files:
        name = str(path.relative_to(ws.root)) if path.is_relative_to(ws.root) else f"tito/{path.relative_to(Path(tito.__file__).parent)}"
        digest.update(f"\0{name}\0{path.stat().st_size}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()
