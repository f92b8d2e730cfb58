"""The limited process: confines itself, then runs the student's cells and answers the tests' calls.

Started by tito.sandbox.launcher, as root inside fresh namespaces when the machine allows it:
it hides the course's secrets behind empty tmpfs mounts, drops to an unprivileged uid, applies its
resource limits, and only then executes any student code.

    python -m tito.sandbox.child CONFIG_JSON      (reads requests on fd 3, answers on fd 4)
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import signal
import sys
import traceback

from tito.sandbox.endpoint import LimitedEndpoint, describe_exception

MAX_CELL_OUTPUT = 20_000      # characters of printed output kept per cell; the rest is dropped


class CappedText(io.TextIOBase):
    """A stdout that keeps the first MAX_CELL_OUTPUT characters and drops the rest (a 1 GB print is harmless)."""

    def __init__(self):
        self.parts, self.size, self.dropped = [], 0, 0

    def writable(self):
        return True

    def write(self, text):
        text = str(text)
        room = MAX_CELL_OUTPUT - self.size
        if room > 0:
            self.parts.append(text[:room])
            self.size += min(room, len(text))
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def getvalue(self):
        tail = f"\n[... {self.dropped} more characters of output dropped]" if self.dropped else ""
        return "".join(self.parts) + tail


def _display(*objects, **_options) -> None:
    for obj in objects:
        print(repr(obj))


class StudentEndpoint(LimitedEndpoint):
    def __init__(self, read_fd, write_fd, cells_dir: str):
        super().__init__(read_fd, write_fd)
        # `display` is a builtin in Jupyter; notebooks call it freely, so it prints here.
        self.namespace = {"__name__": "__main__", "__builtins__": __builtins__, "display": _display}
        self.cells_dir = cells_dir
        self.cells_run = 0
        self.cell_names: dict[str, str] = {}    # cell file -> how feedback names it

    def dispatch_extra(self, message):
        if message.get("op") == "exec":
            return {"ok": self.encode(self.run_cell(str(message.get("source", "")), str(message.get("name") or "")))}
        if message.get("op") == "lookup":
            name = str(message.get("name"))
            if name not in self.namespace:
                return {"ok": None, "missing": True}
            return {"ok": self.encode(self.namespace[name])}
        return super().dispatch_extra(message)

    def describe(self, exc: BaseException) -> dict:
        """An exception for the other side, with the frames of the submission's own cells."""
        return {**describe_exception(exc), "frames": self.student_traceback(exc)[0]}

    def student_traceback(self, exc: BaseException) -> tuple[str, int | None]:
        """(the frames of the student's own cells, named as the notebook names them; the last line
        reached in those cells). Frames of the grader, the sandbox folder and libraries stay out."""
        lines, last = [], None
        for frame in traceback.extract_tb(exc.__traceback__):
            label = self.cell_names.get(frame.filename)
            if label is None:
                continue
            lines.append(f"  {label}, line {frame.lineno}, in {frame.name}")
            if frame.line:
                lines.append(f"    {frame.line.strip()}")
            last = frame.lineno
        if not lines:
            return "", None
        message = describe_exception(exc)["message"]
        text = "\n".join(["Traceback (your code):", *lines, f"{type(exc).__name__}: {message}".strip()])
        return text[-MAX_CELL_OUTPUT:], last

    def run_cell(self, source: str, name: str = "") -> dict:
        out = CappedText()
        error = None
        # Each cell is compiled from a real file: tracebacks show its lines, and numba's on-disk
        # cache (@njit(cache=True)) needs a source file to key on. The grader names cells "cell N"
        # (N: the notebook's numbering), and the file is named after N, so that `tito mutate` can
        # tell which cached kernels came from which cell (tito.sandbox.numba_cache).
        self.cells_run += 1
        number = name[5:] if name.startswith("cell ") else ""
        stem = f"cell_{int(number):04d}" if number.isdigit() else f"run_{self.cells_run:04d}"
        path = os.path.join(self.cells_dir, f"{stem}.py")
        if os.path.exists(path):     # a name given twice: never overwrite a cell's file
            path = os.path.join(self.cells_dir, f"run_{self.cells_run:04d}.py")
        self.cell_names[path] = f"In [{name or self.cells_run}]"
        try:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(source)
            code = compile(source, path, "exec")
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                exec(code, self.namespace)
        except BaseException as exc:  # noqa: B902 - SystemExit and KeyboardInterrupt end the cell, not us
            error = describe_exception(exc)
            error["traceback"], error["line"] = self.student_traceback(exc)
            if not error["traceback"]:
                error["traceback"] = f"{type(exc).__name__}: {error['message']}".strip()
        return {"output": out.getvalue(), "error": error}


MS_BIND = 4096


