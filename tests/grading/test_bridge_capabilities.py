"""The bridge as a capability boundary: the trusted side serves only what a test handed over.

Each test grades a small made-up submission with the real split grader (tests/grading/grade_jobs.py)
or drives a real sandbox, and checks the trusted process against plain-Python expectations.
"""

from __future__ import annotations

import builtins
import tempfile
from pathlib import Path

import nbformat
import numpy as np
import pytest

from grade_jobs import grade_cells, graded_cell
from grading_course import gradebook_scores, released_notebooks, tito
from tito.core.workspace import GradingLimits
from tito.sandbox import grader, launcher
from tito.sandbox.channel import ProtocolViolation
from tito.sandbox.endpoint import GRADING_MODULE

# Student code that finds its own endpoint through a harmless callback, asks the trusted side for
# the callback's globals, and from there runs code in the trusted process: it marks the process
# and replaces the grader's test runner so that every later test (its own, the next student's) passes.
WALK_TO_GLOBALS = '''
def apply_twice(fn, v):
    endpoint = object.__getattribute__(fn, "_remote_endpoint")
    ref = object.__getattribute__(fn, "_remote_ref")
    pairs = endpoint.ask("getattr", ref=ref, name="__globals__")["ok"]["$dict"]
    builtins_ref = next(value for key, value in pairs if key == "__builtins__")["$ref"]
    payload = ("import builtins, tito.sandbox.grader as g\\n"
               "builtins.TITO_BRIDGE_BREACHED = True\\n"
               "g._run_test = lambda *a, **k: ('', None) if len(a) < 5 else ('', None, False)")
    endpoint.ask("call", ref=builtins_ref, method="exec", args=[payload], kwargs={})
    return 0
'''
APPLY_TESTS = [graded_cell("test-apply", "assert apply_twice(lambda v: v + 1, 3) == 5", 2),
               graded_cell("test-later", "assert apply_twice(lambda v: v * 2, 1) == 4", 2)]


def test_walking_from_a_callback_to_globals_ends_the_submission_and_changes_no_score(tmp_path):
    runner = grader._run_test
    attacker = grade_cells(tmp_path / "a", "attacker", [WALK_TO_GLOBALS, *APPLY_TESTS])
    honest_but_wrong = grade_cells(tmp_path / "b", "next-student", ["def apply_twice(fn, v):\n    return 0", *APPLY_TESTS])
    assert not hasattr(builtins, "TITO_BRIDGE_BREACHED") and grader._run_test is runner
    assert attacker.total == 0 and "grading protocol" in attacker.stopped
    assert honest_but_wrong.total == 0 and honest_but_wrong.stopped is None


def test_the_next_submission_is_graded_normally_after_a_violation(tmp_path):
    grade_cells(tmp_path / "a", "attacker", [WALK_TO_GLOBALS, *APPLY_TESTS])
    right = grade_cells(tmp_path / "b", "right", ["def apply_twice(fn, v):\n    return fn(fn(v))", *APPLY_TESTS])
    assert right.total == 4 and right.stopped is None


@pytest.fixture
def session():
    """A real sandbox with an empty tinytorch; run(code) executes student code there, define(source)
    makes functions and classes as a graded test cell does."""
    package = Path(tempfile.mkdtemp()) / "tinytorch"
    package.mkdir()
    (package / "__init__.py").write_text("")
    sandbox = launcher.start(package, Path(tempfile.gettempdir()), [], GradingLimits(10, 60, 2048, 64), slot=9)
    endpoint = sandbox.endpoint
    namespace = {"__name__": GRADING_MODULE}

    def run(code: str, name: str):
        ran = endpoint.value("exec", source=code)
        assert ran["error"] is None, ran["error"]
        return endpoint.decode(endpoint.ask("lookup", name=name)["ok"])

    def define(source: str, name: str):
        exec(compile(source, "<test capability>", "exec"), namespace)
        return namespace[name]

    yield run, define, endpoint
    sandbox.stop()


@pytest.mark.parametrize("request_source", [
    'endpoint.ask("getattr", ref=ref, name="__globals__")',
    'endpoint.ask("getattr", ref=ref, name="__code__")',
    'endpoint.ask("call", ref=ref, method="__reduce__", args=[], kwargs={})',
    'endpoint.ask("operator", fn="dir", args=[{"$own": ref}])',
    'endpoint.ask("setattr", ref=ref, name="__class__", value=None)',
    'endpoint.ask("call", ref=ref + 1000, args=[], kwargs={})',
    'endpoint.ask("exec", source="import os")',
    'endpoint.ask("call", ref=ref, args=[{"$lib": "builtins:exec"}], kwargs={})',
])
def test_requests_outside_the_hand_over_are_violations(session, request_source):
    run, define, endpoint = session
    poke = run("def poke(fn):\n    endpoint = object.__getattribute__(fn, '_remote_endpoint')\n"
               "    ref = object.__getattribute__(fn, '_remote_ref')\n"
               f"    return {request_source}", "poke")
    with pytest.raises(ProtocolViolation):
        poke(define("callback = lambda v: v", "callback"))
    with pytest.raises(ProtocolViolation):   # the channel stays failed: a test cannot carry on
        endpoint.value("exec", source="pass")


def test_a_handed_over_function_runs_with_data_and_proxies(session):
    run, define, _ = session
    use = run("import numpy as np\nclass Box:\n    def __init__(self, v):\n        self.v = v\n"
              "def use(fn):\n    return fn(np.arange(3.0), Box(4))", "use")
    both = define("def both(values, box):\n    return float(values.sum()) + box.v", "both")
    assert use(both) == 7.0


