"""Grading on a real Dask cluster on 127.0.0.1: the gradebook the local executor writes, attacks
earn nothing and harm nobody, a worker killed mid-batch loses nothing, and only plain data is sent.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import pickletools
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from grading_course import gradebook_scores, released_notebooks, tito
from submissions import TEST_OF, _with_cell, attacks, honest
from test_worker_lifecycle import KILL_THE_WORKER

distributed = pytest.importorskip("distributed")

# One task per single-threaded worker at a time (so a worker killed by one submission takes no other
# task's try along), and a bounded number of workers a task may take down with it.
SCHEDULER_CONFIG = {"distributed.scheduler.worker-saturation": 1.0, "distributed.scheduler.allowed-failures": 1}
GLOBAL_OPCODES = {"GLOBAL", "STACK_GLOBAL", "REDUCE", "BUILD", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "EXT1", "EXT2", "EXT4"}


class TaskRecorder(distributed.diagnostics.plugin.SchedulerPlugin):
    """Sees every task the scheduler receives, as it received it."""

    def __init__(self):
        self.specs = []

    def update_graph(self, scheduler, *, tasks, **kwargs):
        self.specs += [scheduler.tasks[key].run_spec for key in tasks if key in scheduler.tasks]


def _upload(root: Path, submissions) -> None:
    uploads = root.parent / f"uploads-{root.name}"
    uploads.mkdir()
    for s in submissions:
        nbformat.write(s.notebook, uploads / f"{s.student}.ipynb")
    tito(root, "nbgrader", "collect", str(uploads))


def _is_plain(value) -> bool:
    """Plain data: its pickle names no class or function at all."""
    return not {op.name for op, _, _ in pickletools.genops(pickle.dumps(value))} & GLOBAL_OPCODES


@pytest.fixture(scope="module")
def graded_both_ways(tmp_path_factory, released_course):
    """The project's attack submissions and some honest ones, graded by the local executor (2 workers)
    and on a LocalCluster (2 worker processes, 1 thread each)."""
    import dask
    from distributed import LocalCluster

    base = tmp_path_factory.mktemp("dask")
    local, remote = base / "local", base / "dask"
    shutil.copytree(released_course, local)
    shutil.copytree(released_course, remote)
    release, solution = released_notebooks(local)
    submissions = [honest(release, solution, set(TEST_OF), "honest-full"), honest(release, solution, {"relu", "gelu"}, "honest-two")]
    for root in (local, remote):     # the real paths of each course: the attacker is assumed to know them
        batch = submissions + attacks(release, solution, str(root), str(root / "grading"))
        _upload(root, batch)
    package_file = remote / "tinytorch/core/activations.py"
    before = hashlib.sha256(package_file.read_bytes()).hexdigest()
    env = {**os.environ, "PYTHONPATH": str(local)}
    env.pop("TITO_ROOT", None)
    # Both at once: the time limits the attacks run into are waited out together.
    by_local = subprocess.Popen([sys.executable, "-m", "tito", "nbgrader", "autograde", "02", "--workers", "2"], cwd=local,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    recorder = TaskRecorder()
    with dask.config.set(SCHEDULER_CONFIG), LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                                         dashboard_address="127.0.0.1:0", memory_limit=0) as cluster:
        cluster.scheduler.add_plugin(recorder)
        graded = tito(remote, "nbgrader", "autograde", "02", "--scheduler", cluster.scheduler_address)
    assert by_local.wait(timeout=300) == 0, by_local.stdout.read()
    return {"local": gradebook_scores(local), "dask": gradebook_scores(remote), "out": graded.stdout, "specs": recorder.specs,
            "submissions": batch, "package_before": before, "package_after": hashlib.sha256(package_file.read_bytes()).hexdigest()}


def test_dask_writes_the_gradebook_the_local_executor_writes(graded_both_ways):
    assert len({s for s, _ in graded_both_ways["dask"]}) == len(graded_both_ways["submissions"])
    assert graded_both_ways["dask"] == graded_both_ways["local"]


def test_attacks_on_dask_earn_nothing_and_harm_nobody(graded_both_ways):
    scores = graded_both_ways["dask"]
    for s in graded_both_ways["submissions"]:
        assert sum(v for (st, _), v in scores.items() if st == s.student) == s.honest_score, s.student
    assert graded_both_ways["package_after"] == graded_both_ways["package_before"]


def test_progress_names_the_cluster_and_its_dashboard(graded_both_ways):
    out = " ".join(graded_both_ways["out"].split())
    assert "2 worker(s); dashboard http://127.0.0.1:" in out
    assert "autograde 02_activations on Dask, 2 workers" in out
    assert f"{len(graded_both_ways['submissions'])}/{len(graded_both_ways['submissions'])}" in out


def test_only_plain_data_is_sent(graded_both_ways):
    from tito.core.dask_executor import grade_task

    specs = graded_both_ways["specs"]
    grading = [s for s in specs if getattr(s, "func", None) is grade_task]
    assert len(grading) == len(graded_both_ways["submissions"])
    for spec in specs:     # the connect-time isolation query runs through client.run, not as a task
        assert spec.func is grade_task, spec
        assert not spec.kwargs and len(spec.args) == 1 and _is_plain(spec.args[0]), spec
        assert set(spec.args[0]) == {"environment", "module", "student", "slot", "notebook", "artifact"}


def test_the_environment_plugin_holds_plain_data_only(released_course):
    from tito.core.dask_executor import GradingEnvironment, build_environment
    from tito.core.autograding import make_jobs, prerequisite_package
    from tito.core.course import Course
    from tito.core.manifest import resolve
    from tito.core.workspace import Workspace

    course = Course.of(Workspace(released_course))
    module = resolve(course.ws, "02")
    with prerequisite_package(course, module) as package:
        environment = build_environment(make_jobs(course, module, ["nobody"], package))
    assert _is_plain(environment)
    globals_named = [arg for op, arg, _ in pickletools.genops(pickle.dumps(GradingEnvironment(environment)))
                     if op.name in ("SHORT_BINUNICODE", "BINUNICODE") and arg.startswith("tito.")]
    assert globals_named == ["tito.core.dask_executor"]   # the plugin's class, by reference; the rest is data


def test_a_worker_with_other_tests_or_another_grader_refuses(tmp_path):
    from tito.core.dask_executor import (StaleWorker, environment_digest, grader_fingerprint, install_environment,
                                         verified_environment)

    environment = {"format": 1, "module": "02_activations", "package_name": "tinytorch", "package": {"__init__.py": ""},
                   "tests": [{"grade_id": "t", "source": "assert True", "points": 1.0}], "trusted_imports": "",
                   "limits": {}, "grader": grader_fingerprint()}
    install_environment(environment, tmp_path)
    digest = environment_digest(environment)
    assert verified_environment(digest, tmp_path)[1] == environment
    newer = {**environment, "tests": [{"grade_id": "t", "source": "assert False", "points": 1.0}]}
    with pytest.raises(StaleWorker, match="holds no grading environment"):
        verified_environment(environment_digest(newer), tmp_path)
    old_grader = {**environment, "grader": {**environment["grader"], "tito": "0123456789abcdef"}}
    install_environment(old_grader, tmp_path)
    with pytest.raises(StaleWorker, match="grader differs from the coordinator's .*tito"):
        verified_environment(environment_digest(old_grader), tmp_path)
    (tmp_path / digest / "tinytorch" / "__init__.py").write_text("HACKED = True\n")
    with pytest.raises(StaleWorker, match="copy of tinytorch/__init__.py differs"):
        verified_environment(digest, tmp_path)


def _dask_cli(scratch: Path, env: dict) -> tuple[list[subprocess.Popen], Path]:
    """`dask scheduler` and `dask worker` as the README starts them, on 127.0.0.1."""
    bin_dir = Path(sys.executable).parent
    scheduler_file = scratch / "scheduler.json"
    log = open(scratch / "dask.log", "w")
    config = {f"DASK_DISTRIBUTED__SCHEDULER__{k.split('.')[-1].upper().replace('-', '_')}": str(v)
              for k, v in SCHEDULER_CONFIG.items()}
    scheduler = subprocess.Popen([str(bin_dir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                                  "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(scheduler_file)],
                                 env={**env, **config}, stdout=log, stderr=log, start_new_session=True)
    workers = subprocess.Popen([str(bin_dir / "dask"), "worker", "--scheduler-file", str(scheduler_file), "--nworkers", "2",
                                "--nthreads", "1", "--memory-limit", "0", "--local-directory", str(scratch / "workers")],
                               env=env, stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 60
    while not scheduler_file.exists():
        assert time.monotonic() < deadline, (scratch / "dask.log").read_text()
        time.sleep(0.1)
    return [workers, scheduler], scheduler_file


def test_a_killed_worker_loses_nothing_and_a_worker_killing_submission_is_recorded(course, tmp_path):
    """Without namespaces a submission can reach its worker (see test_worker_lifecycle.py): one kills
    every worker that grades it; meanwhile the test kills the worker grading a slow honest one."""
    from distributed import Client

    release, solution = released_notebooks(course)
    submissions = [honest(release, solution, {"tanh"}, "c-tanh"), honest(release, solution, set(TEST_OF), "d-full")]
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    for s in submissions:
        nbformat.write(s.notebook, uploads / f"{s.student}.ipynb")
    nbformat.write(_with_cell(solution, "import time\ntime.sleep(4)"), uploads / "a-slow.ipynb")
    nbformat.write(_with_cell(solution, KILL_THE_WORKER.replace("{sig}", "SIGKILL")), uploads / "b-kills-worker.ipynb")
    tito(course, "nbgrader", "collect", str(uploads))
    env = {**os.environ, "TITO_SANDBOX_NO_ISOLATION": "1", "PYTHONPATH": str(course)}
    env.pop("TITO_ROOT", None)
    processes, scheduler_file = _dask_cli(tmp_path, env)
    try:
        with Client(scheduler_file=str(scheduler_file), timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
            grader = subprocess.Popen([sys.executable, "-m", "tito", "nbgrader", "autograde", "02", "--scheduler",
                                       client.scheduler.address], cwd=course, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True)
            deadline, killed = time.monotonic() + 120, None
            while killed is None and time.monotonic() < deadline:
                for worker, keys in client.processing().items():
                    if any("a-slow" in str(k) for k in keys):
                        time.sleep(1.5)                 # during its sleep
                        pid = client.run(os.getpid, workers=[worker]).get(worker)
                        if pid:
                            os.kill(pid, signal.SIGKILL)
                            killed = pid
                time.sleep(0.1)
            out = grader.communicate(timeout=240)[0]
            again = subprocess.run([sys.executable, "-m", "tito", "nbgrader", "autograde", "02", "--scheduler",
                                    client.scheduler.address], cwd=course, env=env, capture_output=True, text=True)
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
    assert killed, out
    scores = gradebook_scores(course)
    total = lambda student: sum(v for (s, _), v in scores.items() if s == student)  # noqa: E731
    assert total("a-slow") == total("d-full") == sum(s.honest_score for s in submissions if s.student == "d-full"), out
    assert total("c-tanh") == submissions[0].honest_score
    assert {g for (s, g) in scores if s == "b-kills-worker"} == set(TEST_OF.values()) and total("b-kills-worker") == 0
    flat = " ".join(out.split())
    assert grader.returncode != 0 and "b-kills-worker: recorded with 0 points: the grading worker died" in flat, out
    assert "and again when run alone" in flat, out
    # The same command again keeps every grade as recorded: nothing graded twice, nothing changed.
    assert "4 submission(s) already graded" in again.stdout and gradebook_scores(course) == scores, again.stdout
