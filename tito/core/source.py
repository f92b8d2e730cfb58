"""Reading a module source as a notebook, and the checks every command relies on.

The student edits either the percent `.py` (JupyterLab opens it through jupytext) or a paired
`.ipynb`; tito reads whichever was saved last and never writes to either.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tito.core.errors import TitoError
from tito.core.manifest import Module

DEFAULT_EXP = re.compile(r"^#\|\s*default_exp\s+(\S+)\s*$", re.M)
EXPORT = re.compile(r"^#\|\s*export\b", re.M)

if TYPE_CHECKING:
    import nbformat


@dataclass
class Source:
    module: Module
    path: Path               # the file actually read (.py or the newer paired .ipynb)
    notebook: nbformat.NotebookNode

    def code_cells(self):
        return [c for c in self.notebook.cells if c.cell_type == "code"]

    def nbgrader_cells(self):
        return [c for c in self.notebook.cells if "nbgrader" in c.metadata]

    def exported_code(self) -> str:
        return "\n\n".join(c.source for c in self.code_cells() if EXPORT.search(c.source))


def source_path(module: Module) -> Path:
    """The .py source, or the paired .ipynb when the student saved that one last."""
    py, ipynb = module.source, module.paired_notebook
    if ipynb.exists() and (not py.exists() or ipynb.stat().st_mtime > py.stat().st_mtime):
        return ipynb
    if not py.exists():
        raise TitoError(f"{module.name}: no source file {py}; every module needs {py.name}")
    return py


def _line_of(text: str, needle: str) -> int:
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return number
    return 0


def read_source(module: Module, path: Path | None = None) -> Source:
    """Parse the module's source (or another notebook of it, e.g. a submission) into a notebook with
    deterministic cell ids; bad input names file and line."""
    import jupytext     # imported here: nbformat's schemas cost a second, and most tito runs never parse
    import nbformat

    path = path or source_path(module)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".ipynb":
        try:
            notebook = nbformat.reads(text, as_version=4)
        except (json.JSONDecodeError, nbformat.reader.NotJSONError) as exc:
            raise TitoError(f"{path}: not a valid notebook ({exc}); restore it from your .py or delete it so tito uses the .py")
    else:
        try:
            ast.parse(text, filename=str(path))
        except SyntaxError as exc:
            raise TitoError(f"{path}:{exc.lineno}: syntax error: {exc.msg}; fix that line and run tito again")
        notebook = jupytext.reads(text, fmt="py:percent")
    for index, cell in enumerate(notebook.cells):
        bad = cell.metadata.get("incorrectly_encoded_metadata")
        if bad:
            line = _line_of(text, bad)
            raise TitoError(f"{path}:{line}: cell metadata is not valid JSON: {bad}; write it as nbgrader={{...}} with JSON values (true/false)")
        if path.suffix == ".ipynb" and cell.cell_type == "code":
            try:
                ast.parse(without_magics(cell.source))
            except SyntaxError as exc:
                raise TitoError(f"{path}: cell {index + 1}, line {exc.lineno}: syntax error: {exc.msg}")
        cell.id = stable_cell_id(cell, index)
    return Source(module, path, notebook)


def without_magics(code: str) -> str:
    """IPython magics (`%matplotlib`, `%%time`, `!pip ...`) blanked out: plain Python, same line numbers."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in code.splitlines())


def stable_cell_id(cell, index: int) -> str:
    """grade_id for nbgrader cells (so nbdev's provenance marker names the cell), else the position."""
    grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
    return grade_id if grade_id else f"cell-{index}"


def declared_export(source: Source) -> str:
    """The `#| default_exp` target; it must exist once and match module.yaml's exports_to."""
    found = [m.group(1) for c in source.code_cells() for m in DEFAULT_EXP.finditer(c.source)]
    module = source.module
    if not found:
        raise TitoError(f"{source.path}: no `#| default_exp` cell; add `#| default_exp {module.default_exp}` near the top")
    if len(found) > 1:
        raise TitoError(f"{source.path}: {len(found)} `#| default_exp` cells ({', '.join(found)}); keep exactly one")
    target = found[0]
    if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", target):
        raise TitoError(f"{source.path}: `#| default_exp {target}` is not a dotted module name inside the package")
    return target


