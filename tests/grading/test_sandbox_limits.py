"""What a submission's process can see and do: environment, network, identity, files, limits.

The isolation rows need namespaces (as root, or through an unprivileged user namespace); where
the kernel gives neither, they are skipped with the reason, as the README documents.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from grading_course import REPO, tito
from tito.core.workspace import GradingLimits
from tito.sandbox import launcher

ISOLATED = launcher.can_isolate()
needs_isolation = pytest.mark.skipif(not ISOLATED, reason=f"no isolation here: {launcher.isolation().describe()}")


@pytest.fixture
def run_in_sandbox(tmp_path):
    # World-readable on purpose, and outside /tmp (private inside the sandbox): only the sandbox's
    # empty mount over secret-folder may keep it out of sight.
    (REPO / ".tito").mkdir(exist_ok=True)
    shared = Path(tempfile.mkdtemp(prefix="test-visible-", dir=REPO / ".tito"))
    shared.chmod(0o755)
    for name in ("secret-folder", "public-folder"):
        (shared / name).mkdir()
        (shared / name / "answers.txt").write_text("42")
    secret = shared / "secret-folder"
    package = tmp_path / "pkg" / "tinytorch"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    started = []

    def run(code: str, memory_mb: int = 2048) -> dict:
        sandbox = launcher.start(package, tmp_path, [secret], GradingLimits(20, 60, memory_mb, 64), slot=11)
        started.append(sandbox)
        return sandbox.endpoint.value("exec", source=code)

    yield run, secret
    for sandbox in started:
        sandbox.stop()
    import shutil

    shutil.rmtree(shared)


def test_environment_is_scrubbed(run_in_sandbox, monkeypatch):
    run, _ = run_in_sandbox
    monkeypatch.setenv("INSTRUCTOR_TOKEN", "do-not-leak")
    ran = run("import os\nprint(sorted(os.environ))")
    assert "INSTRUCTOR_TOKEN" not in ran["output"] and "TITO_AUTOGRADING" in ran["output"]


def test_memory_limit_makes_large_allocations_fail(run_in_sandbox):
    run, _ = run_in_sandbox
    ran = run("hog = bytearray(3 * 2**30)", memory_mb=1024)
    assert ran["error"] and "MemoryError" in ran["error"]["types"]


@needs_isolation
def test_no_network(run_in_sandbox):
    run, _ = run_in_sandbox
    ran = run("import socket\nsocket.create_connection(('127.0.0.1', 22), timeout=2)")
    assert ran["error"] and "OSError" in ran["error"]["types"]


@needs_isolation
def test_sees_no_folder_outside_its_allowlist(run_in_sandbox):
    """Deny by default: a world-readable folder is as invisible as one named secret."""
    run, secret = run_in_sandbox
    public = secret.parent / "public-folder"
    ran = run(f"import os\nprint(os.getuid(), os.path.exists({str(secret)!r}), os.path.exists({str(public)!r}))")
    assert ran["error"] is None, ran["error"]
    uid, *seen = ran["output"].split()
    assert seen == ["False", "False"]
    if launcher.isolation().mode == "root":
        assert launcher.UID_BASE <= int(uid) < launcher.UID_BASE + launcher.UID_COUNT


@needs_isolation
def test_cannot_write_outside_its_scratch_folder(run_in_sandbox):
    run, _ = run_in_sandbox
    target = Path(tempfile.gettempdir()) / f"tito-escape-{os.getpid()}"
    run(f"open({str(target)!r}, 'w').write('x')")   # may succeed: inside, /tmp is a private tmpfs
    assert not target.exists()


def test_module_yaml_overrides_the_cell_time_limit(course):
    manifest = course / "modules/02_activations/module.yaml"
    manifest.write_text(manifest.read_text() + "grading:\n  cell_timeout: 2\n")
    tito(course, "nbgrader", "generate", "02")
    import nbformat

    from grading_course import released_notebooks
    release, solution = released_notebooks(course)
    solution.cells.insert(1, nbformat.v4.new_code_cell("while True:\n    pass"))
    uploads = course.parent / "uploads"
    uploads.mkdir()
    nbformat.write(solution, uploads / "looper.ipynb")
    tito(course, "nbgrader", "collect", str(uploads))
    graded = tito(course, "nbgrader", "autograde", "02", "--workers", "1")
    assert "cell time limit (2 s)" in graded.stdout
