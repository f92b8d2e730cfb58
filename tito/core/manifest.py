"""Module discovery: every module is a folder modules/NN_slug/ with a module.yaml. Nothing else lists them."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tito.core.errors import TitoError
from tito.core.workspace import Workspace

MANIFEST = "module.yaml"
REQUIRED_KEYS = ("number", "slug", "title", "exports_to", "prerequisites", "points")


@dataclass(frozen=True)
class Module:
    folder: Path
    number: int
    slug: str
    title: str
    exports_to: str
    prerequisites: tuple[str, ...]
    points: float
    time_estimate: str = ""
    objectives: tuple[str, ...] = ()
    grading: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def name(self) -> str:
        """The folder name, e.g. 13_kernels: the id used everywhere (gradebook assignment, tests folder)."""
        return self.folder.name

    @property
    def source(self) -> Path:
        return self.folder / f"{self.slug}_dev.py"

    @property
    def paired_notebook(self) -> Path:
        return self.source.with_suffix(".ipynb")

    @property
    def export_path(self) -> Path:
        """The exported file, relative to the workspace root: tinytorch/core/kernels.py."""
        return Path(*self.exports_to.split(".")).with_suffix(".py")

    @property
    def default_exp(self) -> str:
        """exports_to without the package prefix, as written in `#| default_exp`."""
        return self.exports_to.split(".", 1)[1] if "." in self.exports_to else ""


def _load(folder: Path) -> Module:
    path = folder / MANIFEST
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise TitoError(f"{path}: not valid YAML ({exc}); fix the file")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise TitoError(f"{path}: missing {', '.join(missing)}; see modules/AUTHORING.md for the fields")
    expected = f"{int(data['number']):02d}_{data['slug']}"
    if folder.name != expected:
        raise TitoError(f"{path}: number and slug say {expected!r} but the folder is {folder.name!r}; rename one")
    return Module(
        folder=folder,
        number=int(data["number"]),
        slug=str(data["slug"]),
        title=str(data["title"]),
        exports_to=str(data["exports_to"]),
        prerequisites=tuple(data.get("prerequisites") or ()),
        points=float(data["points"]),
        time_estimate=str(data.get("time_estimate", "")),
        objectives=tuple(data.get("objectives") or ()),
        grading=dict(data.get("grading") or {}),
    )


def discover(ws: Workspace) -> list[Module]:
    """All modules of the workspace, ordered by number."""
    modules = [_load(p.parent) for p in sorted(ws.modules_dir.glob(f"*/{MANIFEST}"))]
    numbers: dict[int, str] = {}
    for m in modules:
        if m.number in numbers:
            raise TitoError(f"modules {numbers[m.number]} and {m.name} share number {m.number}; numbers are stable and unique")
        numbers[m.number] = m.name
    return sorted(modules, key=lambda m: m.number)


def resolve(ws: Workspace, name: str) -> Module:
    """A module by folder name (13_kernels), number (13 or 013) or slug (kernels)."""
    modules = discover(ws)
    key = name.strip().rstrip("/").split("/")[-1]
    for m in modules:
        if key in (m.name, m.slug) or (key.isdigit() and int(key) == m.number):
            return m
    names = [m.name for m in modules]
    close = difflib.get_close_matches(key, names + [m.slug for m in modules], n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]}?" if close else ""
    raise TitoError(f"unknown module {name!r}{hint} (tito module list shows all)")


def select(ws: Workspace, name: str | None, all_: bool) -> list[Module]:
    """The modules a command acts on: one by name, or all with --all; exactly one of the two."""
    if all_ and name:
        raise TitoError("give a module name or --all, not both")
    if all_:
        return discover(ws)
    if not name:
        raise TitoError("which module? give a name (e.g. 01_tensor, 01 or tensor) or --all")
    return [resolve(ws, name)]


def transitive_prerequisites(ws: Workspace, module: Module) -> set[str]:
    by_name = {m.name: m for m in discover(ws)}
    seen: set[str] = set()
    stack = list(module.prerequisites)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        if name not in by_name:
            raise TitoError(f"{module.folder / MANIFEST}: prerequisite {name!r} is not a module (tito module list shows all)")
        seen.add(name)
        stack.extend(by_name[name].prerequisites)
    return seen
