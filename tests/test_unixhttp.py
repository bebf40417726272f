"""The control socket's server on a real socket and a real selector: a client that never reads."""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Callable
from pathlib import Path

from watchdog.timers import Timer, Timers
from watchdog.unixhttp import MAX_BACKLOG, Connection, Request, Server, listen


class Loop:
    """The engine's loop in miniature: one selector, one heap of timers."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.timers = Timers()

    def add_reader(self, fd: int, on_readable: Callable[[], None]) -> None:
        self.selector.register(fd, selectors.EVENT_READ, on_readable)

    def add_writer(self, fd: int, on_writable: Callable[[], None]) -> None:
        self.selector.register(fd, selectors.EVENT_WRITE, on_writable)

    def remove_reader(self, fd: int) -> None:
        self.selector.unregister(fd)

    remove_writer = remove_reader

    def call_later(self, delay: float, callback: Callable[[], None] | None = None) -> Timer:
        return self.timers.add(time.monotonic() + delay, callback)

    def turn(self, timeout: float = 0.05) -> None:
        for key, _ in self.selector.select(timeout):
            key.data()
        for timer in self.timers.pop_due(time.monotonic()):
            if timer.callback is not None:
                timer.callback()


def test_a_stream_nobody_reads_is_dropped_and_never_blocks_the_loop(tmp_path: Path) -> None:
    loop = Loop()
    streams: list[Connection] = []

    def handler(request: Request, connection: Connection) -> None:
        connection.stream()
        streams.append(connection)

    server = Server(loop, listen(str(tmp_path / "s.sock")), handler, lambda peer: None)
    client = socket.socket(socket.AF_UNIX)
    client.connect(str(tmp_path / "s.sock"))
    client.sendall(b"GET /v1/events HTTP/1.1\r\n\r\n")
    while not streams:
        loop.turn()
    [stream] = streams
    line = b'{"event": "changed", "padding": "' + b"x" * 4000 + b'"}\n'
    sent = 0
    while not stream.closed:  # the client reads nothing, ever; a blocking send would hang here
        stream.send(line)
        loop.turn(0)
        sent += len(line)
        assert sent < 50 * MAX_BACKLOG, "never dropped"
    assert not server.connections
    assert sent > MAX_BACKLOG  # what the kernel took, then what piled up in memory
    # The server still answers others afterwards.
    other = socket.socket(socket.AF_UNIX)
    other.connect(str(tmp_path / "s.sock"))
    other.sendall(b"GET /v1/events HTTP/1.1\r\n\r\n")
    while len(streams) < 2:
        loop.turn()
    server.close()
    client.close()
    other.close()
