"""`python -m tito.core.cell_runner SOURCE SECONDS`: run a percent-format source as `python SOURCE`
would, one `# %%` cell at a time, each within SECONDS (settings.ini [grading] cell_timeout).

Each cell is compiled with the source's own line numbers, so tracebacks and `inspect` name the real
lines, and all cells share one `__main__` namespace. The limit is faulthandler's watchdog thread: it
fires even while the cell is stuck in C code, prints where every thread was (TIMEOUT_BANNER, then the
frames) and ends the process; `describe_timeout` turns that into the cell and line that ran out.
"""

from __future__ import annotations

import builtins
import faulthandler
import os
import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path

CELL_MARKER = re.compile(r"^# %%")
GRADE_ID = re.compile(r'"grade_id"\s*:\s*"([^"]+)"')
TIMEOUT_BANNER = re.compile(r"^Timeout \(\d+:\d\d:\d\d(\.\d+)?\)!$", re.M)
FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+) in (\S+)', re.M)


@dataclass
class Cell:
    number: int        # 1-based, as JupyterLab counts the notebook's cells (the jupytext header is no cell)
    first_line: int    # 1-based line of the `# %%` marker in the source
    lines: list[str]

    @property
    def grade_id(self) -> str | None:
        match = GRADE_ID.search(self.lines[0]) if self.lines else None
        return match.group(1) if match else None


def split_cells(text: str) -> list[Cell]:
    """The source's cells; cell 0 is whatever precedes the first marker (the jupytext header)."""
    cells = [Cell(0, 1, [])]
    for number, line in enumerate(text.splitlines(keepends=True), 1):
        if CELL_MARKER.match(line):
            cells.append(Cell(len(cells), number, []))
        cells[-1].lines.append(line)
    return cells


def cell_at(cells: list[Cell], line: int) -> Cell:
    return next(c for c in reversed(cells) if c.first_line <= line)


def run(path: Path, seconds: int) -> None:
    text = path.read_text(encoding="utf-8")
    main = types.ModuleType("__main__")
    main.__file__ = str(path)
    main.__builtins__ = builtins
    sys.modules["__main__"] = main
    sys.argv = [str(path)]
    sys.path[0] = str(path.parent)      # as `python SOURCE` sets it
    for cell in split_cells(text):
        code = compile("\n" * (cell.first_line - 1) + "".join(cell.lines), str(path), "exec")
        faulthandler.dump_traceback_later(seconds, exit=True)
        try:
            exec(code, main.__dict__)
        finally:
            faulthandler.cancel_dump_traceback_later()


def describe_timeout(stderr: str, script: Path, seconds: int, shown_name: str) -> str | None:
    """'cell 7 (test-loop) ran out of time ...: it was running line 42 of x_dev.py (in spin)', or None."""
    banner = TIMEOUT_BANNER.search(stderr)
    if not banner:
        return None
    frames = [(int(line), func) for file, line, func in FRAME.findall(stderr[banner.end():])
              if os.path.realpath(file) == os.path.realpath(script)]
    limit = f"the cell time limit ({seconds} s, settings.ini [grading] cell_timeout or module.yaml grading:)"
    if not frames:
        return f"{shown_name}: a cell reached {limit}; look for an endless loop"
    cells = split_cells(script.read_text(encoding="utf-8"))
    top_line = next((line for line, func in reversed(frames) if func == "<module>"), frames[-1][0])
    cell = cell_at(cells, top_line)
    line, func = frames[0]          # most recent call first
    if script.name == shown_name:
        where = f"{shown_name}:{line}"
    else:                           # a notebook converted for the run: its cells, not the script's lines
        running = cell_at(cells, line)
        where = f"cell {running.number}, line {line - running.first_line}"
    name = f"cell {cell.number}" + (f" ({cell.grade_id})" if cell.grade_id else "")
    inside = f" in {func}" if func != "<module>" else ""
    return f"{name} of {shown_name} reached {limit}: it was running {where}{inside}; look for an endless loop"


if __name__ == "__main__":
    run(Path(sys.argv[1]).resolve(), int(sys.argv[2]))
