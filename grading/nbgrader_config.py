# nbgrader configuration of the TinyTorch course (tracked; everything else under grading/ is built).
# tito loads this file and then passes the course root explicitly, so nbgrader never falls back to
# the current folder (where it would silently create an empty gradebook). Plain `nbgrader ...`
# commands run from this folder read the same settings.
import configparser
import pathlib

here = pathlib.Path(__file__).resolve().parent
settings = configparser.ConfigParser()
settings.read(here.parent / "settings.ini")

c = get_config()  # noqa: F821 (provided by traitlets when it loads this file)
c.CourseDirectory.root = str(here)
c.CourseDirectory.course_id = settings.get("course", "id", fallback="tinytorch")
c.CourseDirectory.db_url = settings.get("grading", "db_url", fallback="") or f"sqlite:///{here / 'gradebook.db'}"
c.Exchange.root = str(here / "exchange")

# A per-cell limit, so one endless loop cannot stall a whole batch.
cell_timeout = settings.getint("grading", "cell_timeout", fallback=120)
c.ExecutePreprocessor.timeout = cell_timeout
c.Execute.timeout = cell_timeout
c.Execute.interrupt_on_timeout = True

# nbgrader's default feedback shows the source of hidden tests (autograding restores them into
# the notebook). Feedback here replaces each hidden region and its traceback with a short note.
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor  # noqa: E402
from nbgrader.preprocessors import GetGrades  # noqa: E402

from tito.core.feedback import HideHiddenTests, SanitizeSubmission  # noqa: E402

# SanitizeSubmission first: what the submission wrote becomes inert text before nbgrader reads it.
c.GenerateFeedback.preprocessors = [SanitizeSubmission, GetGrades, CSSHTMLHeaderPreprocessor, HideHiddenTests]
