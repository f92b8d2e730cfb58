"""Starting the limited process, with every limit the machine can enforce.

As root on Linux: new network, mount and PID namespaces (`unshare`), the course's secret folders
hidden behind empty mounts, a uid of its own, and resource limits. Without root: a process group
of its own, resource limits and a scrubbed environment only (see the README's grading section).
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tito.core.workspace import GradingLimits
from tito.sandbox.endpoint import Endpoint

UID_BASE = 100_000              # each submission in a run gets its own uid: no shared files, no shared process count
ENV_KEEP = ("LANG", "LC_ALL", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def can_isolate() -> bool:
    return sys.platform.startswith("linux") and os.geteuid() == 0 and shutil.which("unshare") is not None \
        and os.environ.get("TITO_SANDBOX_NO_ISOLATION") != "1"


def _die_with_parent() -> None:
    """Child setup: a session of its own, and SIGKILL when the grading worker dies (even by kill -9)."""
    os.setsid()
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
    except OSError:
        pass


@dataclass
class Sandbox:
    endpoint: Endpoint
    process: subprocess.Popen
    scratch: Path
    isolated: bool

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
        shutil.rmtree(self.scratch, ignore_errors=True)
        return f"signal {-code}" if code < 0 else f"exit code {code}"


def start(package_source: Path, workspace: Path, hide: list[Path], limits: GradingLimits, slot: int,
          package_files: dict[str, str] | None = None, work_files: dict[str, str] | None = None) -> Sandbox:
    """Start a limited process whose `tinytorch` is a copy of package_source (prerequisites only).

    package_files / work_files: extra files (relative path -> text) for its package / its work folder.
    """
    scratch = Path(tempfile.mkdtemp(prefix="tito-sandbox-"))
    package_root = scratch / "site"
    shutil.copytree(package_source, package_root / "tinytorch")
    (scratch / "work").mkdir()
    for base, files in ((package_root / "tinytorch", package_files), (scratch / "work", work_files)):
        for relative, text in (files or {}).items():
            (base / relative).parent.mkdir(parents=True, exist_ok=True)
            (base / relative).write_text(text, encoding="utf-8")
    isolated = can_isolate()
    config = {
        "isolate": isolated,
        "uid": UID_BASE + slot,
        "scratch": str(scratch),
        "package_root": str(package_root),
        "workspace": str(workspace),
        "hide": [str(p) for p in hide if p.exists()],
        "limits": {"memory_mb": limits.memory_mb, "submission_timeout": limits.submission_timeout,
                   "max_processes": limits.max_processes},
    }
    env = {k: os.environ[k] for k in ENV_KEEP if k in os.environ}
    env.update({"PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin", "HOME": str(scratch / "work"),
                "PYTHONPATH": str(package_root), "PYTHONDONTWRITEBYTECODE": "1", "MPLBACKEND": "Agg",
                "TITO_AUTOGRADING": "1", "NUMBA_CACHE_DIR": str(scratch / "work" / ".numba"), "TMPDIR": str(scratch / "work")})
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    command = [sys.executable, "-m", "tito.sandbox.child", json.dumps(config)]
    if isolated:
        command = ["unshare", "--net", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc", *command]
    # The child reads requests on fd 3 and writes answers on fd 4.
    # Until the child redirects its own output, what it prints (a failure to confine) goes to startup.log.
    with open(scratch / "startup.log", "wb") as startup_log:
        process = subprocess.Popen(command, cwd=scratch, env=env, stdin=subprocess.DEVNULL, stdout=startup_log,
                                   stderr=startup_log, pass_fds=(3, 4), preexec_fn=_fds_then_detach(to_child_r, from_child_w))
    os.close(to_child_r)
    os.close(from_child_w)
    return Sandbox(Endpoint(from_child_r, to_child_w), process, scratch, isolated)


def _fds_then_detach(read_fd: int, write_fd: int):
    def setup():
        os.dup2(read_fd, 3)
        os.dup2(write_fd, 4)
        _die_with_parent()
    return setup
