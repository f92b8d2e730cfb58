"""Taking in submissions as an LMS hands them over: `<student_id>.ipynb` or `<student_id>.zip`.

Each notebook is matched to a module by its nbgrader grade_ids (students rename files; they rarely
rename cells). Anything that cannot be placed is reported with the reason, and the batch goes on.
The original bytes are kept under grading/originals/; what nbgrader grades is a normalised copy.
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import nbformat

from tito.core.course import Course, notebook_name, place_submission
from tito.core.manifest import Module
from tito.core.source import read_source

STUDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass
class Placed:
    student: str
    module: str
    notes: list[str]


@dataclass
class Rejected:
    item: str
    reason: str


def _notebooks_in(item: Path) -> list[tuple[str, bytes]]:
    """(name, bytes) of every .ipynb in a file, a zip or a folder."""
    if item.is_dir():
        return [(p.name, p.read_bytes()) for p in sorted(item.rglob("*.ipynb")) if ".ipynb_checkpoints" not in p.parts]
    if item.suffix == ".zip":
        with zipfile.ZipFile(item) as archive:
            return [(Path(n).name, archive.read(n)) for n in sorted(archive.namelist())
                    if n.endswith(".ipynb") and ".ipynb_checkpoints" not in n and not n.startswith("__MACOSX")]
    return [(item.name, item.read_bytes())]


def module_grade_ids(modules: list[Module]) -> dict[str, set[str]]:
    return {m.name: {c.metadata["nbgrader"]["grade_id"] for c in read_source(m).nbgrader_cells()} for m in modules}


def identify(notebook, modules: list[Module], ids: dict[str, set[str]]) -> Module | None:
    found = {c.metadata.get("nbgrader", {}).get("grade_id") for c in notebook.cells} - {None}
    best = max(modules, key=lambda m: len(found & ids[m.name]), default=None)
    return best if best is not None and found & ids[best.name] else None


def normalise(notebook) -> list[str]:
    """Demote copied cells that repeat a grade_id (nbgrader would reject the whole notebook)."""
    notes, seen = [], set()
    for index, cell in enumerate(notebook.cells):
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id is None:
            continue
        if grade_id in seen:
            del cell.metadata["nbgrader"]
            notes.append(f"cell {index + 1} repeated grade_id {grade_id!r}; the copy was graded as a plain cell")
        seen.add(grade_id)
    return notes


def collect(course: Course, folder: Path, modules: list[Module], force: bool) -> tuple[list[Placed], list[Rejected]]:
    placed, rejected = [], []
    ids = module_grade_ids(modules)
    timestamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f %Z")
    items = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    for item in items:
        student = item.stem if item.is_file() else item.name
        if item.is_file() and item.suffix not in (".ipynb", ".zip"):
            rejected.append(Rejected(item.name, "not a .ipynb or .zip file"))
            continue
        if not STUDENT_ID.fullmatch(student):
            rejected.append(Rejected(item.name, f"{student!r} is not a usable student id (letters, digits, . _ -)"))
            continue
        try:
            notebooks = _notebooks_in(item)
        except zipfile.BadZipFile:
            rejected.append(Rejected(item.name, "not a valid zip file"))
            continue
        if not notebooks:
            rejected.append(Rejected(item.name, "contains no .ipynb notebook"))
        for name, data in notebooks:
            label = f"{item.name}:{name}" if item.suffix == ".zip" or item.is_dir() else item.name
            try:
                notebook = nbformat.reads(data.decode("utf-8"), as_version=4)
            except (UnicodeDecodeError, json.JSONDecodeError, nbformat.reader.NotJSONError) as exc:
                rejected.append(Rejected(label, f"not a valid notebook ({str(exc)[:80]}); ask the student to resubmit"))
                continue
            module = identify(notebook, modules, ids)
            if module is None:
                rejected.append(Rejected(label, "matches no module (no known grade_id in its cells)"))
                continue
            target = course.submission_dir(student, module) / notebook_name(module)
            if target.exists() and not force:
                rejected.append(Rejected(label, f"{student}/{module.name} already collected; use --force to replace it"))
                continue
            if target.exists():
                # Replaced with --force: the old grade no longer describes this submission, so
                # the next autograde grades it again instead of skipping it as done.
                course.autograded_notebook(student, module).unlink(missing_ok=True)
            notes = normalise(notebook)
            original = course.root / "originals" / student / module.name / name
            original.parent.mkdir(parents=True, exist_ok=True)
            original.write_bytes(data)
            staged = original.with_name(f".normalised-{notebook_name(module)}")
            nbformat.write(notebook, staged)
            place_submission(course, student, module, staged, timestamp)
            staged.unlink()
            placed.append(Placed(student, module.name, notes))
    return placed, rejected

