"""Deny by default: the limited process sees the Python runtime, its own package copy and scratch, nothing else.

A reference copy of module 02 is planted where a submission went looking for one (another
checkout, the home folders, /srv, /opt, the host's /tmp); none may be readable, or even found
by walking the sandbox's whole filesystem. Earlier modules are in the sandbox as bytecode only:
no line of their reference source is in any file there. Writes have a total quota, and two tito
runs on one host never share a sandbox uid.
"""

from __future__ import annotations

import ast
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from grading_course import REPO
from tito.core.workspace import GradingLimits
from tito.sandbox import launcher

pytestmark = pytest.mark.skipif(not launcher.can_isolate(), reason=f"no isolation here: {launcher.isolation().describe()}")
REFERENCE = REPO / "modules/02_activations/activations_dev.py"
LIMITS = GradingLimits(30, 120, 2048, 64)


def _package(tmp_path: Path, *modules: str) -> Path:
    """A prerequisite package as tito hands it over: __init__ files plus the named exported modules."""
    package = tmp_path / "pkg" / "tinytorch"
    for path in [*(REPO / "tinytorch").rglob("__init__.py"), *(REPO / "tinytorch" / m for m in modules)]:
        (package / path.relative_to(REPO / "tinytorch")).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, package / path.relative_to(REPO / "tinytorch"))
    return package


@pytest.fixture
def sandbox(tmp_path):
    started = []

    def start(package=None, **kwargs):
        box = launcher.start(package or _package(tmp_path), REPO, [], LIMITS, slot=0, **kwargs)
        box.endpoint.channel.deadline = None
        started.append(box)
        return box

    def run(code: str, box=None) -> dict:
        ran = (box or start()).endpoint.value("exec", source=code)
        assert ran["error"] is None, ran["error"]
        return ran

    yield start, run
    for box in started:
        box.stop()


@pytest.fixture
def planted():
    """A marked reference copy in each place a submission might look; removed afterwards."""
    marker = f"tito-planted-{uuid.uuid4().hex[:12]}"
    homes = [Path(os.path.expanduser("~")), Path("/home"), Path("/root")]
    places = [REPO.parent / f"{marker}-checkout" / "modules/02_activations", *(h / marker for h in homes),
              Path("/srv") / marker, Path("/opt") / marker, Path(tempfile.gettempdir()) / marker, Path("/var/tmp") / marker]
    made = []
    for place in dict.fromkeys(places):
        try:
            place.mkdir(parents=True)
        except OSError:
            continue
        top = next(d for d in reversed([place, *place.parents]) if marker in d.name)
        made.append(top)
        (place / f"{marker}.py").write_text(REFERENCE.read_text())
        for folder in [place, *place.parents][: len(place.relative_to(top).parts) + 1]:
            folder.chmod(0o755)      # world-readable on purpose: only the allowlist may keep it out of sight
        (place / f"{marker}.py").chmod(0o644)
    assert len(made) >= 5, made
    yield marker, [str(m) for m in made]
    for top in made:
        shutil.rmtree(top, ignore_errors=True)


def test_planted_reference_copies_are_neither_readable_nor_findable(sandbox, planted):
    _, run = sandbox
    marker, places = planted
    ran = run(f"""import os
places = {places!r}
print(sum(os.path.exists(p) for p in places))
found = []
for top, dirs, files in os.walk('/'):
    if top.startswith('/proc'):
        dirs[:] = []
        continue
    found += [os.path.join(top, n) for n in dirs + files if {marker!r} in n]
print(found)
print(sorted(os.listdir('/')))""")
    visible, found, top = ran["output"].splitlines()[:3]
    assert visible == "0" and found == "[]", ran["output"]
    for private in ("home", "srv", "opt", "var", "mnt", "media", "boot"):
        assert f"'{private}'" not in top