def check_source(source: Source, package: str) -> str:
    """All the static checks of one source; returns the export target. Raises TitoError on the first problem."""
    module = source.module
    target = declared_export(source)
    if not module.exports_to.startswith(package + "."):
        raise TitoError(f"{module.folder / 'module.yaml'}: exports_to {module.exports_to!r} is outside {package}/; "
                        f"export targets must be {package}.<subpackage>.<name>")
    if f"{package}.{target}" != module.exports_to:
        raise TitoError(f"{source.path}: `#| default_exp {target}` does not match module.yaml exports_to "
                        f"{module.exports_to!r}; make them agree")
    check_grade_ids(source)
    return target


def check_grade_ids(source: Source) -> list[str]:
    """grade_ids must be present on every nbgrader cell, kebab-case and unique."""
    seen: dict[str, int] = {}
    for index, cell in enumerate(source.notebook.cells):
        meta = cell.metadata.get("nbgrader")
        if meta is None:
            continue
        grade_id = meta.get("grade_id")
        if not grade_id:
            raise TitoError(f"{source.path}: cell {index + 1} has nbgrader metadata but no grade_id; add one (kebab-case)")
        if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", grade_id):
            raise TitoError(f"{source.path}: grade_id {grade_id!r} is not kebab-case (lowercase words joined by '-')")
        if grade_id in seen:
            raise TitoError(f"{source.path}: duplicate grade_id {grade_id!r} (cells {seen[grade_id] + 1} and {index + 1}); "
                            "grade_ids must be unique: rename the copy")
        seen[grade_id] = index
    return list(seen)


def graded_points(source: Source) -> float:
    return sum(float(c.metadata["nbgrader"].get("points", 0)) for c in source.nbgrader_cells()
               if c.metadata["nbgrader"].get("grade"))


def package_imports(source: Source, package: str) -> set[str]:
    """Dotted modules of `package` imported by the source's code cells (absolute imports only)."""
    found: set[str] = set()
    for cell in source.code_cells():
        try:
            tree = ast.parse(without_magics(cell.source))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            found.update(n for n in names if n == package or n.startswith(package + "."))
    return found


# Library calls whose answer (or effect) belongs to the process that makes them. Graded tests run
# in a trusted process while the student's code runs in the limited one, so in a graded cell these
# see or change only the test's own process: a check built on them can never fail (warnings turned
# into errors around a student call, tracemalloc or gc state after a student's profiler ran).
PROCESS_LOCAL_CALLS = (
    "warnings.simplefilter", "warnings.filterwarnings", "warnings.catch_warnings", "warnings.resetwarnings",
    "pytest.warns", "pytest.deprecated_call", "numpy.testing.assert_warns", "numpy.testing.assert_no_warnings",
    "numpy.testing.suppress_warnings", "numpy.errstate", "numpy.seterr", "numpy.geterr", "numpy.seterrcall",
    "numpy.random.seed", "numpy.random.get_state", "numpy.random.set_state", "random.seed", "random.getstate",
    "random.setstate", "tracemalloc", "gc", "sys.getrefcount", "sys.getallocatedblocks", "threadpoolctl",
    "numba.get_num_threads", "numba.set_num_threads", "numba.get_thread_id", "threading.active_count",
    "threading.enumerate", "resource.getrusage", "psutil.Process",
)


def _import_aliases(tree: ast.AST, aliases: dict[str, str]) -> None:
    """Record `import numpy as np` / `from tracemalloc import is_tracing as tracing` as local -> dotted."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    aliases[alias.name.split(".")[0]] = alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in aliases:
        return None
    return ".".join([aliases[node.id], *reversed(parts)])


def _process_local(name: str) -> bool:
    return any(name == entry or name.startswith(entry + ".") for entry in PROCESS_LOCAL_CALLS)


def process_local_checks(source: Source) -> list[str]:
    """Graded test cells that call a process-local library function (see PROCESS_LOCAL_CALLS).

    Passing such a function to student code is fine (it then runs in the student's process, see
    modules/AUTHORING.md); calling it in the test is not."""
    aliases: dict[str, str] = {}
    trees = []
    for cell in source.code_cells():
        try:
            tree = ast.parse(without_magics(cell.source))
        except SyntaxError:
            continue
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            trees.append((meta.get("grade_id"), tree))
        else:
            _import_aliases(tree, aliases)          # the trusted imports every test sees
    problems = []
    for grade_id, tree in trees:
        local = dict(aliases)
        _import_aliases(tree, local)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = _dotted(node.func, local)
                if name and _process_local(name):
                    problems.append(
                        f"graded cell {grade_id}, line {node.lineno}: calls {name}(), which sees only the trusted "
                        "process that runs the test, never the student's process where their code runs; check "
                        "a value the student's code returns, or hand the library function to student code so "
                        "it runs there (modules/AUTHORING.md, 'How graded tests run')")
    return problems
