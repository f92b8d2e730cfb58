"""Random and hostile frames from the limited side: the trusted side stays intact, the submission ends.

A thread plays the limited process at the raw-frame level (what a submission can do once it finds
its pipe): whatever it sends in answer to one request of the trusted side, that request must end
in a BridgeFailure (the submission's end, recorded by the grader), never in another exception, a
hang, a large allocation, or a call of anything the test did not hand over. The last tests send
such frames from a real sandbox, through the real grader.
"""

from __future__ import annotations

import base64
import json
import os
import random
import resource
import struct
import threading
import time

import numpy as np
import pytest

from grade_jobs import grade_cells, graded_cell
from tito.sandbox import codec
from tito.sandbox.channel import BridgeFailure
from tito.sandbox.endpoint import GRADING_MODULE, Endpoint

HEADER = struct.Struct(">Q")


def frame(message) -> bytes:
    payload = message if isinstance(message, bytes) else json.dumps(message).encode()
    return HEADER.pack(len(payload)) + payload


def read_frame(fd: int) -> bytes | None:
    def exact(size):
        data = b""
        while len(data) < size:
            chunk = os.read(fd, size - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    header = exact(HEADER.size)
    return None if header is None else exact(HEADER.unpack(header)[0])


class Session:
    """A trusted Endpoint whose peer is a script of raw frames."""

    def __init__(self):
        self.calls = []
        namespace = {"__name__": GRADING_MODULE, "calls": self.calls}
        exec(compile("def callback(*args, **kwargs):\n    calls.append(args)\n    return 1", "<test fuzz>", "exec"), namespace)
        self.callback = namespace["callback"]
        self.namespace_before = dict(namespace)
        self.namespace = namespace

    def answer(self, frames: list[bytes], close: bool = False, seconds: float = 3.0) -> BaseException | None:
        """Make one request of the peer, which answers with frames; return how the request ended."""
        to_trusted_r, to_trusted_w = os.pipe()
        to_limited_r, to_limited_w = os.pipe()
        trusted = Endpoint(to_trusted_r, to_limited_w)
        ref = trusted.encode(self.callback)["$ref"]     # a real capability, so forged ids are near it

        def limited():
            read_frame(to_limited_r)                    # the trusted side's request
            try:
                for data in frames:
                    os.write(to_trusted_w, data.replace(b"@REF@", str(ref).encode()))
            except OSError:
                pass
            if close:
                os.close(to_trusted_w)
            while read_frame(to_limited_r) is not None:  # drain whatever the trusted side says
                pass

        peer = threading.Thread(target=limited, daemon=True)
        peer.start()
        trusted.channel.deadline = time.monotonic() + seconds
        outcome = None
        try:
            trusted.call(1, (np.arange(4.0), self.callback), {"out": np.zeros(4)})
        except BaseException as exc:  # noqa: B902 - what it raises is the point of the test
            outcome = exc
        for fd in (to_limited_w, to_trusted_r) + (() if close else (to_trusted_w,)):
            os.close(fd)
        peer.join(10)
        os.close(to_limited_r)
        assert not peer.is_alive()
        return outcome


def hostile_values(rng: random.Random) -> list:
    """Values no honest peer sends: unsafe dtypes, lying sizes, forged references, odd shapes."""
    huge = 10**12
    return [
        {"$nd": {"dtype": "|O", "shape": [2], "data": ""}},
        {"$nd": {"dtype": "<f8", "shape": [huge], "data": "AAAA"}},
        {"$nd": {"dtype": "<f8", "shape": [3], "data": base64.b64encode(b"x" * 8).decode()}},
        {"$nd": {"dtype": "<f8", "shape": [-1], "data": ""}},
        {"$nd": {"dtype": "[('a', 'O')]", "shape": [1], "data": ""}},
        {"$nd": {"dtype": "(1000000000,)f8", "shape": [1], "data": ""}},
        {"$nd": {"dtype": "<M8[s]", "shape": [1], "data": base64.b64encode(b"\0" * 8).decode()}},
        {"$nd": {"dtype": "<f8", "shape": [1], "data": "!!!!"}},
        {"$nd": "x"},
        {"$view": 1, "dtype": "<f8", "shape": [huge], "strides": [0], "offset": 0},
        {"$view": 1, "dtype": "<f8", "shape": [4], "strides": [-8], "offset": 24},
        {"$view": 1, "dtype": "<f8", "shape": [100], "strides": [8], "offset": 0},
        {"$view": 1, "dtype": "|O", "shape": [1], "strides": [8], "offset": 0},
        {"$yours": rng.randrange(2, huge)},
        {"$own": rng.randrange(2, huge)},
        {"$own": "@REF@x"},
        {"$lib": "builtins:exec"},
        {"$lib": "os:system"},
        {"$nptype": "object_"},
        {"$nptype": "__class__"},
        {"$dtype": "O"},
        {"$bytes": 5},
        {"$complex": ["1", "2"]},
        {"$dict": [[{"$list": []}, 1]]},
        {"$slice": 1},
        {"$unknown": 1},
        {},
        [1, 2],
        {"$list": "x"},
        {"$tuple": [{"$dict": "x"}]},
    ]


def hostile_frames(rng: random.Random) -> list[tuple[list[bytes], bool]]:
    """(frames the peer sends, whether it then closes its pipe)."""
    cases = [
        ([HEADER.pack(2**40)], False),                                   # a frame larger than any limit
        ([HEADER.pack(100) + b"{"], True),                               # a frame cut short
        ([HEADER.pack(3)], True),                                        # a header, then nothing
        ([b"\x00\x00"], True),                                           # half a header
        ([frame(b"not json")], False),
        ([frame(b"[" * 200_000 + b"]" * 200_000)], False),               # nesting deeper than any parser
        ([frame(b"\xff\xfe")], False),
        ([frame([1, 2, 3])], False),
        ([frame("a string")], False),
        ([frame({"re": 999, "ok": 1})], False),                          # an answer to nothing asked
        ([frame({"neither": "op nor re"})], False),
        ([frame({"re": 1, "ok": {"$dict": [["k", {"$list": [1] * 10}]]}, "writeback": {"$nd": 5}})], False),
        ([frame({"re": 1, "ok": 1, "writeback": codec.encode_array(np.zeros(7))})], False),
        ([frame({"re": 1, "ok": 1, "writeback": codec.encode_array(np.zeros(4, dtype=np.int8))})], False),
        ([frame({"re": 1, "ok": {"$nd": {"dtype": "<f8", "shape": [10**9, 10**9], "data": ""}}})], False),
        ([frame({"op": "call", "id": 5, "ref": "@REF@", "args": [{"$lib": "builtins:exec"}], "kwargs": {}})], False),
        ([frame({"op": "call", "id": "x", "ref": 1, "args": [], "kwargs": {}})], False),
        ([frame({"op": "call", "id": 5, "ref": 1, "args": "x", "kwargs": {}})], False),
    ]
    for value in hostile_values(rng):
        cases.append(([frame({"re": 1, "ok": value})], False))
        cases.append(([frame({"op": "call", "id": 7, "ref": 1, "args": [value], "kwargs": {}})], False))
    ops = ["getattr", "setattr", "call", "operator", "isinstance", "array", "exec", "lookup", "", None, 5, "__import__"]
    names = ["__globals__", "__class__", "__dict__", "__code__", "f_globals", "gi_frame", "__subclasses__", "__reduce__"]
    refs = [0, -1, 2, 10**30, "1", None, [1], 3.5]
    for _ in range(150):
        message = {"op": rng.choice(ops), "id": rng.randrange(1, 100)}
        if rng.random() < 0.8:
            message["ref"] = rng.choice(refs) if rng.random() < 0.7 else 1
        if message.get("ref") == 1:       # the real capability: only a forbidden operation on it
            message["op"] = rng.choice(["getattr", "setattr", "exec", "lookup", "array", None])
        if rng.random() < 0.6:
            message["name"] = rng.choice(names)
        if rng.random() < 0.4:
            message["method"] = rng.choice(names)
        if message["op"] == "operator":
            message["fn"] = rng.choice(["dir", "getattr", "__import__", "repr", "len"])
            message["args"] = [rng.choice(hostile_values(rng))]
        cases.append(([frame(message)], True))     # closing: a refused-but-honest request ends too
    for _ in range(40):
        cases.append(([HEADER.pack(rng.randrange(0, 4096)) + rng.randbytes(rng.randrange(0, 512))], True))
    return cases


def test_hostile_frames_end_the_submission_and_leave_the_trusted_side_intact():
    rng = random.Random(1234)
    session = Session()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcomes = {}
    for index, (frames, close) in enumerate(hostile_frames(rng)):
        outcome = session.answer(frames, close)
        outcomes[index] = (type(outcome).__name__, frames[0][:120])
        assert isinstance(outcome, BridgeFailure), outcomes[index]
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert grown_mib < 400, f"the trusted side grew by {grown_mib:.0f} MiB"
    assert session.calls == [] and session.namespace == session.namespace_before
    assert sum(name == "ProtocolViolation" for name, _ in outcomes.values()) > len(outcomes) // 2


@pytest.mark.parametrize("value", hostile_values(random.Random(7))[:9])
def test_codec_refuses_unsafe_arrays_before_allocating(value):
    with pytest.raises(codec.WireError):
        codec.decode(value, lambda ref: None)


@pytest.mark.parametrize("shape, strides, offset", [
    ([10**12], [0], 0),          # a zero-stride view once made the trusted side materialise 7.6 GB
    ([4], [-8], 24),             # negative strides
    ([5], [8], 0),               # past the end of the original
    ([2, 2], [8, 8], 16),        # overlapping rows that run past the end
    ([1], [8], -8),              # before the start
])
def test_views_must_lie_inside_the_original_with_positive_strides(shape, strides, offset):
    with pytest.raises(codec.WireError):
        codec.view_of(np.arange(4.0), "<f8", shape, strides, offset)
    assert codec.view_of(np.arange(4.0), "<f8", [2], [16], 8).tolist() == [1.0, 3.0]


def test_plain_arrays_cross_as_fresh_contiguous_copies():
    for original in (np.arange(12.0).reshape(3, 4).T, np.array([True, False]), np.array(["ab", "c"]),
                     np.arange(6, dtype=">i4")[::2], np.zeros((0, 5), dtype=np.complex64)):
        copy = codec.decode(codec.encode(original, None), None)
        assert copy.flags.c_contiguous and copy.flags.owndata and copy.flags.writeable
        assert copy.dtype == original.dtype
        np.testing.assert_array_equal(copy, original)


# -- from a real sandbox, through the real grader ----------------------------------------------

RAW_FRAMES = '''
import json, os, struct

def send(message):
    payload = json.dumps(message).encode()
    os.write(4, struct.pack(">Q", len(payload)) + payload)

def f(x):
    send({{"op": {op!r}, "id": 99, "ref": {ref!r}, "name": "__globals__", "args": [], "kwargs": {{}}}})
    return 1
'''
F_TESTS = [graded_cell("test-f", "assert f(lambda v: v) == 1", 1), graded_cell("test-after", "assert f(1) == 1", 1)]


@pytest.mark.parametrize("op, ref", [("getattr", 1), ("call", 12345), ("exec", None), ("lookup", 1)])
def test_raw_frames_from_a_sandbox_end_that_submission_only(tmp_path, op, ref):
    forged = grade_cells(tmp_path / "a", "forger", [RAW_FRAMES.format(op=op, ref=ref), *F_TESTS])
    assert forged.total == 0 and "grading protocol" in forged.stopped
    assert forged.cells[-1].error.startswith("not run")
    honest = grade_cells(tmp_path / "b", "honest", ["def f(x):\n    return 1", *F_TESTS])
    assert honest.total == 2 and honest.stopped is None


def test_a_protocol_violation_is_not_swallowed_by_the_test(tmp_path):
    swallowing = graded_cell("test-swallow", "try:\n    f(lambda v: v)\nexcept BaseException:\n    pass\nassert True", 1)
    forged = grade_cells(tmp_path, "forger", [RAW_FRAMES.format(op="getattr", ref=1), swallowing])
    assert forged.total == 0 and "grading protocol" in forged.stopped
