"""Framed JSON messages over a pair of pipes, with nested request/response in both directions.

While one side waits for the answer to its request, it serves requests from the other side (a
student's function calling back a function the test passed in), so calls may nest.

Reads and writes both honour the deadline: a submission that stops reading its pipe cannot hold
the trusted side in a blocked write. Once the channel fails (closed, timed out, protocol broken)
it stays failed: a test that catches the error cannot go on talking to the submission.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import struct
import threading
import time
from typing import Any, Callable

HEADER = struct.Struct(">Q")
MAX_MESSAGE = 128 * 2**20     # a limited process cannot make the trusted one allocate more


class BridgeFailure(BaseException):
    """The conversation with the submission is over. A BaseException, so that a test's
    `except Exception` (or pytest.raises) can never swallow it."""


class ChannelClosed(BridgeFailure):
    """The other process ended (or closed the pipe)."""


class ChannelTimeout(BridgeFailure):
    """No answer before the deadline."""


class ProtocolViolation(BridgeFailure):
    """The other side sent what no honest peer sends: a forged reference, an operation the object
    was not handed over for, a malformed or oversized frame. Ends the submission."""


class Channel:
    def __init__(self, read_fd: int, write_fd: int, handler: Callable[[dict], Any], strict: bool = False):
        self.read_fd, self.write_fd = read_fd, write_fd
        self.handler = handler           # serves incoming requests; returns the response dict
        self.strict = strict             # the trusted side: anything unexpected is a violation
        self.next_id = 0
        self.lock = threading.RLock()    # one exchange at a time (student threads may call back)
        self.deadline: float | None = None
        self.failure: BridgeFailure | None = None
        try:
            fcntl.fcntl(write_fd, fcntl.F_SETFL, fcntl.fcntl(write_fd, fcntl.F_GETFL) | os.O_NONBLOCK)
        except OSError:
            pass

    def _fail(self, failure: BridgeFailure) -> BridgeFailure:
        if self.failure is None:
            self.failure = failure
        return failure

    def _wait(self, readable: bool) -> None:
        """Block until the pipe is ready, or raise ChannelTimeout at the deadline."""
        while True:
            timeout = None if self.deadline is None else self.deadline - time.monotonic()
            if timeout is not None and timeout <= 0:
                raise self._fail(ChannelTimeout())
            fds = ([self.read_fd], [], []) if readable else ([], [self.write_fd], [])
            if any(select.select(*fds, timeout)):
                return

    # -- framing ------------------------------------------------------------------------------
    def _read_exact(self, size: int) -> bytes:
        chunks, remaining = [], size
        while remaining:
            if self.deadline is not None:
                self._wait(readable=True)
            chunk = os.read(self.read_fd, min(remaining, 1 << 20))
            if not chunk:
                raise self._fail(ChannelClosed())
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def receive(self) -> dict:
        (size,) = HEADER.unpack(self._read_exact(HEADER.size))
        if size > MAX_MESSAGE:
            raise self._fail(ProtocolViolation(f"a frame of {size} bytes (limit {MAX_MESSAGE})"))
        payload = self._read_exact(size)
        try:
            message = json.loads(payload)
        except (ValueError, RecursionError, MemoryError) as exc:
            raise self._fail(ProtocolViolation(f"a frame that is not JSON ({type(exc).__name__})")) from None
        if type(message) is not dict:
            raise self._fail(ProtocolViolation("a frame that is not a message"))
        return message

    def send(self, message: dict) -> None:
        payload = json.dumps(message, allow_nan=True).encode()
        data = memoryview(HEADER.pack(len(payload)) + payload)
        try:
            while data:
                try:
                    written = os.write(self.write_fd, data)
                except BlockingIOError:
                    self._wait(readable=False)
                    continue
                data = data[written:]
        except (BrokenPipeError, OSError) as exc:
            raise self._fail(ChannelClosed(str(exc)))

    # -- exchanges ----------------------------------------------------------------------------
    def request(self, op: str, **fields) -> dict:
        """Send a request and return its response, serving the other side's requests meanwhile."""
        with self.lock:
            if self.failure is not None:
                raise self.failure
            self.next_id += 1
            rid = self.next_id
            try:
                self.send({"op": op, "id": rid, **fields})
                while True:
                    message = self.receive()
                    if "op" in message:
                        if self.strict and (type(message.get("id")) is not int or "re" in message):
                            raise ProtocolViolation("a request without a proper id")
                        self.send({"re": message.get("id"), **self.handler(message)})
                    elif message.get("re") == rid:
                        return message
                    elif self.strict:
                        raise ProtocolViolation("an answer to a question nobody asked")
                    # (the limited side drops a stray answer)
            except BridgeFailure as failure:
                raise self._fail(failure)

    def serve_forever(self) -> None:
        """The limited process's main loop: answer requests until the pipe closes."""
        while True:
            try:
                message = self.receive()
            except BridgeFailure:
                return
            if "op" in message:
                response = self.handler(message)
                with self.lock:
                    try:
                        self.send({"re": message.get("id"), **response})
                    except BridgeFailure:
                        return
