"""Grading on a Dask cluster: the jobs the local workers get, graded in the same sandbox on the
cluster's workers (`tito nbgrader autograde MODULE --scheduler tcp://HOST:8786`).

Only plain data crosses the network. The coordinator sends, once per batch, the grading
environment (the prerequisite package's files, the instructor's tests, the limits and the
grader's own fingerprint) as a worker plugin holding a dict; then one task per submission whose
function is `grade_task` of this module, sent by reference, and whose only argument is a dict
(the student, the notebook's JSON text, the environment's hash). Each worker writes the
environment into its own scratch folder, and before every submission checks that what it holds
hashes to what the job names and that its grader is the coordinator's: a stale worker refuses
instead of grading with old tests. The result comes back as the dict of a GradeResult; the
coordinator stays the gradebook's only writer.

A worker lost mid-task (killed, out of memory) has its task run again on another worker by Dask
itself; a submission that kills every worker that grades it ends as KilledWorker after the
scheduler's `allowed-failures` and is recorded with 0 points and the reason; the batch goes on.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from tito.core.executor import WORKER_DIED
from tito.sandbox.grader import CellOutcome, GradeJob, GradeResult, grade

FORMAT = 1                   # of the environment dict: bumped when its fields change
RETRIES = 1                  # a task that raises (a stale worker, a full disk) is tried once more, maybe elsewhere
ENVIRONMENTS = "tito-grading-environments"
CONNECT_TIMEOUT = "10s"


class StaleWorker(RuntimeError):
    """This worker cannot grade the job as the coordinator would (old tito, other tests)."""


# -- what both ends compute the same way ------------------------------------------------------

def grader_fingerprint() -> dict:
    """What decides a grade besides the job: the grader's code and the libraries tests compute with."""
    import numpy

    tito_dir = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted([*(tito_dir / "sandbox").glob("*.py"), tito_dir / "core" / "source.py",
                        tito_dir / "core" / "workspace.py", Path(__file__).resolve()]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return {"tito": digest.hexdigest()[:16], "python": f"{sys.version_info.major}.{sys.version_info.minor}",
            "numpy": numpy.__version__}


def environment_digest(environment: dict) -> str:
    return hashlib.sha256(json.dumps(environment, sort_keys=True).encode()).hexdigest()


def build_environment(jobs: list[GradeJob]) -> dict:
    """The course side every job of a batch shares, as plain data (files base64-encoded)."""
    first = jobs[0]
    shared = ("module", "tests", "trusted_imports", "package", "limits")
    for job in jobs[1:]:
        if any(getattr(job, name) != getattr(first, name) for name in shared):
            raise ValueError("a Dask batch grades one module with one package, one set of tests and one set of limits")
    package = Path(first.package)
    files = {str(p.relative_to(package)): base64.b64encode(p.read_bytes()).decode()
             for p in sorted(package.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}
    return {"format": FORMAT, "module": first.module, "package_name": package.name, "package": files,
            "tests": first.tests, "trusted_imports": first.trusted_imports, "limits": dict(first.limits),
            "grader": grader_fingerprint()}


def task_payload(job: GradeJob, digest: str) -> dict:
    """One submission as the network sees it: plain data, the notebook as its JSON text."""
    return {"environment": digest, "module": job.module, "student": job.student, "slot": job.slot,
            "notebook": Path(job.submission).read_text(encoding="utf-8", errors="replace"), "artifact": job.artifact}


def result_from(data: dict) -> GradeResult:
    data = dict(data)
    cells = [CellOutcome(**c) for c in data.pop("cells")]
    return GradeResult(**data, cells=cells)


# -- the worker's side -------------------------------------------------------------------------

def _environments_dir() -> Path:
    try:
        from distributed import get_worker

        return Path(get_worker().local_directory) / ENVIRONMENTS
    except ValueError:            # not inside a Dask worker (a direct call): a folder of this process
        return Path(tempfile.gettempdir()) / f"{ENVIRONMENTS}-{os.getpid()}"


def install_environment(environment: dict, root: Path | None = None) -> Path:
    """Write the environment under root/<its hash>/ (once); returns that folder."""
    digest = environment_digest(environment)
    folder = (root or _environments_dir()) / digest
    if (folder / "environment.json").exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=".building-", dir=folder.parent))   # same filesystem: the rename is atomic
    try:
        for relative, encoded in environment["package"].items():
            target = building / environment["package_name"] / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(base64.b64decode(encoded))
        (building / "environment.json").write_text(json.dumps(environment, sort_keys=True))
        os.replace(building, folder)
    except OSError:
        shutil.rmtree(building, ignore_errors=True)
        if not (folder / "environment.json").exists():
            raise
    return folder


