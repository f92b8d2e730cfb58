"""Taking in submissions as an LMS hands them over: `<student_id>.ipynb`, `<student_id>.zip` or a folder.

Uploads are hostile input. Each notebook is matched to a module by its nbgrader grade_ids
(students rename files; they rarely rename cells). Anything that cannot be placed is reported
with the reason and skipped, and the batch goes on: broken, encrypted or oddly compressed zips,
zip bombs (sizes and counts are bounded while reading, before anything is kept), JSON that is
not a notebook, nbgrader metadata of the wrong shape, symbolic links (never followed: a link to
the instructor's source is not a submission), and an upload holding two notebooks for one module
(refused, naming both: which one the student meant is theirs to say, not ours to guess).
The original bytes are kept under grading/originals/; what nbgrader grades is a normalised copy.
"""

from __future__ import annotations

import json
import os
import re
import stat
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import nbformat

from tito.core.course import Course, notebook_name, place_submission
from tito.core.manifest import Module
from tito.core.source import read_source

STUDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_NOTEBOOK_BYTES = 64 * 2**20      # one notebook, as stored or as expanded from a zip
MAX_UPLOAD_BYTES = 256 * 2**20       # all notebooks of one upload together, expanded
MAX_ENTRIES = 10_000                 # files in one zip or one student folder
ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
CELL_TYPES = {"code", "markdown", "raw"}


@dataclass
class Placed:
    student: str
    module: str
    notes: list[str]


@dataclass
class Rejected:
    item: str
    reason: str


class Unusable(Exception):
    """This upload (or this notebook of it) cannot be collected; the message says why."""


