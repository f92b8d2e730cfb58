"""`tito submit MODULE`: write the notebook to hand in, and check it as the grader will first."""

from __future__ import annotations

import typer
from rich.markup import escape

from tito.core.console import console
from tito.core.errors import TitoError
from tito.core.manifest import resolve
from tito.core.pairing import warn_if_files_disagree
from tito.core.workspace import Workspace

SUBMIT_DIR = "submit"    # one folder for everything a student uploads (ignored by git)


def submit_command(module: str = typer.Argument(..., help="module: 01_tensor, 01 or tensor")) -> None:
    """Write submit/<notebook>.ipynb from the file you saved last, run the instructor's visible tests on it; non-zero exit if one fails."""
    import nbformat

    from tito.core.course import notebook_name
    from tito.core.validation import submission_notebook, validate

    ws = Workspace.find()
    m = resolve(ws, module)
    warn_if_files_disagree(m, ws.root)
    notebook, read_from, notes = submission_notebook(ws, m)
    notebook.metadata.pop("jupytext", None)     # the upload is a plain notebook, paired with nothing
    out = ws.root / SUBMIT_DIR / notebook_name(m)
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, out)
    shown = out.relative_to(ws.root)
    console.print(f"wrote {shown} from {read_from.relative_to(ws.root)}")
    for note in notes:
        console.print(f"[yellow]note:[/] {escape(note)}")
    console.print(f"running the instructor's visible tests on {shown} (a fresh kernel, as nbgrader validates) ...")
    result = validate(ws, out)
    for cell in result.failed:
        console.print("[red]failed[/]:", escape(cell.get("source", "")[:200]), "\n" + escape(cell["error"][-800:]))
    if result.failed:
        raise TitoError(f"{len(result.failed)} test cell(s) fail in {shown}; fix your code, save, and run "
                        f"`tito submit {m.name}` again (hidden tests also run when it is graded)")
    console.print(f"[green]all visible tests pass.[/] Upload {out} (hidden tests also run when it is graded)")
