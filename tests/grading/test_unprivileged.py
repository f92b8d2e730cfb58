"""The attack suite, graded by an ordinary user: isolation without root, through user namespaces.

Run as root, the test creates an unprivileged account (useradd) and runs tito as that user
(setpriv). The Python runtime may sit under a private folder (/root/.pyenv here): a mount
namespace of the test's own makes only the runtime traversable, as a user's own Python would be.
Where the kernel forbids unprivileged user namespaces the test is skipped, saying so.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

from grading_course import REPO, gradebook_scores, released_notebooks
from submissions import TEST_OF, attacks, honest

ACCOUNT = "tito-grader-test"
ATTACKS = ("read-secrets", "import-reference", "write-gradebook", "write-package", "patch-numpy", "fork-bomb",
           "memory-bomb", "infinite-loop", "exit-process", "forge-channel")

# Runs as root in a fresh mount namespace: covers each private ancestor of the needed paths with an
# empty tmpfs and binds back only the way to those paths, then execs the command.
TRAVERSABLE = r"""
import ctypes, os, stat, sys
from pathlib import Path
libc = ctypes.CDLL(None, use_errno=True)
def mount(source, target, fstype, flags, options):
    if libc.mount(source, target, fstype, flags, options) != 0:
        raise OSError(ctypes.get_errno(), f"mount {target}")
needed = [Path(p) for p in sys.argv[1].split(":")]
mount(None, b"/", None, 16384 | (1 << 18), None)
for ancestor in sorted({a for p in needed for a in p.parents if a != Path("/")}, key=lambda a: len(a.parts)):
    if os.stat(ancestor).st_mode & stat.S_IXOTH:
        continue
    children = {ancestor / p.relative_to(ancestor).parts[0] for p in needed if p.is_relative_to(ancestor) and p != ancestor}
    held = [(c, os.open(c, os.O_RDONLY | os.O_DIRECTORY)) for c in sorted(children) if c.is_dir()]
    mount(b"tmpfs", bytes(ancestor), b"tmpfs", 0, b"mode=0755,size=1m")
    for child, fd in held:
        child.mkdir()
        mount(f"/proc/self/fd/{fd}".encode(), bytes(child), None, 4096 | 16384, None)
os.execvp(sys.argv[2], sys.argv[2:])
"""


def _account() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(ACCOUNT)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", ACCOUNT], check=True)
        return pwd.getpwnam(ACCOUNT)


def _as_user(root: Path):
    """A function running `tito ...` in root's course as an ordinary user; the reason if none can."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root), "HOME": str(root / "home"), "LANG": "C.UTF-8"}
    tito = [sys.executable, "-m", "tito"]
    if os.geteuid() != 0:
        return lambda *args: subprocess.run([*tito, *args], cwd=root, env=env, capture_output=True, text=True, timeout=900)
    if not (shutil.which("unshare") and shutil.which("setpriv") and shutil.which("useradd")):
        pytest.skip("running as root without unshare, setpriv or useradd to become an ordinary user")
    user = _account()
    for folder, _, files in os.walk(root):
        for name in [folder, *(os.path.join(folder, f) for f in files)]:
            os.lchown(name, user.pw_uid, user.pw_gid)
    needed = ":".join(dict.fromkeys([sys.prefix, sys.base_prefix, os.path.realpath(sys.executable), str(REPO), str(root)]))
    become = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", "--inh-caps=-all",
              "env", "-i", *(f"{k}={v}" for k, v in env.items())]
    return lambda *args: subprocess.run(["unshare", "--mount", sys.executable, "-c", TRAVERSABLE, needed, *become, *tito, *args],
                                        cwd=root, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def graded_by_a_user(released_course):
    base = Path(tempfile.mkdtemp(prefix="tito-unprivileged-"))
    base.chmod(0o755)
    root = base / "course"
    shutil.copytree(released_course, root)
    (root / "home").mkdir()
    release, solution = released_notebooks(root)
    # The attacks aim at the instructor's real checkout: world-readable, so only isolation keeps it away.
    chosen = [a for a in attacks(release, solution, str(REPO), str(root / "grading")) if a.attack in ATTACKS]
    chosen += [honest(release, solution, set(TEST_OF), "honest-full"), honest(release, solution, {"relu", "tanh"}, "honest-two")]
    uploads = root / "uploads"
    uploads.mkdir()
    for s in chosen:
        nbformat.write(s.notebook, uploads / f"{s.student}.ipynb")
    package = REPO / "tinytorch/core/activations.py"
    before = package.read_bytes()
    run = _as_user(root)
    whoami = run("system", "doctor")
    collected = run("nbgrader", "collect", str(uploads))
    graded = run("nbgrader", "autograde", "02", "--workers", "2")
    yield {"root": root, "chosen": chosen, "doctor": whoami, "collect": collected, "autograde": graded,
           "scores": gradebook_scores(root), "package_untouched": package.read_bytes() == before}
    shutil.rmtree(base, ignore_errors=True)


def test_an_ordinary_user_gets_namespaces_and_is_told_so(graded_by_a_user):
    graded = graded_by_a_user["autograde"]
    out = " ".join(graded.stdout.split())
    if "isolation: limits only" in out and "user namespaces" in out:
        pytest.skip(f"this kernel forbids unprivileged user namespaces: {out[:300]}")
    assert graded.returncode == 0, graded.stdout[-3000:] + graded.stderr[-3000:]
    assert "isolation: isolated without root (unprivileged user namespace)" in out
    assert "[isolated without root]" in out
    assert "grading isolation isolated without root" in " ".join(graded_by_a_user["doctor"].stdout.split())


def test_every_submission_earns_exactly_its_honest_score(graded_by_a_user):
    scores = graded_by_a_user["scores"]
    got = {s.student: sum(v for (st, _), v in scores.items() if st == s.student) for s in graded_by_a_user["chosen"]}
    assert got == {s.student: s.honest_score for s in graded_by_a_user["chosen"]}, graded_by_a_user["autograde"].stdout[-3000:]


def test_the_instructors_checkout_is_untouched(graded_by_a_user):
    assert graded_by_a_user["package_untouched"]