def _read_regular_file(path: Path, limit: int) -> bytes:
    """The bytes of a regular file, never through a symbolic link, at most limit bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise Unusable("a symbolic link (links are never followed)" if os.path.islink(path)
                       else f"unreadable ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise Unusable("not a regular file")
        if info.st_size > limit:
            raise Unusable(f"{info.st_size} bytes, more than the {limit // 2**20} MiB a notebook may have")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise Unusable(f"more than the {limit // 2**20} MiB a notebook may have")
    return data


def _folder_notebooks(folder: Path, skipped: list[Rejected], label: str) -> list[tuple[str, bytes]]:
    found, seen, total = [], 0, 0
    for current, dirs, files in os.walk(folder, followlinks=False):
        for name in sorted(dirs):
            if os.path.islink(os.path.join(current, name)):
                skipped.append(Rejected(f"{label}/{Path(current, name).relative_to(folder)}",
                                        "a symbolic link (links are never followed)"))
        dirs[:] = sorted(d for d in dirs if d != ".ipynb_checkpoints" and not d.startswith(".")
                         and not os.path.islink(os.path.join(current, d)))
        for name in sorted(files):
            seen += 1
            if seen > MAX_ENTRIES:
                raise Unusable(f"more than {MAX_ENTRIES} files")
            if not name.endswith(".ipynb"):
                continue
            path = Path(current, name)
            relative = str(path.relative_to(folder))
            try:
                data = _read_regular_file(path, MAX_NOTEBOOK_BYTES)
            except Unusable as exc:
                skipped.append(Rejected(f"{label}/{relative}", str(exc)))
                continue
            total += len(data)
            if total > MAX_UPLOAD_BYTES:
                raise Unusable(f"its notebooks hold more than {MAX_UPLOAD_BYTES // 2**20} MiB")
            found.append((relative, data))
    return found


def _zip_notebooks(item: Path, skipped: list[Rejected]) -> list[tuple[str, bytes]]:
    """Every notebook in a zip, read with bounded sizes: declared sizes are checked first, and the
    expansion itself is cut off at the bound (a bomb's declared sizes may lie)."""
    try:
        archive = zipfile.ZipFile(_read_zip_handle(item))
    except zipfile.BadZipFile:
        raise Unusable("not a valid zip file") from None
    except (OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise Unusable(f"not a readable zip file ({type(exc).__name__})") from None
    with archive:
        entries = archive.infolist()
        if len(entries) > MAX_ENTRIES:
            raise Unusable(f"a zip of {len(entries)} entries (at most {MAX_ENTRIES})")
        found, total = [], 0
        for info in sorted(entries, key=lambda i: i.filename):
            name = info.filename
            if not name.endswith(".ipynb") or ".ipynb_checkpoints" in name or name.startswith("__MACOSX"):
                continue
            label = f"{item.name}:{name}"
            if stat.S_ISLNK(info.external_attr >> 16):
                skipped.append(Rejected(label, "a symbolic link (links are never followed)"))
                continue
            if info.flag_bits & 0x1:
                raise Unusable(f"{name} is encrypted; ask for an unencrypted zip")
            if info.compress_type not in ZIP_METHODS:
                raise Unusable(f"{name} uses an unsupported compression (method {info.compress_type}); "
                               "ask for a plain (deflate) zip")
            if info.file_size > MAX_NOTEBOOK_BYTES:
                raise Unusable(f"{name} expands to {info.file_size} bytes (at most {MAX_NOTEBOOK_BYTES // 2**20} MiB)")
            try:
                with archive.open(info) as member:
                    data = member.read(MAX_NOTEBOOK_BYTES + 1)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, RuntimeError) as exc:
                raise Unusable(f"{name} cannot be extracted ({type(exc).__name__}: {str(exc)[:80]})") from None
            except Exception as exc:  # zlib / lzma / bz2 errors on corrupt data: a bad upload, never a crash
                raise Unusable(f"{name} cannot be extracted ({type(exc).__name__})") from None
            if len(data) > MAX_NOTEBOOK_BYTES:
                raise Unusable(f"{name} expands to more than {MAX_NOTEBOOK_BYTES // 2**20} MiB (a zip bomb?)")
            total += len(data)
            if total > MAX_UPLOAD_BYTES:
                raise Unusable(f"its notebooks expand to more than {MAX_UPLOAD_BYTES // 2**20} MiB (a zip bomb?)")
            found.append((name, data))
    return found


def _read_zip_handle(item: Path):
    fd = os.open(item, os.O_RDONLY | os.O_NOFOLLOW)
    return os.fdopen(fd, "rb")


def _notebooks_in(item: Path, skipped: list[Rejected]) -> list[tuple[str, bytes]]:
    """(name, bytes) of every .ipynb in a file, a zip or a folder; never through a link."""
    if os.path.islink(item):
        raise Unusable("a symbolic link (links are never followed)")
    if item.is_dir():
        return _folder_notebooks(item, skipped, item.name)
    if item.suffix == ".zip":
        return _zip_notebooks(item, skipped)
    return [(item.name, _read_regular_file(item, MAX_NOTEBOOK_BYTES))]


def _check_shape(raw) -> None:
    """What the rest of the pipeline relies on, checked before nbformat or nbgrader see it."""
    if not isinstance(raw, dict):
        raise Unusable(f"not a notebook (its JSON is a {type(raw).__name__}, not an object)")
    if not isinstance(raw.get("cells"), list):
        raise Unusable("not a notebook (no list of cells)")
    if not isinstance(raw.get("nbformat"), int) or raw["nbformat"] < 4:
        raise Unusable("not a version 4 notebook (nbformat field missing or older)")
    if not isinstance(raw.get("metadata", {}), dict):
        raise Unusable("not a notebook (its metadata is not an object)")
    for number, cell in enumerate(raw["cells"], start=1):
        if not isinstance(cell, dict):
            raise Unusable(f"cell {number} is not an object")
        if cell.get("cell_type") not in CELL_TYPES:
            raise Unusable(f"cell {number} has no valid cell_type")
        source = cell.get("source", "")
        if not (isinstance(source, str) or (isinstance(source, list) and all(isinstance(s, str) for s in source))):
            raise Unusable(f"cell {number}: source is neither text nor a list of lines")
        metadata = cell.get("metadata", {})
        if not isinstance(metadata, dict):
            raise Unusable(f"cell {number}: metadata is not an object")
        grading = metadata.get("nbgrader")
        if grading is None:
            continue
        if not isinstance(grading, dict):
            raise Unusable(f"cell {number}: nbgrader metadata is a {type(grading).__name__}, not an object")
        if "grade_id" in grading and not isinstance(grading["grade_id"], str):
            raise Unusable(f"cell {number}: nbgrader grade_id is not text")
        for flag in ("grade", "solution", "locked", "task"):
            if flag in grading and not isinstance(grading[flag], bool):
                raise Unusable(f"cell {number}: nbgrader {flag!r} is not true/false")
        if "points" in grading and (isinstance(grading["points"], bool) or not isinstance(grading["points"], (int, float))):
            raise Unusable(f"cell {number}: nbgrader points is not a number")


def parse_notebook(data: bytes):
    """A notebook node from an upload's bytes, or Unusable with the reason."""
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise Unusable(f"not a valid notebook ({str(exc)[:80]}); ask the student to resubmit") from None
    _check_shape(raw)
    for cell in raw["cells"]:
        if cell["cell_type"] == "code":        # grading never reads outputs: an odd one must not cost the upload
            cell["outputs"], cell["execution_count"] = [], None
    try:
        notebook = nbformat.reads(json.dumps(raw), as_version=4)
        nbformat.validate(notebook)
    except Exception as exc:  # nbformat / jsonschema on a notebook-shaped oddity: a bad upload, not a crash
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise Unusable(f"not a valid notebook ({first[:120]}); ask the student to resubmit") from None
    return notebook


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


def _label(item: Path, name: str) -> str:
    return item.name if item.is_file() and item.suffix == ".ipynb" and not os.path.islink(item) else f"{item.name}:{name}"


def collect(course: Course, folder: Path, modules: list[Module], force: bool) -> tuple[list[Placed], list[Rejected]]:
    placed, rejected = [], []
    ids = module_grade_ids(modules)
    timestamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f %Z")
    items = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    # Student ids are case-insensitive (LMS logins are): ALICE.zip is alice's upload. Two uploads
    # whose names differ only in case are ambiguous, so neither is collected.
    spellings: dict[str, list[str]] = {}
    for item in items:
        if item.is_dir() or item.suffix in (".ipynb", ".zip"):
            spellings.setdefault((item.stem if item.is_file() else item.name).lower(), []).append(item.name)
    for item in items:
        if os.path.islink(item):
            rejected.append(Rejected(item.name, "a symbolic link (links are never followed)"))
            continue
        is_file = item.is_file()
        student = (item.stem if is_file else item.name).lower()
        if len(spellings.get(student, ())) > 1:
            rejected.append(Rejected(item.name, f"{' and '.join(spellings[student])} are both uploads of student {student!r} "
                                                "(ids ignore case); none was collected: keep the one to grade"))
            continue
        if is_file and item.suffix not in (".ipynb", ".zip"):
            rejected.append(Rejected(item.name, "not a .ipynb or .zip file"))
            continue
        if not STUDENT_ID.fullmatch(student):
            rejected.append(Rejected(item.name, f"{student!r} is not a usable student id (letters, digits, . _ -)"))
            continue
        try:
            notebooks = _notebooks_in(item, rejected)
        except Unusable as exc:
            rejected.append(Rejected(item.name, str(exc)))
            continue
        if not notebooks:
            rejected.append(Rejected(item.name, "contains no .ipynb notebook"))
        by_module: dict[str, list[tuple[str, bytes, object, Module]]] = {}
        for name, data in notebooks:
            try:
                notebook = parse_notebook(data)
            except Unusable as exc:
                rejected.append(Rejected(_label(item, name), str(exc)))
                continue
            module = identify(notebook, modules, ids)
            if module is None:
                rejected.append(Rejected(_label(item, name), "matches no module (no known grade_id in its cells)"))
                continue
            by_module.setdefault(module.name, []).append((name, data, notebook, module))
        for module_name, candidates in sorted(by_module.items()):
            if len(candidates) > 1:
                names = ", ".join(name for name, *_ in candidates)
                rejected.append(Rejected(item.name, f"holds {len(candidates)} notebooks for {module_name} ({names}); "
                                                    "none was collected: ask the student which one to grade, "
                                                    "and collect an upload with only that one"))
                continue
            name, data, notebook, module = candidates[0]
            label = _label(item, name)
            target = course.submission_dir(student, module) / notebook_name(module)
            if target.exists() and not force:
                rejected.append(Rejected(label, f"{student}/{module.name} already collected; use --force to replace it"))
                continue
            if target.exists():
                # Replaced with --force: the old grade no longer describes this submission, so
                # the next autograde grades it again instead of skipping it as done.
                course.autograded_notebook(student, module).unlink(missing_ok=True)
            notes = normalise(notebook)
            original = course.root / "originals" / student / module.name / Path(name).name
            original.parent.mkdir(parents=True, exist_ok=True)
            original.write_bytes(data)
            staged = original.with_name(f".normalised-{notebook_name(module)}")
            nbformat.write(notebook, staged)
            place_submission(course, student, module, staged, timestamp)
            staged.unlink()
            placed.append(Placed(student, module.name, notes))
    return placed, rejected