def verified_environment(digest: str, root: Path | None = None) -> tuple[Path, dict]:
    """The environment this worker holds under that hash, checked file by file, and its grader checked
    against this worker's: otherwise StaleWorker, never a grade made with something else."""
    folder = (root or _environments_dir()) / digest
    try:
        environment = json.loads((folder / "environment.json").read_text())
    except (OSError, ValueError):
        raise StaleWorker(f"this worker holds no grading environment {digest[:12]} (was the tito-grading plugin "
                          "refused? see the worker's log)") from None
    if environment_digest(environment) != digest:
        raise StaleWorker(f"this worker's grading environment {digest[:12]} does not hash to its name: it was changed")
    for relative, encoded in environment["package"].items():
        path = folder / environment["package_name"] / relative
        if not path.is_file() or path.read_bytes() != base64.b64decode(encoded):
            raise StaleWorker(f"this worker's copy of {environment['package_name']}/{relative} differs from grading "
                              f"environment {digest[:12]}")
    mine = grader_fingerprint()
    if mine != environment["grader"]:
        differs = ", ".join(f"{k} {mine.get(k)} here, {v} on the coordinator"
                            for k, v in environment["grader"].items() if mine.get(k) != v)
        raise StaleWorker(f"this worker's grader differs from the coordinator's ({differs}): "
                          "install the coordinator's tito and libraries on the worker and restart it")
    return folder, environment


def grade_task(task: dict) -> dict:
    """Grade one submission on this worker, in the local sandbox; plain dict in, plain dict out."""
    from tito.sandbox import launcher

    folder, environment = verified_environment(task["environment"])
    launcher.isolation()                 # probed once per worker process
    with tempfile.TemporaryDirectory(prefix="tito-submission-") as scratch:
        notebook = Path(scratch) / "submission.ipynb"
        notebook.write_text(task["notebook"], encoding="utf-8")
        job = GradeJob(module=task["module"], student=task["student"], submission=str(notebook),
                       tests=environment["tests"], trusted_imports=environment["trusted_imports"],
                       package=str(folder / environment["package_name"]), workspace=str(folder), hide=[],
                       limits=dict(environment["limits"]), slot=int(task["slot"]), artifact=task["artifact"])
        try:
            result = grade(job)
        except Exception as exc:  # the grader failed on this job: report it, record nothing (as locally)
            result = GradeResult(job.module, job.student, failed=f"grading failed: {type(exc).__name__}: {exc}")
    return dataclasses.asdict(result)


def worker_isolation() -> str:
    """Run on every worker at connect time: the isolation its submissions get."""
    from tito.sandbox import launcher

    return launcher.isolation().describe()


try:
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError:  # distributed missing: only the local executors are available
    WorkerPlugin = object


class GradingEnvironment(WorkerPlugin):
    """Installs the batch's environment on every worker, including workers that join later (a
    restarted one). Holds only the plain-data dict."""

    def __init__(self, environment: dict):
        self.environment = environment

    def setup(self, worker) -> None:
        install_environment(self.environment, Path(worker.local_directory) / ENVIRONMENTS)


# -- the coordinator's side --------------------------------------------------------------------

