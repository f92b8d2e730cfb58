"""The student's progress, kept in the workspace (settings.ini [paths] progress), written atomically."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import datetime, timezone

from tito.core.manifest import Module
from tito.core.workspace import Workspace


def load(ws: Workspace) -> dict:
    path = ws.path("progress")
    if not path.exists():
        return {"completed": {}}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        # A damaged progress file must not block work; completing a module again rewrites it.
        return {"completed": {}}


def record_completion(ws: Workspace, module: Module, source_bytes: bytes) -> None:
    data = load(ws)
    data["completed"][module.name] = {
        "completed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source_sha256": hashlib.sha256(source_bytes).hexdigest(),
    }
    path = ws.path("progress")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
    os.replace(tmp, path)


def completed(ws: Workspace) -> dict[str, dict]:
    return load(ws)["completed"]
