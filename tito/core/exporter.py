"""`#| export` cells -> the package, through nbdev 3's own exporter. The one export path of tito.

nbdev's ModuleMaker writes into a scratch copy of the layout (so the provenance markers it writes,
`# %% ../../modules/NN_slug/slug_dev.py #grade-id`, are relative to the real package), then only
files whose bytes changed are replaced, atomically. Exporting twice changes no byte.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fastcore.nbio import dict2nb
from nbdev.export import ExportModuleProc
from nbdev.maker import ModuleMaker
from nbdev.process import NBProcessor

from tito.core.dependencies import check_imports
from tito.core.errors import TitoError
from tito.core.manifest import Module
from tito.core.source import check_source, read_source
from tito.core.workspace import Workspace


@dataclass
class ExportResult:
    module: Module
    source: Path
    changed: list[Path]      # files that differ from what is on disk (written unless check-only)

    @property
    def in_sync(self) -> bool:
        return not self.changed


def render(ws: Workspace, module: Module, path: Path | None = None) -> tuple[Path, dict[Path, str]]:
    """Export one module in memory: (source read, {package-relative path: text}). Nothing is written.

    path: another notebook of the module to export instead of its source (a student's submission).
    """
    source = read_source(module, path)
    target = check_source(source, ws.package_name)
    check_imports(ws, source)
    with tempfile.TemporaryDirectory(prefix="tito-export-") as scratch:
        scratch = Path(scratch)
        lib = scratch / ws.package_name
        inside = source.path.is_relative_to(ws.root)
        nb_path = scratch / (source.path.relative_to(ws.root) if inside else source.path.name)
        processor = ExportModuleProc()
        NBProcessor(nb=dict2nb(source.notebook), procs=[processor]).process()
        code_cells = [c for c in processor.modules.get("#", []) if c.cell_type == "code"]
        if not code_cells:
            raise TitoError(f"{source.path}: no `#| export` cells; nothing would reach {module.exports_to}")
        for name, cells in processor.modules.items():
            dotted = target if name == "#" else name
            maker = ModuleMaker(dest=lib, name=dotted, nb_path=nb_path, is_new=True)
            maker.make(cells, processor.in_all[name], lib_path=lib)
        files = {p.relative_to(scratch): p.read_text(encoding="utf-8") for p in sorted(lib.rglob("*.py"))}
    return source.path, files


def export(ws: Workspace, module: Module, check_only: bool = False) -> ExportResult:
    return export_many(ws, [module], check_only)[0]


def export_many(ws: Workspace, modules: list[Module], check_only: bool = False) -> list[ExportResult]:
    """Render every module first; write only if all of them rendered (a bad source writes nothing)."""
    rendered = [(module, *render(ws, module)) for module in modules]
    results = []
    for module, source_path, files in rendered:
        changed = [ws.root / relative for relative, text in files.items()
                   if not (ws.root / relative).exists() or (ws.root / relative).read_text(encoding="utf-8") != text]
        if not check_only:
            for destination in changed:
                _write_atomically(destination, files[destination.relative_to(ws.root)])
        results.append(ExportResult(module, source_path, changed))
    if not check_only:
        ensure_package_inits(ws.package_dir)
    return results


def ensure_package_inits(package_dir: Path) -> None:
    """Every folder of the package that holds modules gets an (empty) __init__.py, as nbdev does."""
    folders = {package_dir}
    for module_file in package_dir.rglob("*.py"):
        folders.update(f for f in module_file.parents if f.is_relative_to(package_dir))
    for folder in sorted(folders):
        init = folder / "__init__.py"
        if not init.exists():
            init.write_text("")


def _write_atomically(destination: Path, text: str) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, destination)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
