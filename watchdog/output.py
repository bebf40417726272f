"""``--prefix``: each line a service writes, relayed with its rule's name in front.

Services write into pipes; the engine's one selector wakes when a pipe has
data, and only whole lines are written out, so two services' lines never
interleave mid-line. What is left without a trailing newline is written when
the pipe closes (every writer gone, the service and any daemon it forked) or
when the watchdog stops.
"""

from __future__ import annotations

import os
from typing import BinaryIO

from watchdog.events import Waiter

CHUNK = 65536


class LineRelay:
    """One pipe's reading end, copied line by line to ``sink`` behind ``label``."""

    def __init__(self, fd: int, label: bytes, sink: BinaryIO, waiter: Waiter) -> None:
        self.fd = fd
        self.label = label
        self.sink = sink
        self.waiter = waiter
        self.partial = b""
        os.set_blocking(fd, False)
        waiter.add_reader(fd, self.read_available)

    def read_available(self) -> None:
        """Copy what the pipe holds now; close on end of file."""
        while True:
            try:
                data = os.read(self.fd, CHUNK)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self.close()
                return
            self.feed(data)

    def feed(self, data: bytes) -> None:
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        if lines:
            self.sink.write(b"".join(self.label + line + b"\n" for line in lines))
            self.sink.flush()

    def close(self) -> None:
        if self.fd < 0:
            return
        self.waiter.remove_reader(self.fd)
        os.close(self.fd)
        self.fd = -1
        if self.partial:
            self.sink.write(self.label + self.partial + b"\n")
            self.sink.flush()
            self.partial = b""


class Prefixer:
    """Pipes for each start of a command, and the relays that read them."""

    def __init__(self, waiter: Waiter, names: list[str], stdout: BinaryIO, stderr: BinaryIO) -> None:
        self.waiter = waiter
        self.width = max((len(name) for name in names), default=0)
        self.sinks = (stdout, stderr)
        self.relays: list[LineRelay] = []

    def pipes(self, name: str) -> tuple[int, int, list[int]]:
        """``(stdout, stderr, write_ends)`` for a child; close ``write_ends`` once it runs."""
        label = f"{name.ljust(self.width)} | ".encode()
        write_ends = []
        for sink in self.sinks:
            read_end, write_end = os.pipe2(os.O_CLOEXEC)
            self.relays.append(LineRelay(read_end, label, sink, self.waiter))
            write_ends.append(write_end)
        return write_ends[0], write_ends[1], write_ends

    def drain(self) -> None:
        """At exit: copy whatever is still buffered, and end partial lines."""
        for relay in self.relays:
            if relay.fd >= 0:
                relay.read_available()
                relay.close()
        self.relays = [relay for relay in self.relays if relay.fd >= 0]
