"""Four honest demo students, built from a module's release and its solution, for `tito demo`.

- full:    the solution notebook as the author wrote it
- blank:   the release notebook as a student receives it
- partial: the release with the first half of its solution cells filled in from the solution
- wrong:   the full solution with the last solution region replaced by `return None`
"""

from __future__ import annotations

import copy
import re

import nbformat

STUDENTS = ("full", "blank", "partial", "wrong")


def _solution_ids(notebook) -> list[str]:
    return [c.metadata["nbgrader"]["grade_id"] for c in notebook.cells
            if c.metadata.get("nbgrader", {}).get("solution")]


def partial(release, solution):
    by_id = {c.metadata["nbgrader"]["grade_id"]: c for c in solution.cells if "nbgrader" in c.metadata}
    ids = _solution_ids(release)
    filled = set(ids[: len(ids) // 2])
    notebook = copy.deepcopy(release)
    for cell in notebook.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") in filled:
            cell.source = by_id[cell.metadata["nbgrader"]["grade_id"]].source
    return notebook


def wrong(solution):
    notebook = copy.deepcopy(solution)
    cells = [c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("solution")]
    if not cells:
        return notebook
    cell = cells[-1]
    regions = list(re.finditer(r"(?P<indent>[ \t]*)### BEGIN SOLUTION\n.*?### END SOLUTION", cell.source, re.S))
    if regions:
        last = regions[-1]
        cell.source = cell.source[: last.start()] + f"{last.group('indent')}return None  # deliberately wrong" + cell.source[last.end():]
    return notebook


def build(release_path, solution_path) -> dict[str, nbformat.NotebookNode]:
    release = nbformat.read(release_path, as_version=4)
    solution = nbformat.read(solution_path, as_version=4)
    return {"full": solution, "blank": release, "partial": partial(release, solution), "wrong": wrong(solution)}
