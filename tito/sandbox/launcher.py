"""Starting the limited process, with every limit the machine can enforce.

Three isolation modes, chosen per machine and said out loud (`tito system doctor`, and before
every batch):

- root: new network, mount, PID, IPC and UTS namespaces; a root made of an allowlist (tito.sandbox.
  allowlist: the Python runtime and installed libraries read-only, the prerequisite package, a
  scratch folder with a total quota); a uid of its own, locked against every other tito run on
  the host; resource limits.
- user: the same without root, through an unprivileged user namespace (tito.sandbox.jail), where
  the kernel allows it; the submission keeps the instructor's uid outside, but sees and can
  write nothing of theirs, and the process limit counts in its own namespace.
- none: a process group of its own, resource limits and a scrubbed environment only (not Linux, a
  kernel that forbids user namespaces, or TITO_SANDBOX_NO_ISOLATION=1).

The prerequisite package is handed over compiled: `.pyc` files, no source (see `hand_over_package`).
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import py_compile
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from tito.core.workspace import GradingLimits
from tito.sandbox import numba_cache
from tito.sandbox.endpoint import Endpoint

UID_BASE = 100_000              # sandbox uids (root mode): one per live sandbox, on the whole host
UID_COUNT = 60_000
UID_LOCK_DIRS = ("/run/tito-sandbox-uids", "/var/lock/tito-sandbox-uids")
SCRATCH_QUOTA_MB = 512          # all a submission may write, in total (scratch, /tmp, /dev/shm)
TITO_INSIDE = "/run/tito-lib"   # where tito itself is bound inside (read-only); never the checkout around it
WITHHELD = ".withheld"          # placeholder files the compiled prerequisites name as their source
ENV_KEEP = ("LANG", "LC_ALL", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


@dataclass(frozen=True)
class Isolation:
    mode: str       # "root", "user" or "none"
    reason: str = ""

    @property
    def isolated(self) -> bool:
        return self.mode != "none"

    def describe(self) -> str:
        if self.mode == "root":
            return ("isolated as root: own network, mount, PID, IPC and UTS namespaces; an allowlisted read-only "
                    "filesystem; a uid of its own per submission; time, memory, process and disk limits")
        if self.mode == "user":
            return ("isolated without root (unprivileged user namespace): own network, mount, PID, IPC and UTS "
                    "namespaces; an allowlisted read-only filesystem; time, memory, process and disk limits")
        return (f"limits only ({self.reason}): no namespaces, so a submission can read what this user can read "
                "and reach the network; grade on Linux with user namespaces enabled, or as root")


def _tito_dir() -> str:
    import tito

    return os.path.dirname(os.path.abspath(tito.__file__))


def _jail_env() -> dict:
    """The jail (trusted, before any confinement) only needs to import tito."""
    return {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.path.dirname(_tito_dir()), "PYTHONDONTWRITEBYTECODE": "1"}


_isolation: Isolation | None = None


def isolation() -> Isolation:
    """Which isolation this machine gives, probed once per process (a real namespace, mount and pivot)."""
    global _isolation
    if _isolation is None:
        _isolation = _probe()
    return _isolation


def _probe() -> Isolation:
    if not sys.platform.startswith("linux"):
        return Isolation("none", f"not Linux ({sys.platform})")
    if os.environ.get("TITO_SANDBOX_NO_ISOLATION") == "1":
        return Isolation("none", "TITO_SANDBOX_NO_ISOLATION=1")
    wanted = "root" if os.geteuid() == 0 else "user"
    try:
        probe = subprocess.run([sys.executable, "-P", "-m", "tito.sandbox.jail", "--probe", wanted],
                               capture_output=True, text=True, timeout=30, env=_jail_env(), cwd="/")
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Isolation("none", f"the namespace probe failed: {exc}")
    if probe.returncode == 0:
        return Isolation(wanted)
    detail = (probe.stderr.strip().splitlines() or [f"exit code {probe.returncode}"])[-1]
    why = "as root" if wanted == "root" else "this kernel forbids unprivileged user namespaces, or"
    return Isolation("none", f"{why} namespaces are refused here: {detail}")


def can_isolate() -> bool:
    return isolation().isolated


def _die_with_parent() -> None:
    """Child setup: a session of its own, and SIGKILL when the grading process dies (even by kill -9)."""
    os.setsid()
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
    except OSError:
        pass


def _uid_lock_dir() -> str:
    for folder in UID_LOCK_DIRS:
        try:
            os.makedirs(folder, mode=0o700, exist_ok=True)
            info = os.stat(folder, follow_symlinks=False)
        except OSError:
            continue
        if info.st_uid == 0 and not info.st_mode & 0o022 and os.path.isdir(folder) and not os.path.islink(folder):
            return folder
    raise OSError("no root-owned folder for sandbox uid locks (tried " + ", ".join(UID_LOCK_DIRS) + ")")


def allocate_uid() -> tuple[int, int]:
    """A sandbox uid no other live sandbox on this host holds: (uid, fd of its lock). The lock is an
    flock, so it is released by the kernel when its last holder dies, even by kill -9."""
    import pwd

    folder = _uid_lock_dir()
    for uid in range(UID_BASE, UID_BASE + UID_COUNT):
        try:
            pwd.getpwuid(uid)
            continue                 # a real account: never lend its uid to a submission
        except KeyError:
            pass
        fd = os.open(os.path.join(folder, f"{uid}.lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return uid, fd
    raise OSError(f"all {UID_COUNT} sandbox uids are in use")


def _uid_in_use(uid: int) -> bool:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    return True
            except OSError:
                continue
    return False


@dataclass
class Sandbox:
    endpoint: Endpoint
    process: subprocess.Popen
    scratch: Path
    isolated: bool
    mode: str = "none"
    uid: int | None = None
    lock_fd: int | None = field(default=None, repr=False)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> str:
        """Kill everything the submission started; returns how it ended."""
        if self.scratch.exists() and not hasattr(self, "startup_log"):
            log = self.scratch / "startup.log"
            self.startup_log = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        code = self.process.wait()
        for fd in (self.endpoint.channel.read_fd, self.endpoint.channel.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.lock_fd is not None:
            # PID 1 of the namespace dies with the jail; its last processes go a moment later.
            deadline = time.monotonic() + 2
            while self.uid is not None and _uid_in_use(self.uid) and time.monotonic() < deadline:
                time.sleep(0.01)
            os.close(self.lock_fd)
            self.lock_fd = None
        shutil.rmtree(self.scratch, ignore_errors=True)
        return f"signal {-code}" if code < 0 else f"exit code {code}"


def hand_over_package(package_source: Path, target: Path) -> None:
    """The prerequisites as bytecode only: a submission can import and run the earlier modules'
    reference code (its own module's tests need them), but no source line of it exists in the
    sandbox to print. Each module names a placeholder as its source file (numba's on-disk cache
    keys on a file that exists); tracebacks through it show no code."""
    placeholders = target.parent / WITHHELD
    for source in sorted(package_source.rglob("*.py")):
        relative = source.relative_to(package_source)
        placeholder = placeholders / target.name / relative
        placeholder.parent.mkdir(parents=True, exist_ok=True)
        placeholder.write_text("# The reference code of earlier modules is handed to the grader compiled; its source is withheld.\n")
        compiled = (target / relative).with_suffix(".pyc")
        compiled.parent.mkdir(parents=True, exist_ok=True)
        py_compile.compile(str(source), cfile=str(compiled), dfile=str(placeholder), doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    for data in sorted(p for p in package_source.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")):
        if "__pycache__" not in data.parts:
            (target / data.relative_to(package_source)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(data, target / data.relative_to(package_source))


@lru_cache(maxsize=1)
def _runtime_view():
    from tito.sandbox.allowlist import runtime_view

    view = runtime_view()
    return view.outermost(), view.symlinks_to_make()


def start(package_source: Path, workspace: Path, hide: list[Path], limits: GradingLimits, slot: int,
          package_files: dict[str, str] | None = None, work_files: dict[str, str] | None = None,
          numba_seed: dict | None = None) -> Sandbox:
    """Start a limited process whose `tinytorch` is a compiled copy of package_source (prerequisites only).

    package_files / work_files: extra files (relative path -> text) for its package / its work folder.
    numba_seed: `tito mutate` only, {"folder", "skip_cells"}: a numba cache to start from (numba_cache.seed).
    hide: kept for callers; with the allowlist nothing outside it is visible in any case.
    slot: unused since uids are allocated host-wide (kept for callers).
    """
    mode = isolation().mode
    scratch = Path(tempfile.mkdtemp(prefix="tito-sandbox-"))
    package_root = scratch / "site"
    hand_over_package(package_source, package_root / "tinytorch")
    (scratch / "work").mkdir()
    for base, files in ((package_root / "tinytorch", package_files), (scratch / "work", work_files)):
        for relative, text in (files or {}).items():
            (base / relative).parent.mkdir(parents=True, exist_ok=True)
            (base / relative).write_text(text, encoding="utf-8")
    if numba_seed:
        numba_cache.seed(Path(numba_seed["folder"]), scratch, list(numba_seed.get("skip_cells", [])))
    uid, lock_fd = allocate_uid() if mode == "root" else (os.getuid(), None)
    config = {
        "isolate": mode != "none",
        "uid": uid,
        "scratch": str(scratch),
        "package_root": str(package_root),
        "workspace": str(workspace),
        "hide": [],
        "limits": {"memory_mb": limits.memory_mb, "submission_timeout": limits.submission_timeout,
                   "max_processes": limits.max_processes},
    }
    env = {k: os.environ[k] for k in ENV_KEEP if k in os.environ}
    python_path = str(package_root) + (f"{os.pathsep}{TITO_INSIDE}" if mode != "none" else "")
    env.update({"PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin", "HOME": str(scratch / "work"),
                "PYTHONPATH": python_path, "PYTHONDONTWRITEBYTECODE": "1", "MPLBACKEND": "Agg",
                "TITO_AUTOGRADING": "1", "NUMBA_CACHE_DIR": str(scratch / numba_cache.CACHE), "TMPDIR": str(scratch / "work")})
    child = [sys.executable, "-m", "tito.sandbox.child", json.dumps(config)]
    fds = [3, 4]
    if mode == "none":
        command, process_env = child, env
    else:
        binds, symlinks = _runtime_view()
        jail = {"mode": mode, "uid": uid, "gid": uid if mode == "root" else os.getgid(), "root": str(scratch / ".root"),
                "binds": binds, "symlinks": symlinks, "scratch": str(scratch), "quota_mb": SCRATCH_QUOTA_MB,
                "read_only_in_scratch": ["site"], "copied_into_scratch": ["work"],
                "extra_binds": {_tito_dir(): f"{TITO_INSIDE}/tito"}, "devices": ["null", "zero", "full", "random", "urandom"],
                "child_fds": [3, 4], "lock_fd": 5 if lock_fd is not None else None, "argv": child, "env": env}
        command, process_env = [sys.executable, "-P", "-m", "tito.sandbox.jail", json.dumps(jail)], _jail_env()
        if lock_fd is not None:
            fds.append(5)
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    # The child reads requests on fd 3 and writes answers on fd 4 (the jail holds the uid lock on fd 5).
    # Until the child redirects its own output, what it prints (a failure to confine) goes to startup.log.
    with open(scratch / "startup.log", "wb") as startup_log:
        process = subprocess.Popen(command, cwd=scratch, env=process_env, stdin=subprocess.DEVNULL, stdout=startup_log,
                                   stderr=startup_log, pass_fds=tuple(fds),
                                   preexec_fn=_fds_then_detach(to_child_r, from_child_w, lock_fd))
    os.close(to_child_r)
    os.close(from_child_w)
    return Sandbox(Endpoint(from_child_r, to_child_w), process, scratch, mode != "none", mode, uid if lock_fd else None, lock_fd)


def _fds_then_detach(read_fd: int, write_fd: int, lock_fd: int | None):
    def setup():
        # Move every source out of the way first: one of them may already sit on 3, 4 or 5.
        moved = [(fcntl.fcntl(fd, fcntl.F_DUPFD, 100), target)
                 for fd, target in ((read_fd, 3), (write_fd, 4), (lock_fd, 5)) if fd is not None]
        for fd, target in moved:
            os.dup2(fd, target)
        _die_with_parent()
    return setup
