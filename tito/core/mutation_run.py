"""`tito mutate`: grade each mutant of a module's solutions with the real grader and report survivors.

A mutant is the reference notebook with one small edit inside one solution block. Every mutant is
graded the way `tito check` grades the solution (tito.core.autograding's jobs, the sandboxed split
grader, the module's prerequisite package exported once per run); it is *killed* when it loses
any point, and *survives* when it keeps full marks. Survivors come with their diff and the graded
cells that should have caught them, so an author knows which test to strengthen.

Cost: one sandboxed grade per mutant. To keep that small, analysis cells that no graded test
needs (they only print measurements) are left out of the mutant notebooks; the reference solution
is graded the same way first and must keep full marks, else the full notebook is used.
"""

from __future__ import annotations

import ast
import copy
import difflib
import json
import math
import shutil
import symtable
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import nbformat

from tito.core.autograding import make_jobs, prerequisite_package
from tito.core.course import Course, place_submission
from tito.core.errors import TitoError
from tito.core.executor import executor_for
from tito.core.manifest import Module
from tito.core.mutation_operators import OPERATOR_NAMES, Mutant, generate_mutants
from tito.core.source import EXPORT, Source, read_source, without_magics
from tito.core.workspace import Workspace
from tito.sandbox.grader import GradeJob

TIMESTAMP = "2026-01-01 00:00:00.000000 UTC"
REPORT_FOLDER = Path(".tito") / "mutate"


@dataclass
class MutantResult:
    id: str
    operator: str
    cell: str
    line: int                   # line in the module source file (or in the cell for an .ipynb source)
    function: str
    description: str
    status: str                 # killed, survived or error (the grader failed: not counted)
    failed_cells: list[str] = field(default_factory=list)
    stopped: str | None = None
    should_catch: list[str] = field(default_factory=list)
    diff: str = ""


@dataclass
class MutationReport:
    module: str
    operators: list[str]
    generated: int              # distinct mutants the operators produced
    graded: int                 # mutants graded (all, or a --limit sample)
    killed: int
    survived: int
    errors: int
    seconds: float
    baseline_seconds: float
    pruned_cells: int           # analysis cells left out of every mutant notebook
    min_kill: float
    mutants: list[MutantResult]
    inputs: str = ""            # tito.core.mutation_inputs: what the verdicts depend on

    @property
    def kill_rate(self) -> float:
        counted = self.killed + self.survived
        return self.killed / counted if counted else 1.0

    @property
    def ok(self) -> bool:
        return self.kill_rate >= self.min_kill

    def to_json(self) -> dict:
        data = asdict(self)
        data["kill_rate"] = round(self.kill_rate, 4)
        data["ok"] = self.ok
        return data


# -- which mutants ----------------------------------------------------------------------------------

