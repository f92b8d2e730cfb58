"""Where the course lives: the repository (or a student workspace) and its settings.ini.

tito works on the workspace that contains the current directory, never on the folder it was
installed from, so one installed tito serves the course repository and any student edition.
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from tito.core.errors import TitoError

SETTINGS_FILE = "settings.ini"


@dataclass(frozen=True)
class GradingLimits:
    cell_timeout: int
    submission_timeout: int
    memory_mb: int
    max_processes: int


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def find(cls, start: Path | None = None) -> "Workspace":
        """The nearest folder at or above `start` (default: cwd, or $TITO_ROOT) holding settings.ini and modules/."""
        env_root = os.environ.get("TITO_ROOT")
        here = Path(env_root or start or Path.cwd()).resolve()
        for folder in (here, *here.parents):
            if (folder / SETTINGS_FILE).is_file() and (folder / "modules").is_dir():
                return cls(folder)
        raise TitoError(
            f"no TinyTorch workspace at or above {here}: expected a folder with {SETTINGS_FILE} and modules/. "
            "cd into the course repository or your student edition and run tito again."
        )

    @cached_property
    def settings(self) -> configparser.ConfigParser:
        parser = configparser.ConfigParser()
        parser.read(self.root / SETTINGS_FILE)
        return parser

    def path(self, key: str) -> Path:
        """A path from settings.ini's [paths] section, resolved against the workspace root."""
        try:
            return self.root / self.settings["paths"][key]
        except KeyError:
            raise TitoError(f"{SETTINGS_FILE} has no [paths] {key} = ...; add it (see the course repository's settings.ini)")

    @property
    def modules_dir(self) -> Path:
        return self.path("modules")

    @property
    def package_dir(self) -> Path:
        return self.path("package")

    @property
    def package_name(self) -> str:
        return self.package_dir.name

    @property
    def tests_dir(self) -> Path:
        return self.path("tests")

    def package_tests_dir(self, module_name: str) -> Path:
        """Where a module's package tests live: tests/modules/<NN_slug>/."""
        return self.tests_dir / "modules" / module_name

    @property
    def is_student_edition(self) -> bool:
        """settings.ini [course] edition = student, written by `tito student-edition`."""
        return self.settings.get("course", "edition", fallback="course") == "student"

    @property
    def course_id(self) -> str:
        return self.settings.get("course", "id", fallback="tinytorch")

    def grading_limits(self, overrides: dict | None = None) -> GradingLimits:
        """Limits from settings.ini [grading], with per-module overrides (module.yaml `grading:`) on top."""
        section = self.settings["grading"] if self.settings.has_section("grading") else {}
        merged = {name: int(section.get(name, default)) for name, default in
                  (("cell_timeout", 120), ("submission_timeout", 600), ("memory_mb", 4096), ("max_processes", 256))}
        for key, value in (overrides or {}).items():
            if key not in merged:
                raise TitoError(f"unknown grading limit {key!r} in module.yaml; known: {', '.join(merged)}")
            merged[key] = int(value)
        return GradingLimits(**merged)

    def subprocess_env(self, **extra: str) -> dict[str, str]:
        """Environment for child processes: this workspace's package first on the import path."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(self.root), *filter(None, [env.get("PYTHONPATH")])])
        env["TITO_ROOT"] = str(self.root)
        env.setdefault("MPLBACKEND", "Agg")
        env.update(extra)
        return env