def died_on_every_worker(job: GradeJob, why: str) -> GradeResult:
    text = f"{WORKER_DIED} each time it graded this submission, on every worker Dask tried ({why})"
    cells = [CellOutcome(-1, "test", error=text, grade_id=t["grade_id"], max_score=float(t["points"])) for t in job.tests]
    return GradeResult(job.module, job.student, cells=cells, stopped=text)


class DaskExecutor:
    """Jobs as tasks on the Dask scheduler at `address`; results yielded as each task finishes."""

    def __init__(self, address: str):
        self.address = address
        self._client = None

    def connect(self):
        """Connect (once) and return the client; a clear error when no scheduler answers."""
        if self._client is None:
            try:
                from distributed import Client
            except ImportError as exc:
                raise RuntimeError("grading on a Dask cluster needs the `distributed` package: pip install distributed") from exc
            import dask

            try:
                with dask.config.set({"distributed.comm.timeouts.connect": CONNECT_TIMEOUT}):
                    self._client = Client(self.address, timeout=CONNECT_TIMEOUT, set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise ConnectionError(f"no Dask scheduler answers at {self.address} ({exc}); start one with "
                                      "`dask scheduler` and workers with `dask worker ADDRESS`") from None
        return self._client

    @property
    def workers(self) -> int:
        return len(self.connect().scheduler_info(n_workers=-1)["workers"])

    @property
    def dashboard_link(self) -> str:
        return self.connect().dashboard_link

    def isolation_by_worker(self) -> dict[str, str]:
        return self.connect().run(worker_isolation)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def run(self, jobs: Iterable[GradeJob]) -> Iterator[GradeResult]:
        from distributed import as_completed
        from distributed.scheduler import KilledWorker

        jobs = list(jobs)
        if not jobs:
            return
        client = self.connect()
        environment = build_environment(jobs)
        digest = environment_digest(environment)
        plugin = f"tito-grading-{digest[:16]}"
        client.register_plugin(GradingEnvironment(environment), name=plugin)
        # No more tasks in flight than the cluster has threads: each worker then holds only the task it
        # runs, and a worker killed by one submission counts against no other submission's tries.
        # Tasks rescheduled after a loss may still share a worker, so a submission Dask gives up on
        # (KilledWorker) runs once more alone before it is recorded as one that kills its worker.
        pending, running, suspects, alone = list(reversed(jobs)), {}, [], set()
        finished = as_completed(loop=client.loop)

        def submit(job: GradeJob, solo: bool) -> None:
            payload = task_payload(job, digest)
            # Same job, same key: a second coordinator grading the same batch shares the task.
            key = f"tito-grade-{job.student}-{environment_digest(payload)[:16]}" + ("-alone" if solo else "")
            future = client.submit(grade_task, payload, key=key, retries=RETRIES, pure=False)
            running[future] = job
            finished.add(future)

        def fill() -> None:
            if alone & set(map(id, running.values())):
                return                                  # a suspect runs alone
            if suspects:
                if not running:
                    job = suspects.pop(0)
                    alone.add(id(job))
                    submit(job, solo=True)
                return
            capacity = max(1, sum(client.nthreads().values()))
            while pending and len(running) < capacity:
                submit(pending.pop(), solo=False)

        try:
            fill()
            for future in finished:
                job = running.pop(future)
                result = None
                try:
                    result = result_from(future.result())
                except KilledWorker as exc:
                    if id(job) in alone:
                        result = died_on_every_worker(job, str(exc).split(". ")[0][:300] + ", and again when run alone")
                    else:
                        suspects.append(job)
                except StaleWorker as exc:
                    result = GradeResult(job.module, job.student, failed=f"a Dask worker refused it: {exc}")
                except Exception as exc:  # lost with the scheduler, a worker that cannot start it: not graded
                    result = GradeResult(job.module, job.student,
                                         failed=f"grading on Dask failed: {type(exc).__name__}: {exc}")
                future.release()
                fill()                     # the next task runs while the coordinator records this result
                if result is not None:
                    yield result
        finally:
            for future in running:
                future.cancel()
            try:
                client.unregister_worker_plugin(plugin)
            except Exception:  # the scheduler is gone: nothing to clean up there
                pass
