"""`#| export` cells -> the package, through nbdev 3's own exporter. The one export path of tito.

nbdev's ModuleMaker writes into a scratch copy of the layout (so the provenance markers it writes,
`# %% ../../modules/NN_slug/slug_dev.py #grade-id`, are relative to the real package), then only
files whose bytes changed are replaced, atomically. Exporting twice changes no byte.

Exporting an unchanged module is the common case (tito test and module complete export too), so
each export records a fingerprint of everything the result depends on (the source read, every
module.yaml, tito's export code, nbdev's version) with the hashes of the files it produced, in
.tito/export-cache.json. When the fingerprint and the files on disk still match, nothing is parsed
and neither jupytext nor nbdev is even imported.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from tito.core.errors import TitoError
from tito.core.manifest import Module
from tito.core.source import source_path
from tito.core.workspace import Workspace

CACHE_NAME = "export-cache.json"   # next to the progress file (settings.ini [paths] progress), ignored by git
# tito's own code that decides what an export produces: a change to it invalidates the cache.
EXPORT_CODE = [Path(__file__).with_name(name) for name in ("exporter.py", "source.py", "dependencies.py", "manifest.py")]


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
    from fastcore.nbio import dict2nb
    from nbdev.export import ExportModuleProc
    from nbdev.maker import ModuleMaker
    from nbdev.process import NBProcessor

    from tito.core.dependencies import check_imports
    from tito.core.source import check_source, read_source

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
    cache = _load_cache(ws)
    results: list[ExportResult | None] = []
    rendered = []
    for module in modules:
        fingerprint = _fingerprint(ws, module)
        if _cache_holds(ws, cache.get(module.name), fingerprint):
            results.append(ExportResult(module, source_path(module), []))
        else:
            results.append(None)
            rendered.append((len(results) - 1, module, fingerprint, *render(ws, module)))
    for index, module, fingerprint, source, files in rendered:
        changed = [ws.root / relative for relative, text in files.items()
                   if not (ws.root / relative).exists() or (ws.root / relative).read_text(encoding="utf-8") != text]
        if not check_only:
            for destination in changed:
                _write_atomically(destination, files[destination.relative_to(ws.root)])
        if not check_only or not changed:   # the files on disk are now exactly this export
            cache[module.name] = {"fingerprint": fingerprint,
                                  "files": {str(r): _sha256(text.encode("utf-8")) for r, text in files.items()}}
        results[index] = ExportResult(module, source, changed)
    if not check_only:
        ensure_package_inits(ws.package_dir)
    if rendered:
        _save_cache(ws, cache)
    return results


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fingerprint(ws: Workspace, module: Module) -> str:
    """Everything one module's export depends on (dependency checks read every module.yaml)."""
    digest = hashlib.sha256()
    source = source_path(module)
    parts = [str(source.relative_to(ws.root)).encode(), source.read_bytes(), ws.package_name.encode(),
             metadata.version("nbdev").encode()]
    parts += [p.read_bytes() for p in sorted(ws.modules_dir.glob("*/module.yaml"))]
    parts += [p.read_bytes() for p in EXPORT_CODE]
    for part in parts:
        digest.update(len(part).to_bytes(8, "little") + part)
    return digest.hexdigest()


def _cache_holds(ws: Workspace, entry: dict | None, fingerprint: str) -> bool:
    if not entry or entry.get("fingerprint") != fingerprint or not entry.get("files"):
        return False
    for relative, digest in entry["files"].items():
        path = ws.root / relative
        if not path.is_file() or _sha256(path.read_bytes()) != digest:
            return False
    return True


def _cache_path(ws: Workspace) -> Path:
    return ws.path("progress").parent / CACHE_NAME


def _load_cache(ws: Workspace) -> dict:
    try:
        return json.loads(_cache_path(ws).read_text())
    except (OSError, ValueError):
        return {}   # no cache (or a damaged one) only means rendering again


def _save_cache(ws: Workspace, cache: dict) -> None:
    try:
        _write_atomically(_cache_path(ws), json.dumps(cache, indent=1, sort_keys=True))
    except OSError:
        pass        # a read-only workspace still exports; it just renders every time


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
