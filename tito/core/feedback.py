"""Feedback is hostile text: nbgrader preprocessors used by grading/nbgrader_config.py, and the check
of the pages they make.

Everything in an autograded notebook except the instructor's own graded cells came from the
submission: its markdown, its code, its outputs (which the grader already wrote as plain text).
`SanitizeSubmission` (first in the chain) turns all of that into inert text before nbgrader sees
it: markdown and raw cells are HTML-escaped, rich outputs dropped, hidden-test markers a student
typed are defused, and nbgrader metadata the gradebook does not know (a forged graded cell) is
removed, so one odd notebook can never make GetGrades or the page check fail for the others.
`HideHiddenTests` (last) removes the hidden-test regions from the instructor's graded cells.
"""

from __future__ import annotations

import html
import re

from nbgrader.preprocessors import ClearHiddenTests, NbGraderPreprocessor

HIDDEN_MARK = "BEGIN HIDDEN TESTS"
MARKERS = re.compile(r"(BEGIN|END) HIDDEN TESTS", re.I)
NOTE = "# (hidden tests ran here; their source is not shown)"
SCRIPT_URL = re.compile(r"(java|vb)script\s*:", re.I)
KEPT_OUTPUTS = ("stream", "error")            # what tito's grader writes; anything richer is not ours


def _defused(text: str) -> str:
    return MARKERS.sub(lambda m: f"{m.group(1).lower()} hidden tests (marker removed)", text)


def _known_cells(resources) -> set[str] | None:
    """grade_ids of the notebook's graded, solution and task cells as the gradebook knows them."""
    info = (resources or {}).get("nbgrader", {})
    if not info.get("db_url"):
        return None
    from nbgrader.api import Gradebook

    try:
        with Gradebook(info["db_url"]) as gb:
            notebook = gb.find_notebook(info["notebook"], info["assignment"])
            return {c.name for c in [*notebook.grade_cells, *notebook.solution_cells, *notebook.task_cells]}
    except Exception:  # no gradebook entry: nothing in this notebook may pass as an nbgrader cell
        return set()


class SanitizeSubmission(NbGraderPreprocessor):
    """Make every part of the notebook that the submission produced inert text."""

    def preprocess(self, nb, resources):
        self.known = _known_cells(resources)
        nb.metadata = {k: v for k, v in nb.metadata.items() if k in ("kernelspec", "language_info")}
        nb.cells = [c for c in nb.cells if isinstance(c, dict) and isinstance(c.get("source", ""), str)]
        return super().preprocess(nb, resources)

    def instructor_cell(self, cell) -> bool:
        meta = cell.metadata.get("nbgrader")
        return isinstance(meta, dict) and meta.get("locked") and meta.get("grade_id") in (self.known or set())

    def preprocess_cell(self, cell, resources, index):
        meta = cell.metadata.get("nbgrader")
        if meta is not None and (self.known is not None and (not isinstance(meta, dict) or meta.get("grade_id") not in self.known)):
            del cell.metadata["nbgrader"]           # a cell nbgrader would look up and not find
        if cell.cell_type == "raw":
            cell.cell_type, cell.metadata = "markdown", {}
            cell.source = "```\n" + cell.source.replace("```", "'''") + "\n```"
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
        if cell.cell_type == "markdown":
            cell.pop("attachments", None)
            if not self.instructor_cell(cell):
                cell.source = SCRIPT_URL.sub("blocked-script:", html.escape(_defused(cell.source), quote=False))
        elif cell.cell_type == "code":
            if not self.instructor_cell(cell):
                cell.source = _defused(cell.source)
            outputs = []
            for output in cell.get("outputs", []):
                if output.get("output_type") not in KEPT_OUTPUTS:
                    continue
                if output.get("output_type") == "stream":
                    output["text"] = _defused(str(output.get("text", "")))
                else:
                    output["ename"] = _defused(str(output.get("ename", "Error")))
                    output["evalue"] = _defused(str(output.get("evalue", "")))
                    output["traceback"] = [_defused(str(line)) for line in output.get("traceback", [])]
                outputs.append(output)
            cell["outputs"] = outputs
        return cell, resources


class HideHiddenTests(NbGraderPreprocessor):
    """Remove hidden-test regions from the instructor's graded cells. Their outputs stay: the grader
    wrote them so that a hidden test shows only that it failed, never its source or its output."""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code" or HIDDEN_MARK not in cell.source:
            return cell, resources
        try:
            ClearHiddenTests(enforce_metadata=False)._remove_hidden_test_region(cell)
        except Exception:  # unbalanced markers: everything from the first one on is hidden
            cell.source = cell.source[: cell.source.index(HIDDEN_MARK)].rsplit("\n", 1)[0]
        cell.source = cell.source.rstrip() + "\n" + NOTE
        return cell, resources


def page_problem(text: str, hidden_lines: set[str]) -> str | None:
    """Why a feedback page must not be handed out (it shows hidden tests), or None.

    text: the page with tags removed and entities unescaped (what a reader sees)."""
    leaked = sorted(hidden_lines & {line.strip() for line in text.splitlines()})
    if leaked:
        return f"showed a hidden test line ({leaked[0]!r})"
    if HIDDEN_MARK in text:
        return "showed a hidden-test marker"
    return None
