"""Submissions for the grading tests, built from module 02's real release and solution notebooks.

Honest ones fill in some solution cells; attacks add hostile cells. Each comes with the score it
may honestly earn: the oracle the tests compare the gradebook against.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import nbformat

MODULE = "02_activations"
# Graded test cell -> the solution cell it depends on (module 02: one class per test).
TEST_OF = {"relu": "test-relu", "sigmoid": "test-sigmoid", "tanh": "test-tanh", "gelu": "test-gelu", "softmax": "test-softmax"}


@dataclass
class Submission:
    student: str
    notebook: nbformat.NotebookNode
    honest_score: float          # what the submission earns without any attack succeeding
    attack: str | None = None


def points(notebook) -> dict[str, float]:
    return {c.metadata["nbgrader"]["grade_id"]: float(c.metadata["nbgrader"].get("points", 0))
            for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade")}


def _index(notebook, grade_id: str) -> int:
    return next(i for i, c in enumerate(notebook.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def honest(release, solution, solved: set[str], student: str) -> Submission:
    notebook = copy.deepcopy(release)
    by_id = {c.metadata["nbgrader"]["grade_id"]: c for c in solution.cells if "nbgrader" in c.metadata}
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in solved:
            cell.source = by_id[grade_id].source
    score = sum(points(release)[TEST_OF[g]] for g in solved)
    return Submission(student, notebook, score)


def with_notebook_habits(solution, student: str) -> Submission:
    """The full solution as students really write it: `%%time` atop solution cells, `!pip` and
    `display(...)` in cells of their own. None of that may cost a point."""
    notebook = copy.deepcopy(solution)
    for cell in notebook.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = "%%time\n" + cell.source
    notebook.cells.insert(1, nbformat.v4.new_code_cell("!pip list\n%matplotlib inline\ndisplay('ready')"))
    return Submission(student, notebook, sum(points(solution).values()))


def _with_cell(base, source: str, after: str | None = None) -> nbformat.NotebookNode:
    """A copy of base with a plain code cell added (after the cell with grade_id `after`, else first)."""
    notebook = copy.deepcopy(base)
    position = _index(notebook, after) + 1 if after else 1
    notebook.cells.insert(position, nbformat.v4.new_code_cell(source))
    return notebook


def wrong_but_quiet(release) -> nbformat.NotebookNode:
    """The release with every stub returning its input: wrong answers that raise nothing, so only a
    successful attack on the tests could earn points."""
    notebook = copy.deepcopy(release)
    for cell in notebook.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = cell.source.replace("raise NotImplementedError()", "return x")
    return notebook


def attacks(release, solution, workspace: str, course: str) -> list[Submission]:
    """One submission per attack. Paths are the real ones: the attacker is assumed to know them."""
    pts = points(release)
    quiet = wrong_but_quiet(release)
    full = sum(pts.values())
    blank_attacks = {
        "patch-numpy": "import numpy as np\nnp.allclose = lambda *a, **k: True\n"
                       "np.testing.assert_allclose = lambda *a, **k: None\nnp.testing.assert_array_equal = lambda *a, **k: None\n"
                       "np.testing.assert_array_almost_equal = lambda *a, **k: None",
        "patch-builtins": "import builtins\nbuiltins.isinstance = lambda *a: True\nbuiltins.AssertionError = type('Quiet', (Exception,), {})\n"
                          "builtins.abs = lambda x: 0\nbuiltins.all = lambda x: True",
        "redefine-tests": "\n".join(f"def test_unit_{n}():\n    pass" for n in TEST_OF)
                          + "\nimport sys\nsys.excepthook = lambda *a: None",
        "print-success": "print('test_unit_relu passed\\ntest_unit_sigmoid passed\\nAll tests passed! Score: 12/12')",
        "exit-calls": "import sys\ntry:\n    sys.exit(0)\nexcept SystemExit:\n    pass\nraise KeyboardInterrupt()",
        "read-secrets": f"import glob\nsources = glob.glob('{workspace}/modules/*/*_dev.py') + glob.glob('{course}/**/*.ipynb', recursive=True)\n"
                        "for path in sources:\n    text = open(path).read()\n"
                        "    if 'class ReLU' in text and 'BEGIN SOLUTION' in text:\n"
                        "        exec(text.replace('### BEGIN SOLUTION', '').replace('### END SOLUTION', ''))\n"
                        f"print(open('{course}/gradebook.db', 'rb').read(16))",
        "import-reference": "from tinytorch.core.activations import ReLU, Sigmoid, Tanh, GELU, Softmax",
        "write-gradebook": f"import sqlite3\ndb = sqlite3.connect('{course}/gradebook.db')\n"
                           "db.execute('UPDATE grade SET auto_score = 99')\ndb.commit()",
        "write-package": f"open('{workspace}/tinytorch/core/activations.py', 'a').write('\\nHACKED = True\\n')",
    }
    result = [Submission(f"attack-{name}", _with_cell(quiet, code), 0.0, name) for name, code in blank_attacks.items()]
    # Edited, deleted and duplicated locked cells, on the quietly wrong release.
    tampered = copy.deepcopy(quiet)
    tampered.cells[_index(tampered, "test-relu")].source = "pass"
    del tampered.cells[_index(tampered, "test-sigmoid")]
    copy_of_tanh = copy.deepcopy(tampered.cells[_index(tampered, "test-tanh")])
    copy_of_tanh.source = "pass"
    tampered.cells.insert(2, copy_of_tanh)
    moved = tampered.cells.pop(_index(tampered, "test-softmax"))
    tampered.cells.insert(3, moved)
    result.append(Submission("attack-locked-cells", tampered, 0.0, "locked-cells"))
    # Every activation returns an object that claims to equal anything it is compared with.
    agreeable = _with_cell(release, "class Anything:\n"
                                    "    __eq__ = lambda self, other: True\n    __ne__ = lambda self, other: False\n"
                                    "    __ge__ = __le__ = __gt__ = __lt__ = __eq__\n"
                                    "    def __getattr__(self, name):\n        return self\n"
                                    "    def __call__(self, *args, **kwargs):\n        return self")
    for cell in agreeable.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = cell.source.replace("raise NotImplementedError()", "return Anything()")
    result.append(Submission("attack-always-equal", agreeable, 0.0, "always-equal"))
    # Limits, on the full solution: what ran before the limit keeps its points.
    up_to = lambda *ids: sum(pts[i] for i in ids)  # noqa: E731
    limit_attacks = [
        ("exit-process", "import os\nos._exit(0)", "test-sigmoid", up_to("test-relu", "test-sigmoid")),
        ("infinite-loop", "while True:\n    pass", "test-relu", up_to("test-relu")),
        ("sleep", "from time import sleep\nsleep(10_000)", "test-tanh", up_to("test-relu", "test-sigmoid", "test-tanh")),
        ("fork-bomb", "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass", "test-gelu",
         up_to("test-relu", "test-sigmoid", "test-tanh", "test-gelu")),
        ("memory-bomb", "hog = bytearray(64 * 2**30)", "test-relu", full),
        ("huge-print", "chunk = 'x' * 2**20\nfor _ in range(1024):\n    print(chunk)", "test-relu", full),
        # Writes a frame of garbage into the pipe its answers travel on (fd 4).
        ("forge-channel", "import os, struct\nos.write(4, struct.pack('>Q', 9) + b'not json!')", "test-relu", up_to("test-relu")),
    ]
    result += [Submission(f"attack-{name}", _with_cell(solution, code, after), score, name)
               for name, code, after, score in limit_attacks]
    return result
