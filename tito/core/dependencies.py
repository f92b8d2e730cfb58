"""A module may import only from the modules it lists as prerequisites (transitively), never a later one."""

from __future__ import annotations

from tito.core.errors import TitoError
from tito.core.manifest import discover, transitive_prerequisites
from tito.core.source import Source, package_imports
from tito.core.workspace import Workspace


def check_imports(ws: Workspace, source: Source) -> None:
    module = source.module
    modules = discover(ws)
    exporter_of = {m.exports_to: m for m in modules}
    allowed = transitive_prerequisites(ws, module)
    for prerequisite in allowed:
        owner = next(m for m in modules if m.name == prerequisite)
        if owner.number >= module.number:
            raise TitoError(f"{module.folder / 'module.yaml'}: prerequisite {prerequisite} is not an earlier module; "
                            "a module may only build on modules with smaller numbers")
    for imported in sorted(package_imports(source, ws.package_name)):
        if imported == ws.package_name or imported == module.exports_to:
            continue
        owner = exporter_of.get(imported)
        if owner is None:
            raise TitoError(f"{source.path}: imports {imported}, which no module exports (tito module list shows the exports)")
        if owner.name not in allowed:
            later = " (a later module)" if owner.number > module.number else ""
            raise TitoError(f"{source.path}: imports {imported} from {owner.name}{later}, which is not among its "
                            f"prerequisites; add it to module.yaml prerequisites or remove the import")