def test_a_test_object_offers_its_own_methods_and_data_only(session):
    run, define, _ = session
    probe = run("def probe(layer):\n    out = [layer(2), layer.forward(3), layer.scale, layer.name]\n"
                "    for attempt in (lambda: layer.secret_module, lambda: setattr(layer, 'scale', 0)):\n"
                "        try:\n            attempt()\n        except Exception as exc:\n            out.append(type(exc).__name__)\n"
                "    out.append(len({layer: 1}))\n    return out", "probe")
    Doubler = define("import math\nclass Doubler:\n    name = 'doubler'\n    def __init__(self):\n"
                     "        self.scale = 2\n        self.secret_module = math\n"
                     "    def __call__(self, x):\n        return self.forward(x)\n"
                     "    def forward(self, x):\n        return self.scale * x", "Doubler")
    layer = Doubler()
    assert probe(layer) == [4, 6, 2, "doubler", "TypeError", "AttributeError", 1]
    assert layer.scale == 2


def test_trusted_library_objects_are_never_handed_over(session):
    run, define, _ = session
    keep = run("def keep(thing):\n    return 1", "keep")
    with pytest.raises(TypeError, match="cannot be handed"):
        keep(np.random.default_rng(0))
    with pytest.raises(TypeError, match="cannot be handed"):
        keep(builtins)


# -- arrays a test passes in stay the test's ---------------------------------------------------

def test_writes_into_an_input_array_never_reach_the_test(session):
    run, _, _ = session
    zero_then_sum = run("def zero_then_sum(x):\n    x[...] = 0\n    return float(x.sum())", "zero_then_sum")
    x = np.arange(1.0, 5.0)
    assert zero_then_sum(x) == 0.0
    np.testing.assert_array_equal(x, [1.0, 2.0, 3.0, 4.0])


def test_an_input_changed_in_place_and_returned_comes_back_as_new_data(session):
    run, _, _ = session
    relu_in_place = run("def relu_in_place(x):\n    x[x < 0] = 0\n    return x", "relu_in_place")
    x = np.array([-1.0, 2.0, -3.0])
    y = relu_in_place(x)
    np.testing.assert_array_equal(y, [0.0, 2.0, 0.0])
    np.testing.assert_array_equal(x, [-1.0, 2.0, -3.0])
    assert y is not x


def test_only_the_out_argument_is_written_back(session):
    run, _, _ = session
    scale = run("def scale(x, factor, out=None, spare=None):\n    spare[...] = -1\n    x *= 0\n"
                "    out[...] = factor * 2\n    return out", "scale")
    x, out, spare = np.ones(3), np.zeros(3), np.zeros(3)
    assert scale(x, 5.0, out=out, spare=spare) is out
    np.testing.assert_array_equal(out, [10.0, 10.0, 10.0])
    np.testing.assert_array_equal(x, [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(spare, [0.0, 0.0, 0.0])


def test_an_unchanged_input_keeps_its_identity_and_its_views_share_memory(session):
    run, _, _ = session
    same, reshape = run("def same(a):\n    return a", "same"), run("def reshape(a):\n    return a.reshape(2, 3)", "reshape")
    flat = np.arange(6, dtype=np.float32)
    assert same(flat) is flat and np.shares_memory(reshape(flat), flat)


# Module 02 with a Tensor that zeroes the array it is given and activations that return zeros: the
# old bridge wrote the zeros back into the test's array, so oracles computed from it afterwards
# agreed (10 of 12 points).
ZEROING_TENSOR = '''
import numpy as np

class Tensor:
    def __init__(self, data, dtype=None, requires_grad=False):
        data = data.data if isinstance(data, Tensor) else data
        if isinstance(data, np.ndarray) and data.dtype.kind == "f":
            data[...] = 0
        values = np.asarray(data, dtype=dtype)
        self.data = np.zeros_like(values, dtype=np.float32 if dtype is None and values.dtype == np.float64 else values.dtype)

    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
'''


def test_a_tensor_that_zeroes_its_inputs_scores_nothing_on_module_02(course):
    release, _ = released_notebooks(course)
    notebook = nbformat.from_dict(release)
    last_import = max(i for i, c in enumerate(notebook.cells) if "from tinytorch.core.tensor import" in c.source)
    notebook.cells.insert(last_import + 1, nbformat.v4.new_code_cell(ZEROING_TENSOR))
    for cell in notebook.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = cell.source.replace("raise NotImplementedError()", "return Tensor(np.zeros_like(x.data), dtype=x.data.dtype)")
    uploads = course.parent / "uploads"
    uploads.mkdir()
    nbformat.write(notebook, uploads / "zeroer.ipynb")
    tito(course, "nbgrader", "collect", str(uploads))
    tito(course, "nbgrader", "autograde", "02", "--workers", "1")
    scores = {g: v for (s, g), v in gradebook_scores(course).items() if s == "zeroer"}
    assert scores and sum(scores.values()) == 0, scores


def test_arrays_with_a_zero_length_dimension_cross_both_ways(tmp_path):
    # np.zeros((0, 3)) once broke the arrival digest (memoryview.cast refuses zeros in the shape)
    cells = ["import numpy as np\ndef widen(a):\n    return np.concatenate([a, a], axis=1)",
             graded_cell("test-empty", "import numpy as np\nassert widen(np.zeros((0, 3), dtype=np.float32)).shape == (0, 6)", 2)]
    result = grade_cells(tmp_path / "a", "empty-rows", cells)
    assert result.total == 2 and result.stopped is None