def implementation_cells(source: Source) -> list[tuple[int, str, str]]:
    """(index, grade_id, code) of every implementation (solution) cell."""
    return [(index, cell.metadata["nbgrader"]["grade_id"], cell.source)
            for index, cell in enumerate(source.notebook.cells)
            if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution")]


def module_mutants(module: Module, operators: tuple[str, ...] = OPERATOR_NAMES) -> list[Mutant]:
    try:
        return generate_mutants(implementation_cells(read_source(module)), operators)
    except ValueError as exc:
        raise TitoError(str(exc))


def sample(mutants: list[Mutant], limit: int | None) -> list[Mutant]:
    """At most `limit` mutants, spread evenly over the list (so every cell and operator keeps a share)."""
    if not limit or limit >= len(mutants):
        return list(mutants)
    step = len(mutants) / limit
    return [mutants[int(i * step)] for i in range(limit)]


# -- which cells a mutant notebook needs ------------------------------------------------------------

def _scopes(code: str):
    try:
        return symtable.symtable(without_magics(code), "<cell>", "exec")
    except SyntaxError:
        return None


def global_reads(code: str) -> set[str]:
    """Global names the code reads, at top level or inside its functions and classes."""
    table = _scopes(code)
    if table is None:
        return set()
    names = {s.get_name() for s in table.get_symbols() if s.is_referenced()}
    stack = list(table.get_children())
    while stack:
        child = stack.pop()
        names |= {s.get_name() for s in child.get_symbols() if s.is_global() and s.is_referenced()}
        stack.extend(child.get_children())
    return names


def global_writes(code: str) -> set[str]:
    table = _scopes(code)
    if table is None:
        return set()
    return {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported() or s.is_namespace()}


def needed_cells(notebook) -> set[int]:
    """Indices of the code cells a grade needs: nbgrader cells, exported cells, and every plain cell
    that defines a name one of those (or another needed cell) reads. The rest only prints analysis."""
    cells = [(i, c) for i, c in enumerate(notebook.cells) if c.cell_type == "code"]
    keep = {i for i, c in cells if "nbgrader" in c.metadata or EXPORT.search(c.source)}
    reads = set().union(*(global_reads(c.source) for i, c in cells if i in keep))
    changed = True
    while changed:
        changed = False
        for i, c in cells:
            if i not in keep and global_writes(c.source) & reads:
                keep.add(i)
                reads |= global_reads(c.source)
                changed = True
    return keep


def _stored_names(code: str) -> set[str]:
    """Names the code assigns, imports or defines, and the objects whose attributes or items it sets."""
    try:
        tree = ast.parse(without_magics(code))
    except SyntaxError:
        return set()
    bases = {n.value.id for n in ast.walk(tree)
             if isinstance(n, (ast.Attribute, ast.Subscript)) and isinstance(n.ctx, ast.Store)
             and isinstance(n.value, ast.Name)}
    return global_writes(code) | bases


def dependent_cells(notebook, index: int) -> set[int]:
    """Indices of the code cells whose behaviour a change to cell `index` can reach: that cell, and
    every cell that reads (at top level or inside a function) a name it, or another such cell, stores."""
    cells = [(i, c) for i, c in enumerate(notebook.cells) if c.cell_type == "code"]
    reached, names = {index}, _stored_names(notebook.cells[index].source)
    changed = True
    while changed:
        changed = False
        for i, c in cells:
            if i not in reached and global_reads(c.source) & names:
                reached.add(i)
                names |= _stored_names(c.source)
                changed = True
    return reached


def mutant_notebook(base, keep: set[int] | None, replaced: dict[int, str]):
    """A copy of the reference notebook with some cells' code replaced and unneeded code cells left out."""
    notebook = copy.deepcopy(base)
    for index, code in replaced.items():
        notebook.cells[index].source = code
    if keep is not None:
        notebook.cells = [c for i, c in enumerate(notebook.cells) if c.cell_type != "code" or i in keep]
    return notebook


def _graded_numbers(base, keep: set[int] | None) -> dict[int, int]:
    """Cell index in the reference notebook -> its number (1-based) in the notebook the grader runs."""
    kept = [i for i, c in enumerate(base.cells) if keep is None or c.cell_type != "code" or i in keep]
    return {index: number for number, index in enumerate(kept, 1)}


# -- reporting helpers ------------------------------------------------------------------------------

def cell_first_lines(source: Source) -> dict[int, int]:
    """Cell index -> line of the source file just before the cell's first line (a .py source only)."""
    if source.path.suffix != ".py":
        return {}
    lines = source.path.read_text(encoding="utf-8").splitlines()
    headers = [n for n, line in enumerate(lines, 1) if line.startswith("# %%")]   # one per cell, in order
    return dict(enumerate(headers)) if len(headers) == len(source.notebook.cells) else {}


def identifiers(code: str) -> set[str]:
    try:
        tree = ast.parse(without_magics(code))
    except SyntaxError:
        return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | \
        {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}


def should_catch(mutant: Mutant, tests: dict[str, str], passed: list[str]) -> list[str]:
    """Graded cells that use the mutated function or class (narrowed to those that call the mutated
    method, when some do), else every graded cell the mutant passed."""
    parts = [p for p in mutant.function.split(".") if p]
    if not parts:
        return list(passed)
    uses = {g: identifiers(tests[g]) for g in passed}
    outer = [g for g in passed if parts[0] in uses[g]]
    inner = [g for g in (outer or passed) if parts[-1] in uses[g]] if len(parts) > 1 else []
    return inner or outer or list(passed)


def diff_of(original: str, mutated: str, offset: int, where: str) -> str:
    lines = difflib.unified_diff(original.splitlines(), mutated.splitlines(), where, where + " (mutant)", n=1,
                                 lineterm="")
    out = []
    for line in lines:
        if line.startswith("@@") and offset:
            # renumber the hunk from cell lines to file lines
            head = line.split("@@")[1].split()
            old, new = head[0][1:].split(","), head[1][1:].split(",")
            old[0], new[0] = str(int(old[0]) + offset), str(int(new[0]) + offset)
            line = f"@@ -{','.join(old)} +{','.join(new)} @@"
        out.append(line)
    return "\n".join(out)


# -- grading ----------------------------------------------------------------------------------------

def _tight_limits(job_limits: dict, baseline_seconds: float) -> dict:
    """Limits for mutants: a mutant that loops forever is killed in seconds, not after the course's limits."""
    limits = dict(job_limits)
    limits["cell_timeout"] = min(limits["cell_timeout"], max(15, math.ceil(5 * baseline_seconds)))
    limits["submission_timeout"] = min(limits["submission_timeout"], max(30, math.ceil(10 * baseline_seconds)))
    return limits


def _grade(course: Course, module: Module, package: Path, notebooks: dict[str, object], workers: int,
           configure: Callable[[GradeJob], None] | None = None, on_result=None) -> dict:
    """Grade {student: notebook} with the real grader; {student: GradeResult}. configure(job) adjusts
    each job first (the mutants' limits and numba seed)."""
    with tempfile.TemporaryDirectory(prefix="tito-mutant-") as folder:
        for student, notebook in notebooks.items():
            path = Path(folder) / f"{student}.ipynb"
            nbformat.write(notebook, path)
            place_submission(course, student, module, path, TIMESTAMP)
    jobs = make_jobs(course, module, list(notebooks), package)
    for job in jobs if configure else []:
        configure(job)
    results = {}
    for result in executor_for(workers).run(jobs):
        results[result.student] = result
        if on_result:
            on_result(result)
    return results


def mutate_module(ws: Workspace, module: Module, operators: tuple[str, ...] = OPERATOR_NAMES,
                  limit: int | None = None, workers: int = 2, prune: bool = True, min_kill: float = 0.9,
                  progress: Callable[[str], None] | None = None) -> MutationReport:
    """Generate, grade and judge the mutants of one module."""
    say = progress or (lambda _text: None)
    started = time.monotonic()
    source = read_source(module)
    all_mutants = module_mutants(module, operators)
    mutants = sample(all_mutants, limit)
    tests = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.nbgrader_cells()
             if c.metadata["nbgrader"].get("grade")}
    points = {c.metadata["nbgrader"]["grade_id"]: float(c.metadata["nbgrader"].get("points", 0))
              for c in source.nbgrader_cells() if c.metadata["nbgrader"].get("grade")}
    total = sum(points.values())
    base = source.notebook
    with tempfile.TemporaryDirectory(prefix="tito-mutate-") as scratch:
        course = Course(ws, Path(scratch) / "course")
        with prerequisite_package(course, module) as package:
            keep = needed_cells(base) if prune else None
            cache = Path(scratch) / "numba-cache"
            capture = lambda job: setattr(job, "numba_capture", str(cache))  # noqa: E731
            baseline = _grade(course, module, package, {"reference": mutant_notebook(base, keep, {})}, 1,
                              capture)["reference"]
            if keep is not None and (baseline.failed or baseline.total < total):
                say("the reference solution needs the analysis cells to keep full marks: grading full notebooks")
                keep = None
                shutil.rmtree(cache, ignore_errors=True)
                baseline = _grade(course, module, package, {"reference": mutant_notebook(base, None, {})}, 1,
                                  capture)["reference"]
            if baseline.failed or baseline.total < total:
                raise TitoError(f"{module.name}: the reference solution scores {baseline.total:g}/{total:g} "
                                f"({baseline.failed or baseline.stopped or 'see tito check'}); run `tito check "
                                f"{module.name}` and fix that first")
            pruned = 0 if keep is None else sum(1 for i, c in enumerate(base.cells)
                                                 if c.cell_type == "code" and i not in keep)
            seeded = cache.is_dir()
            say(f"{module.name}: {len(mutants)} of {len(all_mutants)} mutants; reference graded in "
                f"{baseline.seconds:.1f} s ({pruned} analysis cells left out"
                f"{'; its compiled numba kernels are reused where the mutant cannot reach them' if seeded else ''})")
            notebooks = {m.id: mutant_notebook(base, keep, {m.cell_index: m.source}) for m in mutants}
            graded = mutant_notebook(base, keep, {})
            numbers = _graded_numbers(base, keep)
            by_id = {m.id: m for m in mutants}

            def configure(job: GradeJob, seed: bool = seeded) -> None:
                # tight limits, the first lost point decides, and the reference's compiled kernels
                # except those of the cells the mutant can reach
                job.limits = _tight_limits(job.limits, baseline.seconds)
                job.stop_at_first_loss = True
                if seed:
                    reach = dependent_cells(graded, numbers[by_id[job.student].cell_index] - 1)
                    job.numba_seed = {"folder": str(cache), "skip_cells": sorted(i + 1 for i in reach)}
            done = [0]

            def tick(result):
                done[0] += 1
                if done[0] % 10 == 0 or done[0] == len(mutants):
                    say(f"  graded {done[0]}/{len(mutants)} ({time.monotonic() - started:.0f} s)")

            results = _grade(course, module, package, notebooks, workers, configure, tick) if mutants else {}
            # The seed can only hide a kill (a stale kernel), never make one: every survivor is graded
            # again compiling everything itself, and that grade is its verdict.
            survivors = {m: notebooks[m] for m, r in results.items() if not r.failed and r.total >= total}
            if seeded and survivors:
                say(f"  {len(survivors)} survivor(s) graded again without the reference's numba cache")
                results.update(_grade(course, module, package, survivors, workers,
                                      lambda job: configure(job, seed=False)))
    offsets = cell_first_lines(source)
    where = str(source.path.relative_to(ws.root)) if source.path.is_relative_to(ws.root) else str(source.path)
    judged = []
    for mutant in mutants:
        result = results.get(mutant.id)
        offset = offsets.get(mutant.cell_index, 0)
        entry = MutantResult(mutant.id, mutant.operator, mutant.cell, mutant.line + offset, mutant.function,
                             mutant.description, "error")
        if result is None or result.failed:
            entry.stopped = result.failed if result else "not graded"
        else:
            entry.failed_cells = [c.grade_id for c in result.cells if c.kind == "test" and c.score < points[c.grade_id]
                                  and not (c.error or "").startswith("not run")]
            entry.stopped = result.stopped
            entry.status = "killed" if result.total < total else "survived"
            if entry.status == "survived":
                entry.should_catch = should_catch(mutant, tests, sorted(result.scores))
                entry.diff = diff_of(base.cells[mutant.cell_index].source, mutant.source, offset, where)
        judged.append(entry)
    count = lambda status: sum(1 for e in judged if e.status == status)  # noqa: E731
    return MutationReport(module.name, list(operators), len(all_mutants), len(mutants), count("killed"),
                          count("survived"), count("error"), round(time.monotonic() - started, 1),
                          round(baseline.seconds, 2), pruned, min_kill, judged)


def report_path(ws: Workspace, module: str) -> Path:
    return ws.root / REPORT_FOLDER / f"{module}.json"


def stored_report(ws: Workspace, module: str, inputs: str) -> MutationReport | None:
    """The stored report of `module` if it was made from exactly these inputs, else None."""
    try:
        data = json.loads(report_path(ws, module).read_text(encoding="utf-8"))
        if data.get("inputs") != inputs:
            return None
        data.pop("kill_rate", None)
        data.pop("ok", None)
        data["mutants"] = [MutantResult(**m) for m in data["mutants"]]
        return MutationReport(**data)
    except (OSError, ValueError, TypeError, KeyError):
        return None       # missing, unreadable or of an older layout: grade again


def write_report(ws: Workspace, report: MutationReport) -> Path:
    """The report as JSON under .tito/mutate/ (a build folder: ignored by git, hidden from submissions)."""
    target = report_path(ws, report.module)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report.to_json(), indent=1) + "\n", encoding="utf-8")
    return target
