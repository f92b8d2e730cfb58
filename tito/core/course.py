"""The nbgrader course directory, driven through nbgrader's Python API with an explicit root.

Every grading action of tito (the instructor commands, `tito check`, `tito demo`) goes through
these functions, so there is one code path from a module source to a score in the gradebook.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tito.core.errors import TitoError
from tito.core.manifest import Module
from tito.core.runner import AUTOGRADING_ENV
from tito.core.source import read_source
from tito.core.workspace import Workspace

CONFIG_FILE = "nbgrader_config.py"


def notebook_name(module: Module) -> str:
    return f"{module.slug}_dev.ipynb"


@dataclass
class CellScore:
    grade_id: str
    score: float
    max_score: float


@dataclass
class Course:
    """One nbgrader course directory: the instructor's grading/, or a scratch one for tito check."""

    ws: Workspace
    root: Path
    database: str | None = None     # a database URL; None: grading/gradebook.db (SQLite)

    @classmethod
    def of(cls, ws: Workspace) -> "Course":
        """The instructor's course; settings.ini [grading] db_url may point it at PostgreSQL."""
        return cls(ws, ws.path("grading"), ws.settings.get("grading", "db_url", fallback=None) or None)

    @property
    def db_url(self) -> str:
        return self.database or f"sqlite:///{self.root / 'gradebook.db'}"

    def config(self):
        """The tracked grading/nbgrader_config.py, with this course's root and database forced."""
        from traitlets.config import PyFileConfigLoader

        tracked = self.ws.path("grading") / CONFIG_FILE
        if not tracked.exists():
            raise TitoError(f"{tracked} is missing; restore it from the repository (git checkout -- {tracked})")
        config = PyFileConfigLoader(CONFIG_FILE, path=str(tracked.parent)).load_config()
        config.CourseDirectory.root = str(self.root)
        config.CourseDirectory.db_url = self.db_url
        config.CourseDirectory.course_id = self.ws.course_id
        config.Exchange.root = str(self.root / "exchange")
        # generate re-releases on every run, as generate_assignment itself is forced
        config.ExchangeReleaseAssignment.force = True
        return config

    def api(self):
        from nbgrader.apps import NbGraderAPI

        self.root.mkdir(parents=True, exist_ok=True)
        prepare_grading_environment(self.ws)
        return NbGraderAPI(config=self.config())

    def gradebook(self):
        from nbgrader.api import Gradebook

        return Gradebook(self.db_url, self.ws.course_id)

    # -- folders ---------------------------------------------------------------------------
    def source_notebook(self, module: Module) -> Path:
        return self.root / "source" / module.name / notebook_name(module)

    def release_notebook(self, module: Module) -> Path:
        return self.root / "release" / module.name / notebook_name(module)

    def submission_dir(self, student: str, module: Module) -> Path:
        return self.root / "submitted" / student / module.name

    def autograded_notebook(self, student: str, module: Module) -> Path:
        return self.root / "autograded" / student / module.name / notebook_name(module)

    def feedback_dir(self, student: str, module: Module) -> Path:
        return self.root / "feedback" / student / module.name

    def submitted_students(self, module: Module) -> list[str]:
        base = self.root / "submitted"
        return sorted(p.parent.name for p in base.glob(f"*/{module.name}") if p.is_dir()) if base.exists() else []


def prepare_grading_environment(ws: Workspace) -> None:
    """What the grading kernel inherits: the workspace's package first, the quick switch, nbgrader's tools.

    nbgrader shells out to `alembic`, which lives next to this Python, not necessarily on PATH.
    """
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    env = ws.subprocess_env(**AUTOGRADING_ENV)
    for key in ("PYTHONPATH", "TITO_ROOT", "MPLBACKEND", *AUTOGRADING_ENV):
        os.environ[key] = env[key]
    warnings.filterwarnings("ignore", module="sqlalchemy")
    warnings.filterwarnings("ignore", message=".*not in session.*")
    logging.getLogger("traitlets").setLevel(logging.ERROR)


@contextmanager
def quiet_sqlalchemy():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _require(result: dict, what: str) -> None:
    if not result.get("success"):
        log = (result.get("log") or "") + (result.get("error") or "")
        errors = [l for l in log.splitlines() if "[ERROR]" in l or "Error" in l]
        raise TitoError(f"{what} failed:\n  " + "\n  ".join((errors or log.splitlines())[-12:]))


def generate(course: Course, module: Module, api=None) -> Path:
    """Module source -> grading/source/<module>/ (jupytext) -> grading/release/<module>/ (nbgrader),
    then released into the course's own exchange (grading/exchange/), so formgrader finds the exchange
    and lists the module as released rather than draft."""
    import jupytext

    source = read_source(module)
    target = course.source_notebook(module)
    target.parent.mkdir(parents=True, exist_ok=True)
    jupytext.write(source.notebook, target, fmt="ipynb")
    api = api or course.api()
    with quiet_sqlalchemy():
        _require(api.generate_assignment(module.name, force=True), f"nbgrader generate_assignment {module.name}")
        _require(api.release_assignment(module.name), f"nbgrader release_assignment {module.name}")
    return course.release_notebook(module)


def place_submission(course: Course, student: str, module: Module, notebook_path: Path, timestamp: str) -> Path:
    """Put one student's notebook where nbgrader expects it, with nbgrader's timestamp.txt."""
    folder = course.submission_dir(student, module)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(notebook_path, folder / notebook_name(module))
    (folder / "timestamp.txt").write_text(timestamp)
    return folder / notebook_name(module)


def cell_scores(course: Course, module: Module, student: str) -> list[CellScore]:
    """Per graded cell score of one autograded submission, from the gradebook."""
    with quiet_sqlalchemy(), course.gradebook() as gb:
        submission = gb.find_submission_notebook(notebook_name(module)[: -len(".ipynb")], module.name, student)
        return sorted((CellScore(g.name, float(g.score), float(g.max_score)) for g in submission.grades),
                      key=lambda c: c.grade_id)

