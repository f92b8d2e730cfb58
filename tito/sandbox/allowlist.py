"""What a limited process may see of the machine: an allowlist, everything else does not exist.

The sandbox's root is a fresh, empty tmpfs. Into it, read-only and at their own paths, go the
Python runtime (interpreter, standard library, installed libraries, the shared libraries they
load) and a few files of /etc the dynamic loader reads. Nothing else of the host is there: no
/home, /root, /srv, /opt, no course checkout (this one or any other), no other user's files.
A path that is a symlink on the host is recreated as the same symlink, and its target exposed.
"""

from __future__ import annotations

import os
import site
import sys
import sysconfig
from dataclasses import dataclass, field

# Executables and shared libraries of the distribution (not /usr/share, /usr/src or /usr/local/src:
# data and sources, where another checkout could sit).
SYSTEM_DIRS = ("/usr/bin", "/usr/sbin", "/usr/lib", "/usr/lib32", "/usr/lib64", "/usr/libx32", "/usr/libexec",
               "/usr/local/bin", "/usr/local/lib", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# What the loader and the C library read; alternatives holds symlinks to BLAS and friends.
SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives", "/etc/localtime")
DEVICES = ("null", "zero", "full", "random", "urandom")


@dataclass
class View:
    binds: set[str] = field(default_factory=set)          # host paths, bound read-only at the same path
    symlinks: dict[str, str] = field(default_factory=dict)  # path -> link text, recreated as is

    def expose(self, path: str, depth: int = 0) -> None:
        """Make path visible, following (and recreating) every symlink on the way to it."""
        path = os.path.abspath(path)
        if depth > 40 or not os.path.lexists(path):
            return
        current = "/"
        parts = [p for p in path.split("/") if p]
        for index, part in enumerate(parts):
            following = os.path.join(current, part)
            if os.path.islink(following):
                target = os.readlink(following)
                self.symlinks[following] = target
                resolved = os.path.normpath(os.path.join(current, target))
                self.expose(os.path.join(resolved, *parts[index + 1:]), depth + 1)
                return
            current = following
        self.binds.add(current)

    def outermost(self) -> list[str]:
        """Bind targets, without those inside another one (already visible through it)."""
        binds = sorted(self.binds, key=len)
        kept: list[str] = []
        for path in binds:
            if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
                kept.append(path)
        return sorted(kept)

    def symlinks_to_make(self) -> dict[str, str]:
        binds = self.outermost()
        return {p: t for p, t in sorted(self.symlinks.items())
                if not any(p.startswith(b.rstrip("/") + "/") for b in binds)}


def python_paths() -> list[str]:
    """The interpreter, its standard library and every folder of installed libraries."""
    paths = [sys.executable, os.path.realpath(sys.executable), os.path.join(sys.prefix, "pyvenv.cfg")]
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        for scheme_vars in ({}, {"base": sys.base_prefix, "platbase": sys.base_exec_prefix}):
            paths.append(sysconfig.get_paths(vars=scheme_vars or None)[name])
    paths += site.getsitepackages()
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        paths.append(site.getusersitepackages())
    paths += [p for p in sys.path if p.endswith(("site-packages", "dist-packages", "lib-dynload")) or p.endswith(".zip")]
    library = sysconfig.get_config_var("LIBDIR")
    if library and sysconfig.get_config_var("Py_ENABLE_SHARED"):
        paths += [os.path.join(library, n) for n in os.listdir(library) if n.startswith("libpython")] \
            if os.path.isdir(library) else []
    return [p for p in paths if p and os.path.lexists(p)]


def runtime_view() -> View:
    view = View()
    for path in (*SYSTEM_DIRS, *SYSTEM_FILES, *python_paths()):
        view.expose(path)
    return view
