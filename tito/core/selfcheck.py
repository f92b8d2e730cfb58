"""`tito check`: prove that every module exports in sync and grades both ways on real nbgrader.

For each module, in a scratch course directory (the instructor's grading/ is never touched):
the full-solution notebook must autograde to the module's total, and the blank release (what a
student receives) must score 0 on every graded cell.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tito.core.autograding import grade_submissions
from tito.core.course import Course, cell_scores, generate, place_submission
from tito.core.errors import TitoError
from tito.core.exporter import export
from tito.core.manifest import Module
from tito.core.source import check_grade_ids, graded_points, process_local_checks, read_source
from tito.core.workspace import Workspace

TIMESTAMP = "2026-01-01 00:00:00.000000 UTC"


@dataclass
class ModuleCheck:
    module: Module
    problems: list[str] = field(default_factory=list)
    solution_score: float | None = None
    blank_score: float | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def static_problems(ws: Workspace, module: Module) -> list[str]:
    """Export in sync (which also checks default_exp, grade_ids and imports) and points agree."""
    problems = []
    try:
        result = export(ws, module, check_only=True)
    except TitoError as exc:
        return [str(exc)]
    if not result.in_sync:
        problems.append(f"export out of sync ({', '.join(p.name for p in result.changed)}): run tito export {module.name}")
    source = read_source(module)
    total = graded_points(source)
    if abs(total - module.points) > 1e-9:
        problems.append(f"module.yaml says {module.points:g} points, graded cells add up to {total:g}")
    problems += released_grade_ids_kept(ws, module, check_grade_ids(source))
    problems += [f"{source.path.name}: {p}" for p in process_local_checks(source)]
    return problems


def released_grade_ids_kept(ws: Workspace, module: Module, grade_ids: list[str]) -> list[str]:
    """grade_ids already in the instructor's gradebook must still exist (grades are keyed on them)."""
    course = Course.of(ws)
    if course.database is None and not (course.root / "gradebook.db").exists():
        return []   # nothing released yet
    from nbgrader.api import MissingEntry

    try:
        with course.gradebook() as gb:
            released = {c.name for nb in gb.find_assignment(module.name).notebooks for c in nb.grade_cells}
    except MissingEntry:
        return []
    missing = sorted(released - set(grade_ids))
    return [f"grade_id(s) {', '.join(missing)} were released and are gone from the source; restore them"] if missing else []


def grading_problems(course: Course, module: Module, api) -> tuple[list[str], float, float]:
    generate(course, module, api)
    submissions = {"solution": course.source_notebook(module), "blank": course.release_notebook(module)}
    for student, notebook in submissions.items():
        place_submission(course, student, module, notebook, TIMESTAMP)
    grade_submissions(course, module, list(submissions))
    scores = {student: cell_scores(course, module, student) for student in submissions}
    problems = [f"solution loses points on {c.grade_id} ({c.score:g}/{c.max_score:g})"
                for c in scores["solution"] if c.score < c.max_score]
    problems += [f"blank release earns {c.score:g} point(s) on {c.grade_id}: that test does not depend on student code"
                 for c in scores["blank"] if c.score > 0]
    if not scores["solution"]:
        problems.append("no graded cells")
    return problems, sum(c.score for c in scores["solution"]), sum(c.score for c in scores["blank"])


def check_modules(ws: Workspace, modules: list[Module], progress=None) -> list[ModuleCheck]:
    results = []
    with tempfile.TemporaryDirectory(prefix="tito-check-") as scratch:
        course = Course(ws, Path(scratch) / "course")
        api = course.api()
        for module in modules:
            check = ModuleCheck(module, static_problems(ws, module))
            if check.ok:
                try:
                    problems, check.solution_score, check.blank_score = grading_problems(course, module, api)
                    check.problems += problems
                except TitoError as exc:
                    check.problems.append(str(exc))
            results.append(check)
            if progress:
                progress(check)
    return results
