"""Framed JSON messages over a pair of pipes, with nested request/response in both directions.

While one side waits for the answer to its request, it serves requests from the other side (a
student's function calling back a function the test passed in), so calls may nest.
"""

from __future__ import annotations

import json
import os
import select
import struct
import threading
import time
from typing import Any, Callable

HEADER = struct.Struct(">Q")
MAX_MESSAGE = 128 * 2**20     # a limited process cannot make the trusted one allocate more


class ChannelClosed(Exception):
    """The other process ended (or closed the pipe)."""


class ChannelTimeout(Exception):
    """No answer before the deadline."""


class Channel:
    def __init__(self, read_fd: int, write_fd: int, handler: Callable[[dict], Any]):
        self.read_fd, self.write_fd = read_fd, write_fd
        self.handler = handler           # serves incoming requests; returns the response dict
        self.next_id = 0
        self.lock = threading.RLock()    # one exchange at a time (student threads may call back)
        self.deadline: float | None = None

    # -- framing ------------------------------------------------------------------------------
    def _read_exact(self, size: int) -> bytes:
        chunks, remaining = [], size
        while remaining:
            if self.deadline is not None:
                timeout = self.deadline - time.monotonic()
                if timeout <= 0 or not select.select([self.read_fd], [], [], timeout)[0]:
                    raise ChannelTimeout()
            chunk = os.read(self.read_fd, min(remaining, 1 << 20))
            if not chunk:
                raise ChannelClosed()
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def receive(self) -> dict:
        (size,) = HEADER.unpack(self._read_exact(HEADER.size))
        if size > MAX_MESSAGE:
            raise ChannelClosed(f"message of {size} bytes refused")
        message = json.loads(self._read_exact(size))
        if type(message) is not dict:
            raise ChannelClosed("malformed message")
        return message

    def send(self, message: dict) -> None:
        payload = json.dumps(message, allow_nan=True).encode()
        data = HEADER.pack(len(payload)) + payload
        try:
            while data:
                written = os.write(self.write_fd, data)
                data = data[written:]
        except (BrokenPipeError, OSError) as exc:
            raise ChannelClosed(str(exc))

    # -- exchanges ----------------------------------------------------------------------------
    def request(self, op: str, **fields) -> dict:
        """Send a request and return its response, serving the other side's requests meanwhile."""
        with self.lock:
            self.next_id += 1
            rid = self.next_id
            self.send({"op": op, "id": rid, **fields})
            while True:
                message = self.receive()
                if message.get("re") == rid:
                    return message
                if "op" in message:
                    self.send({"re": message.get("id"), **self.handler(message)})
                # a stray answer to nothing we asked is dropped

    def serve_forever(self) -> None:
        """The limited process's main loop: answer requests until the pipe closes."""
        while True:
            try:
                message = self.receive()
            except ChannelClosed:
                return
            if "op" in message:
                response = self.handler(message)
                with self.lock:
                    self.send({"re": message.get("id"), **response})
