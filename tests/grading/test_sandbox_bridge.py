"""The bridge between the trusted grader and the limited process, tested on a real sandbox.

Each test runs student-side code with `exec` in the limited process and checks what the trusted
side sees, against plain-Python expectations.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest

from tito.core.workspace import GradingLimits
from tito.sandbox import launcher
from tito.sandbox.endpoint import GRADING_MODULE, RemoteError


def defined_in_a_test(source: str, name: str):
    """name as a graded test cell defines it (compiled from test source, in the grading namespace):
    only such functions and classes may be handed to student code."""
    namespace = {"__name__": GRADING_MODULE}
    exec(compile(source, "<test bridge>", "exec"), namespace)
    return namespace[name]


@pytest.fixture
def student():
    """A limited process with an empty tinytorch; yields a function that runs code and looks up names."""
    package = Path(tempfile.mkdtemp()) / "tinytorch"
    package.mkdir()
    (package / "__init__.py").write_text("")
    sandbox = launcher.start(package, Path(tempfile.gettempdir()), [], GradingLimits(30, 120, 2048, 64), slot=7)
    endpoint = sandbox.endpoint
    endpoint.sends_library_names = True

    def run(code: str, name: str | None = None):
        ran = endpoint.value("exec", source=code)
        assert ran["error"] is None, ran["error"]
        if name:
            return endpoint.decode(endpoint.ask("lookup", name=name)["ok"])
        return ran["output"]

    yield run
    sandbox.stop()


def test_values_cross_as_equal_data(student):
    value = student("import numpy as np\nv = (1, 2.5, 'x', None, [np.float32(3)], {'k': np.arange(6).reshape(2, 3)}, slice(1, None), np.dtype('int8'))", "v")
    assert value[:4] == (1, 2.5, "x", None)
    assert value[4][0] == np.float32(3) and type(value[4][0]) is np.float32
    np.testing.assert_array_equal(value[5]["k"], np.arange(6).reshape(2, 3))
    assert value[6] == slice(1, None) and value[7] == np.dtype("int8")


def test_out_argument_is_written_in_place_and_returned_as_itself(student):
    relu = student("import numpy as np\ndef relu(x, out=None):\n    return np.maximum(x, 0, out=out)", "relu")
    x = np.array([-1.0, 2.0, -3.0])
    out = np.empty_like(x)
    assert relu(x, out=out) is out
    np.testing.assert_array_equal(out, [0.0, 2.0, 0.0])


def test_a_view_of_an_array_we_sent_shares_its_memory(student):
    reshape = student("def reshape(a):\n    return a.reshape(2, 3)", "reshape")
    flat = np.arange(6, dtype=np.float32)
    grid = reshape(flat)
    assert np.shares_memory(grid, flat)
    np.testing.assert_array_equal(grid, flat.reshape(2, 3))


def test_student_exceptions_arrive_as_the_nearest_builtin(student):
    fail = student("class ShapeError(ValueError):\n    pass\ndef fail():\n    raise ShapeError('bad shape (2, 3)')", "fail")
    with pytest.raises(ValueError, match="bad shape"):
        fail()


@pytest.mark.parametrize("raised", ["SystemExit(0)", "KeyboardInterrupt()"])
def test_exit_exceptions_never_reach_the_trusted_side_as_themselves(student, raised):
    quit_now = student(f"def quit_now():\n    raise {raised}", "quit_now")
    with pytest.raises(RemoteError):
        quit_now()


def test_student_threads_can_call_back_into_the_test(student):
    fan_out = student("from concurrent.futures import ThreadPoolExecutor\n"
                      "def fan_out(fn, items):\n    with ThreadPoolExecutor(4) as pool:\n        return list(pool.map(fn, items))",
                      "fan_out")
    times_ten = defined_in_a_test("times_ten = lambda v: v * 10", "times_ten")
    assert fan_out(times_ten, list(range(8))) == [v * 10 for v in range(8)]


def test_library_functions_run_on_the_student_side(student):
    call = student("import gc\ngc.disable()\ndef call(fn):\n    return fn()", "call")
    import gc

    assert gc.isenabled() and call(gc.isenabled) is False


def test_a_test_defined_class_hierarchy_keeps_its_shape(student):
    rule_for = student("def rule_for(cls):\n    return [c.__name__ for c in cls.__mro__]", "rule_for")
    Conv = defined_in_a_test("class Layer:\n    pass\nclass Conv(Layer):\n    pass", "Conv")
    assert rule_for(Conv)[:2] == ["Conv", "Layer"]


def test_student_classes_work_with_isinstance_and_operators(student):
    Box = student("class Box:\n    def __init__(self, v):\n        self.v = v\n"
                  "    def __add__(self, other):\n        return Box(self.v + (other.v if isinstance(other, Box) else other))", "Box")
    total = Box(2) + Box(3) + 4
    assert isinstance(total, Box) and total.v == 9


def test_a_student_object_never_equals_plain_data(student):
    agreeable = student("class Agreeable:\n    def __eq__(self, other):\n        return True\n"
                        "    def __ne__(self, other):\n        return False\nthing = Agreeable()", "thing")
    assert not (agreeable == (2, 3)) and agreeable != 5 and (agreeable == np.zeros(2)) is False
    with pytest.raises(TypeError):
        agreeable < 3
    assert agreeable == agreeable   # object against object still asks the object


def test_a_student_context_manager_sees_the_exception_type_but_cannot_swallow_assertions(student):
    Swallow = student("class Swallow:\n    seen = []\n    def __enter__(self):\n        return self\n"
                      "    def __exit__(self, kind, value, tb):\n        Swallow.seen.append(getattr(kind, '__name__', None))\n"
                      "        return True", "Swallow")
    with Swallow():
        raise KeyError("swallowed: the student's manager may do that")
    with pytest.raises(AssertionError):
        with Swallow():
            assert 1 == 2, "a test's own assertion always escapes"
    assert Swallow.seen == ["KeyError", "AssertionError"]
