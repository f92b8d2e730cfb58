"""`tito nbgrader collect` on hostile uploads: each bad one is skipped with its reason, the rest collected.

One folder holds every kind of bad upload, sorted before an honest one: the honest upload must be
collected (the batch goes on) and each bad one must be named in the report with why.
"""

from __future__ import annotations

import copy
import json
import os
import struct
import subprocess
import sys
import zipfile

import nbformat
import pytest

from grading_course import released_notebooks

BOMB_BYTES = 1024 * 2**20       # what the zip bomb expands to (1 GiB of zeros, about 1 MB compressed)


def _zip(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _patch_headers(path, offset_local: int, offset_central: int, change) -> None:
    """Rewrite a 2-byte field in every local and central header of a zip (flags, compression method)."""
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", offset_local), (b"PK\x01\x02", offset_central)):
        start = data.find(signature)
        while start != -1:
            struct.pack_into("<H", data, start + offset, change(struct.unpack_from("<H", data, start + offset)[0]))
            start = data.find(signature, start + 4)
    path.write_bytes(bytes(data))


def _bomb(path) -> None:
    """A zip whose one notebook entry inflates to BOMB_BYTES, written without holding them in memory."""
    chunk = b"0" * 2**20
    with zipfile.ZipFile(path, "w") as archive:
        info = zipfile.ZipInfo("activations_dev.ipynb")
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w", force_zip64=True) as member:
            for _ in range(BOMB_BYTES // len(chunk)):
                member.write(chunk)


@pytest.fixture(scope="module")
def collected(tmp_path_factory, released_course):
    import shutil

    root = tmp_path_factory.mktemp("intake") / "course"
    shutil.copytree(released_course, root)
    release, solution = released_notebooks(root)
    good = nbformat.writes(solution).encode()
    blank = nbformat.writes(release).encode()
    uploads = root.parent / "uploads"
    uploads.mkdir()
    (uploads / "a-list.ipynb").write_text("[]")
    (uploads / "a-dict-cells.ipynb").write_text(json.dumps({"cells": {}, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    (uploads / "a-not-a-notebook.ipynb").write_text(json.dumps({"a": 1}))
    wrong_meta = copy.deepcopy(release)
    next(c for c in wrong_meta.cells if "nbgrader" in c.metadata).metadata["nbgrader"] = "graded please"
    (uploads / "a-metadata-text.ipynb").write_text(json.dumps(wrong_meta))
    wrong_id = copy.deepcopy(release)
    next(c for c in wrong_id.cells if "nbgrader" in c.metadata).metadata["nbgrader"]["grade_id"] = ["x"]
    (uploads / "a-grade-id-list.ipynb").write_text(json.dumps(wrong_id))
    _zip(uploads / "b-encrypted.zip", {"activations_dev.ipynb": good})
    _patch_headers(uploads / "b-encrypted.zip", 6, 8, lambda flags: flags | 0x1)
    _zip(uploads / "b-compression.zip", {"activations_dev.ipynb": good})
    _patch_headers(uploads / "b-compression.zip", 8, 10, lambda method: 99)
    (uploads / "b-truncated.zip").write_bytes((root.parent / "uploads" / "b-compression.zip").read_bytes()[:200])
    _bomb(uploads / "c-bomb.zip")
    with zipfile.ZipFile(uploads / "c-many.zip", "w") as archive:
        for i in range(10_001):
            archive.writestr(f"f{i}.txt", b"")
    _zip(uploads / "d-two-notebooks.zip", {"final/activations_dev.ipynb": good, "old/activations_dev (1).ipynb": blank})
    source = root / "grading/source/02_activations/activations_dev.ipynb"
    (uploads / "e-linked").mkdir()
    (uploads / "e-linked" / "activations_dev.ipynb").symlink_to(source)
    (uploads / "e-linked-file.ipynb").symlink_to(source)
    (uploads / "e-linked-folder").symlink_to(source.parent)
    with zipfile.ZipFile(uploads / "e-zip-link.zip", "w") as archive:
        info = zipfile.ZipInfo("activations_dev.ipynb")
        info.external_attr = (0o120777 << 16)
        archive.writestr(info, str(source))
    (uploads / "z-honest.ipynb").write_bytes(good)
    # The collect runs under a parent that reports its peak memory: a bomb must not be expanded.
    meter = "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; " \
            "print('PEAK_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)"
    env = {**os.environ, "PYTHONPATH": str(root)}
    env.pop("TITO_ROOT", None)
    proc = subprocess.run([sys.executable, "-c", meter, sys.executable, "-m", "tito", "nbgrader", "collect", str(uploads)],
                          cwd=root, env=env, capture_output=True, text=True)
    return {"root": root, "proc": proc, "out": proc.stdout, "source": source}


def _line(collected, item: str) -> str:
    lines = [line for line in collected["out"].splitlines() if line.startswith(f"not collected {item}")]
    assert lines, f"{item} is not reported:\n{collected['out']}\n{collected['proc'].stderr[-3000:]}"
    return " ".join(lines)


def test_the_batch_goes_on_past_every_bad_upload(collected):
    assert "Traceback" not in collected["proc"].stderr, collected["proc"].stderr[-3000:]
    assert "collected z-honest/02_activations" in collected["out"]
    assert sorted(p.name for p in (collected["root"] / "grading/submitted").iterdir()) == ["z-honest"]


@pytest.mark.parametrize("item, reason", [
    ("a-list.ipynb", "is a list"),
    ("a-dict-cells.ipynb", "no list of cells"),
    ("a-not-a-notebook.ipynb", "no list of cells"),
    ("a-metadata-text.ipynb", "nbgrader metadata is a str"),
    ("a-grade-id-list.ipynb", "grade_id is not text"),
    ("b-encrypted.zip", "encrypted"),
    ("b-compression.zip", "unsupported compression"),
    ("b-truncated.zip", "not a valid zip"),
    ("c-bomb.zip", "expands to"),
    ("c-many.zip", "entries"),
    ("d-two-notebooks.zip", "final/activations_dev.ipynb, old/activations_dev (1).ipynb"),
    ("e-linked/activations_dev.ipynb", "symbolic link"),
    ("e-linked-file.ipynb", "symbolic link"),
    ("e-linked-folder", "symbolic link"),
    ("e-zip-link.zip:activations_dev.ipynb", "symbolic link"),
])
def test_each_bad_upload_is_reported_with_its_reason(collected, item, reason):
    assert reason in _line(collected, item)


def test_a_zip_bomb_is_not_expanded(collected):
    peak_kb = int(collected["out"].split("PEAK_KB")[1].split()[0])
    assert peak_kb * 1024 < BOMB_BYTES / 4, f"collect peaked at {peak_kb / 1024:.0f} MiB on a {BOMB_BYTES >> 20} MiB bomb"


def test_two_notebooks_for_one_module_collect_neither(collected):
    """Refused, not guessed: with --force the old code collected both in turn and the blank one won."""
    assert not (collected["root"] / "grading/submitted/d-two-notebooks").exists()
    assert "none was collected" in _line(collected, "d-two-notebooks.zip")


def test_a_link_to_the_instructor_source_is_never_collected(collected):
    for student in ("e-linked", "e-linked-file", "e-linked-folder", "e-zip-link"):
        assert not (collected["root"] / "grading/submitted" / student).exists()
        assert not (collected["root"] / "grading/originals" / student).exists()
