"""Grading workers: one that dies is replaced and the batch goes on; all of them die with the coordinator."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import nbformat

from grading_course import gradebook_scores, released_notebooks, tito
from submissions import TEST_OF, _with_cell, honest

# Without namespaces a submission can see its own ancestors: it walks up to its grading worker
# (the parent of the trusted process that started it) and kills it.
KILL_THE_WORKER = """import os, signal
def parent(pid):
    return int(open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[1])
os.kill(parent(parent(os.getpid())), signal.{sig})"""


def _env(root, **extra):
    env = {**os.environ, "PYTHONPATH": str(root), **extra}
    env.pop("TITO_ROOT", None)
    return env


def test_a_submission_that_kills_its_worker_is_recorded_and_the_batch_goes_on(course):
    release, solution = released_notebooks(course)
    uploads = course.parent / "uploads"
    uploads.mkdir()
    everything = set(TEST_OF)
    for student, sig in (("a-kills-worker", "SIGKILL"), ("b-segfaults-worker", "SIGSEGV")):
        nbformat.write(_with_cell(solution, KILL_THE_WORKER.replace("{sig}", sig)), uploads / f"{student}.ipynb")
    honest_ones = [honest(release, solution, everything, "c-full"), honest(release, solution, {"relu"}, "d-relu")]
    for s in honest_ones:
        nbformat.write(s.notebook, uploads / f"{s.student}.ipynb")
    tito(course, "nbgrader", "collect", str(uploads))
    graded = subprocess.run([sys.executable, "-m", "tito", "nbgrader", "autograde", "02", "--workers", "2"], cwd=course,
                            env=_env(course, TITO_SANDBOX_NO_ISOLATION="1"), capture_output=True, text=True, timeout=600)
    out = graded.stdout
    assert graded.returncode != 0 and "ended their grading worker" in out + graded.stderr, out + graded.stderr
    scores = gradebook_scores(course)
    for s in honest_ones:
        assert sum(v for (st, _), v in scores.items() if st == s.student) == s.honest_score
    for student, sig in (("a-kills-worker", "SIGKILL"), ("b-segfaults-worker", "SIGSEGV")):
        assert {g for (st, g), _ in scores.items() if st == student} == set(TEST_OF.values())
        assert all(v == 0 for (st, _), v in scores.items() if st == student)
        assert f"{student}: recorded with 0 points: the grading worker died (signal {sig})" in " ".join(out.split())
    # The isolation lines survive rich markup: brackets and all.
    assert "isolation: limits only (TITO_SANDBOX_NO_ISOLATION=1)" in out
    assert "[limits only]" in out


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, start time) of every live (non-zombie) process on the host."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            table[int(entry)] = (int(fields[1]), fields[19])
    return table


def _descendants(root: int) -> set[tuple[int, str]]:
    table = _processes()
    found, frontier = set(), {root}
    while frontier:
        children = {pid for pid, (parent, _) in table.items() if parent in frontier and pid not in {p for p, _ in found}}
        found |= {(pid, table[pid][1]) for pid in children}
        frontier = children
    return found


def _cmdline(pid: int) -> str:
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_kill_9_of_the_coordinator_takes_its_workers_and_sandboxes_along(course):
    release, solution = released_notebooks(course)
    uploads = course.parent / "uploads"
    uploads.mkdir()
    slow = solution
    for _ in range(5):    # 25 s per submission: the batch is surely midway when the coordinator dies
        slow = _with_cell(slow, "import time\ntime.sleep(5)")
    for i in range(4):
        nbformat.write(slow, uploads / f"slow{i}.ipynb")
    tito(course, "nbgrader", "collect", str(uploads))
    coordinator = subprocess.Popen([sys.executable, "-m", "tito", "nbgrader", "autograde", "02", "--workers", "2"],
                                   cwd=course, env=_env(course), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            tree = _descendants(coordinator.pid)
            if sum("tito.sandbox.child" in _cmdline(pid) for pid, _ in tree) >= 2:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("no sandbox started within 120 s")
        tree = _descendants(coordinator.pid)
        os.kill(coordinator.pid, signal.SIGKILL)      # the coordinator only, not its process group
        coordinator.wait()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            alive = {(pid, started) for pid, started in tree if _processes().get(pid, (0, None))[1] == started}
            if not alive:
                break
            time.sleep(0.1)
        assert not alive, "still running 5 s after kill -9 of the coordinator:\n" + \
            "\n".join(f"{pid}: {_cmdline(pid)[:160]}" for pid, _ in sorted(alive))
    finally:
        try:
            os.killpg(coordinator.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
