"""One module, two files? The recommended workflow keeps only the percent `.py` (double-click opens
it as a notebook; Ctrl+S saves the .py), so nothing can disagree. A student who paired it with an
`.ipynb` (or converted it) can end up with two files holding different work; tito then uses the one
saved last (tito.core.source.source_path) and says so here, with what to do, before any export,
test or submission, so that no work is lost silently.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from tito.core.manifest import Module
from tito.core.source import source_path


def _cells(path: Path) -> list[tuple[str, str]]:
    import jupytext

    return [(c.cell_type, c.source.strip()) for c in jupytext.read(path).cells]


def disagreement(module: Module, root: Path) -> str | None:
    """None when the module has one file, or two that hold the same cells; else what to do."""
    py, ipynb = module.source, module.paired_notebook
    if not (py.exists() and ipynb.exists()):
        return None
    try:
        py_cells, ipynb_cells = _cells(py), _cells(ipynb)
    except Exception as exc:   # a damaged file: read_source names it when tito reads the one it uses
        return f"{ipynb.name} next to {py.name} could not be read ({type(exc).__name__}); delete the damaged one"
    if py_cells == ipynb_cells:
        return None
    differing = [str(i + 1) for i, (a, b) in enumerate(zip(py_cells, ipynb_cells)) if a != b]
    if len(py_cells) != len(ipynb_cells):
        differing.append(f"{len(py_cells)} vs {len(ipynb_cells)} cells")
    used = source_path(module)
    saved = datetime.fromtimestamp(used.stat().st_mtime).strftime("%H:%M:%S")
    folder = py.parent.relative_to(root)
    return (f"{folder}/{py.name} and {ipynb.name} differ (cells {', '.join(differing[:6])}); tito uses {used.name}, "
            f"saved last at {saved}. Keep one file so no work is lost: if your work is in {ipynb.name}, run "
            f"`jupytext --to py:percent {folder}/{ipynb.name}` (rewrites the .py from it) and delete the .ipynb; "
            f"if it is in {py.name}, delete {ipynb.name}. "
            f"Then open {py.name} by double-click (it opens as a notebook) and do not pair it again.")


def warn_if_files_disagree(module: Module, root: Path) -> None:
    from rich.markup import escape

    from tito.core.console import err_console

    message = disagreement(module, root)
    if message:
        err_console.print(f"[bold yellow]warning:[/] {escape(message)}", soft_wrap=True)