def test_the_instructors_checkout_and_virtual_environment_show_only_what_python_needs(sandbox):
    _, run = sandbox
    ran = run(f"""import os, sys
print(os.path.exists({str(REPO / 'modules')!r}), os.path.exists({str(REPO / 'tinytorch')!r}),
      os.path.exists({str(REPO / 'tests')!r}), os.path.exists({str(REPO / '.git')!r}))
print(sorted(os.listdir({str(REPO)!r})) if os.path.isdir({str(REPO)!r}) else [])""")
    exists, listing = ran["output"].splitlines()[:2]
    assert exists == "False False False False"
    assert set(eval(listing)) <= {".venv"}, listing      # at most the virtual environment's libraries


def test_earlier_modules_are_bytecode_only(sandbox, tmp_path):
    """Module 01's reference: importable and working, but no line of its source is in the sandbox."""
    start, run = sandbox
    source = (REPO / "tinytorch/core/tensor.py").read_text()
    # Docstrings are kept (the release shows them too); every other substantial line is reference code.
    docstrings = {n for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Expr)
                  and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
                  for n in range(node.lineno, node.end_lineno + 1)}
    code_lines = {line.strip() for number, line in enumerate(source.splitlines(), start=1)
                  if number not in docstrings and len(line.strip()) > 24 and not line.strip().startswith("#")}
    hashes = sorted(hashlib.sha256(line.encode()).hexdigest() for line in code_lines)
    box = start(_package(tmp_path, "core/tensor.py"))
    ran = run(f"""import hashlib, inspect, os
import tinytorch.core.tensor as t
wanted = set({hashes!r})
hits = 0
for top, dirs, files in os.walk(os.path.dirname(os.path.dirname(os.path.dirname(t.__file__)))):
    for name in files:
        text = open(os.path.join(top, name), 'rb').read().decode('utf-8', 'replace')
        hits += sum(hashlib.sha256(l.strip().encode()).hexdigest() in wanted for l in text.splitlines())
try:
    shown = inspect.getsource(t.Tensor)
except (OSError, TypeError):
    shown = ''
hits += sum(hashlib.sha256(l.strip().encode()).hexdigest() in wanted for l in shown.splitlines())
print(hits, t.__file__.endswith('.pyc'), t.Tensor([1.0, 2.0]).data.sum())""", box)
    assert len(hashes) > 10
    assert ran["output"].split() == ["0", "True", "3.0"], ran["output"]


def test_writes_have_a_total_quota(sandbox, monkeypatch):
    """RLIMIT_FSIZE bounds one file; the tmpfs bounds them all, /tmp and /dev/shm included."""
    start, run = sandbox
    monkeypatch.setattr(launcher, "SCRATCH_QUOTA_MB", 64)
    ran = run("""import os
written = 0
chunk = b'x' * 2**20
for folder in (os.environ['TMPDIR'], '/tmp', '/dev/shm'):
    for n in range(40):
        try:
            with open(os.path.join(folder, f'fill{n}'), 'wb') as handle:
                for _ in range(8):
                    handle.write(chunk)
                    written += len(chunk)
        except OSError:
            break
print(written // 2**20)""", start())
    written = int(ran["output"].split()[0])
    assert 32 <= written <= 64, written


def test_two_tito_runs_never_share_a_sandbox_uid(sandbox, tmp_path):
    """Another process (another tito run) starts a sandbox with the same slot while ours lives."""
    if launcher.isolation().mode != "root":
        pytest.skip("uids are allocated only as root (without root every sandbox keeps the instructor's uid)")
    start, run = sandbox
    ours = start()
    other = subprocess.Popen([sys.executable, "-c", f"""import sys
from pathlib import Path
from tito.core.workspace import GradingLimits
from tito.sandbox import launcher
box = launcher.start(Path({str(_package(tmp_path / 'other'))!r}), Path('/'), [], GradingLimits(30, 120, 2048, 64), slot=0)
print(box.endpoint.value('exec', source='import os; print(os.getuid())')['output'].strip(), flush=True)
sys.stdin.readline()
box.stop()"""], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd="/")
    try:
        theirs = int(other.stdout.readline())
        mine = int(run("import os; print(os.getuid())", ours)["output"])
    finally:
        other.communicate("\n", timeout=30)
    assert mine != theirs and launcher.UID_BASE <= min(mine, theirs)