def _mount(source: str, target: str, fstype: str | None = None, options: str | None = None, flags: int = 0) -> None:
    """mount(2) itself: mount(8) would canonicalise a /proc/PID/fd source into a path, losing the folder."""
    import ctypes

    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    encode = lambda v: None if v is None else v.encode()  # noqa: E731
    if libc.mount(encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(options)) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"mount {source} on {target}: {os.strerror(error)}")


def _tmpfs(target: str, options: str) -> None:
    _mount("tmpfs", target, "tmpfs", options)


def _bind(source: str, target: str) -> None:
    _mount(source, target, flags=MS_BIND)


def cover(folder: str, keep: list[str], options: str) -> None:
    """Mount an empty tmpfs over folder, then bind each path of keep that lies inside it back at its
    own place (through file descriptors opened before the mount hid them)."""
    from pathlib import Path

    inside = {Path(p) for p in keep if Path(p) != Path(folder) and Path(p).is_relative_to(folder)}
    outermost = sorted(p for p in inside if not any(p != q and p.is_relative_to(q) for q in inside))
    held = [(p, os.open(p, os.O_RDONLY | os.O_DIRECTORY)) for p in outermost if p.is_dir()]
    _tmpfs(folder, options)
    for path, fd in held:
        os.makedirs(path, exist_ok=True)
        _bind(f"/proc/self/fd/{fd}", str(path))
        os.close(fd)


def runtime_paths() -> list[str]:
    """Folders the limited process must still reach: the Python runtime, its packages, tito."""
    import tito

    paths = [sys.base_prefix, sys.prefix, os.path.dirname(os.path.dirname(tito.__file__)), *sys.path]
    return sorted({os.path.realpath(p) for p in paths if p and os.path.isdir(p)})


def make_traversable(needed: list[str]) -> None:
    """Let an unprivileged uid reach the Python runtime even when it lives under a private folder:
    a private ancestor (say /root, mode 0700) is covered, and only the runtime is bound back."""
    import stat
    from pathlib import Path

    ancestors = sorted({a for p in needed for a in Path(p).parents if a != Path("/")}, key=lambda a: len(a.parts))
    for ancestor in ancestors:
        if not os.stat(ancestor).st_mode & stat.S_IXOTH:
            cover(str(ancestor), needed, "size=1m,mode=0755")


def private_temp_folders(keep: list[str]) -> None:
    """/tmp, /var/tmp and /dev/shm become empty in this mount namespace (nothing the submission writes
    there outlives it or reaches another one); the scratch folder and the runtime, which may live
    there, are bound back."""
    for folder in ("/tmp", "/var/tmp", "/dev/shm"):
        if os.path.isdir(folder):
            cover(folder, keep, "size=256m,mode=1777")


def confine(config: dict) -> None:
    """Namespaces were made by the launcher; here: hide secrets, drop privileges, set limits."""
    if config.get("isolate") and os.geteuid() == 0:
        runtime = [p for p in runtime_paths() if not p.startswith(os.path.realpath(config["scratch"]))]
        make_traversable(runtime)
        private_temp_folders([*runtime, os.path.realpath(config["scratch"])])
        for path in config.get("hide", []):
            if os.path.isdir(path):
                _tmpfs(path, "size=1m,mode=0555")
        uid = int(config["uid"])
        os.chown(config["scratch"], uid, uid)
        for root, dirs, files in os.walk(config["scratch"]):
            for name in dirs + files:
                os.lchown(os.path.join(root, name), uid, uid)
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    limits = config["limits"]
    memory = int(limits["memory_mb"]) * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 2**20, 64 * 2**20))
    cpu = int(limits["submission_timeout"]) + 5
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    if config.get("isolate"):
        # Counted per uid, so it only means something for the sandbox's own uid.
        nproc = int(limits["max_processes"])
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a huge file write fails instead of killing us
    log = os.open(os.path.join(config["scratch"], "process-output.log"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.chdir(config["scratch"])
    # The editable install maps `tinytorch` to the course repository; students get the scratch copy.
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__name__.lower()
                        and "editable" not in getattr(f, "__name__", "").lower()]
    sys.path[:] = [config["package_root"]] + [p for p in sys.path if p not in ("", config["workspace"], os.getcwd())]
    for name in [m for m in sys.modules if m == "tinytorch" or m.startswith("tinytorch.")]:
        del sys.modules[name]


def main() -> None:
    config = json.loads(sys.argv[1])
    import numpy  # noqa: F401 - loaded before the memory limit, as any notebook would have it
    confine(config)
    cells = os.path.join(config["scratch"], "work", "cells")
    os.makedirs(cells, exist_ok=True)
    StudentEndpoint(3, 4, cells).channel.serve_forever()
    os._exit(0)


if __name__ == "__main__":
    main()
