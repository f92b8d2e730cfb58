"""`tito mutate` only: reuse the reference solution's compiled numba kernels in its mutants' sandboxes.

A mutant differs from the reference in one cell, yet every sandbox starts with an empty numba
cache, so each mutant of a kernel module recompiled every kernel (about 10 s of module 13's 14).
The reference grade captures its sandbox's cache (`capture`); each mutant's sandbox starts with a
copy of it (`seed`), minus the cells the mutant can change.

Why that is exact: numba keys a cached kernel on the SHA-256 of its source file (one file per
cell, see tito.sandbox.child) and the bytecode of the function, so a changed cell never loads
stale code. What numba does not see is a kernel of an unchanged cell that calls, or freezes a
global of, the changed one; so the caller leaves out the entries of every cell that reads, even
indirectly, a name the mutated cell defines (tito.core.mutation_run.dependent_cells).

Real grading never seeds: each submission compiles its own code in its own empty cache.

numba files its cache under `<folder name>_<sha1 of the folder>` (numba.core.caching's
`get_suitable_cache_subpath`), and every sandbox has its own scratch path, so the copy is stored
by path relative to the scratch folder and renamed for the next one.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CACHE = Path("work") / ".numba"        # NUMBA_CACHE_DIR, relative to a sandbox's scratch folder
CELLS = Path("work") / "cells"         # where the limited process writes each cell's file


def _subpath(folder: str) -> str:
    from numba.core.caching import _CacheLocator

    return _CacheLocator.get_suitable_cache_subpath(os.path.join(folder, "cell.py"))


def cell_file_prefix(number: int) -> str:
    """How the cache files of notebook cell `number` (1-based) start (tito.sandbox.child names them)."""
    return f"cell_{number:04d}."


def _processes(pid: int) -> list[int]:
    """pid and its descendants (the jail's first process, then the limited process in its namespaces)."""
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    stack.extend(int(child) for child in handle.read().split())
        except OSError:
            continue
    return found


def capture(pid: int, scratch: Path, target: Path) -> int:
    """Copy the cache of the live sandbox started as `pid` into target/<folder relative to scratch>/.
    The sandbox's files are reached through /proc/PID/root (its own mount namespace); only regular
    files are copied, never through a link. Returns how many files were copied."""
    for process in _processes(pid):
        view = Path(f"/proc/{process}/root{scratch}")
        if (view / CACHE).is_dir():
            break
    else:
        return 0
    folders = {}
    for folder, dirs, _files in os.walk(view, followlinks=False):
        relative = Path(folder).relative_to(view)
        if relative.parts[:2] != CACHE.parts:
            folders[_subpath(str(scratch / relative))] = relative
    copied = 0
    for entry in os.scandir(view / CACHE):
        relative = folders.get(entry.name)
        if relative is None or not entry.is_dir(follow_symlinks=False):
            continue
        for item in os.scandir(entry.path):
            if item.is_file(follow_symlinks=False):
                (target / relative).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(item.path, target / relative / item.name, follow_symlinks=False)
                copied += 1
    return copied


def seed(source: Path, scratch: Path, skip_cells: list[int]) -> None:
    """Fill scratch/work/.numba from a capture, leaving out the files of the cells in skip_cells."""
    skipped = tuple(cell_file_prefix(n) for n in skip_cells)
    for folder, _dirs, files in os.walk(source):
        relative = Path(folder).relative_to(source)
        kept = [f for f in files if not (relative == CELLS and f.startswith(skipped))]
        if not kept:
            continue
        destination = scratch / CACHE / _subpath(str(scratch / relative))
        destination.mkdir(parents=True, exist_ok=True)
        for name in kept:
            shutil.copyfile(Path(folder) / name, destination / name)
