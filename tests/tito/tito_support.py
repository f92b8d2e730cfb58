"""Helpers of the tito CLI tests: run the real CLI, fingerprint folders, edit files."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the course repository this suite belongs to
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass
class Result:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __str__(self) -> str:  # shown by pytest when an assertion on a result fails
        return f"tito {' '.join(self.args)} -> exit {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def run_tito(workspace: Path, *args: str, timeout: int = 600) -> Result:
    """`python -m tito ARGS` with cwd = workspace and the workspace's tinytorch/ first on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TITO_")}
    env.update(PYTHONPATH=str(workspace), NO_COLOR="1", TERM="dumb", PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run([sys.executable, "-m", "tito", *args], cwd=workspace, env=env,
                          capture_output=True, text=True, timeout=timeout)
    return Result(tuple(args), proc.returncode, ANSI.sub("", proc.stdout), ANSI.sub("", proc.stderr))


def tree_digest(folder: Path) -> dict[str, str]:
    """{relative path: sha256 of the bytes} of every file under folder (bytecode caches left out)."""
    if not folder.exists():
        return {}
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


def copy_tree(source: Path, destination: Path) -> Path:
    shutil.copytree(source, destination, symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    return destination


def edit(path: Path, old: str, new: str, count: int = 1) -> None:
    """Replace `old` by `new` in a file; the text must be there (so a stale edit fails loudly)."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) >= count, f"{old!r} not found in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")
