"""``--prefix``: each line a service writes, relayed with its rule's name in front.

Services write into pipes; the engine's one selector wakes when a pipe has
data, and only whole lines are written out, so two services' lines never
interleave mid-line. What is left without a trailing newline is written when
the pipe closes (every writer gone, the service and any daemon it forked) or
when the watchdog stops.

A line longer than ``MAX_LINE`` goes out in pieces of that size, each with its
prefix: a service that writes hundreds of megabytes without a newline (or a
progress bar redrawn with carriage returns) is relayed as it comes, in linear
time, and never held whole in memory.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import BinaryIO

from watchdog.events import Waiter

CHUNK = 65536
MAX_LINE = 65536
# Reads per wake-up: a service writing faster than the relay copies must not keep
# PID 1 from its other work; the selector wakes again while the pipe holds data.
READS_PER_WAKE = 16
# At exit, what the pipes still hold: the services are gone, but a stray writer
# that is not must not keep the watchdog from exiting.
DRAIN_READS = 256


class LineRelay:
    """One pipe's reading end, copied line by line to ``sink`` behind ``label``."""

    def __init__(self, fd: int, label: bytes, sink: BinaryIO, waiter: Waiter,
                 on_close: Callable[[LineRelay], None] | None = None) -> None:
        self.fd = fd
        self.label = label
        self.sink = sink
        self.waiter = waiter
        self.on_close = on_close
        self.partial = bytearray()  # never MAX_LINE bytes or more between reads
        os.set_blocking(fd, False)
        waiter.add_reader(fd, self.read_available)

    def read_available(self, reads: int = READS_PER_WAKE) -> None:
        """Copy up to ``reads`` chunks of what the pipe holds now; close on end of file."""
        for _ in range(reads):
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
        *complete, rest = data.split(b"\n")
        out: list[bytes] = []
        for line in complete:
            if self.partial:
                self.partial += line
                line = bytes(self.partial)
                self.partial.clear()
            for start in range(0, max(len(line), 1), MAX_LINE):
                out.append(self.label + line[start : start + MAX_LINE] + b"\n")
        self.partial += rest
        while len(self.partial) >= MAX_LINE:
            out.append(self.label + self.partial[:MAX_LINE] + b"\n")
            del self.partial[:MAX_LINE]
        if out:
            self.sink.write(b"".join(out))
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
            self.partial.clear()
        if self.on_close is not None:
            self.on_close(self)


class Prefixer:
    """Pipes for each start of a command, and the relays that read them."""

    def __init__(self, waiter: Waiter, names: list[str], stdout: BinaryIO, stderr: BinaryIO) -> None:
        self.waiter = waiter
        self.width = max((len(name) for name in names), default=0)
        self.sinks = (stdout, stderr)
        self.relays: list[LineRelay] = []  # open ones only: a closed relay drops out

    def pipes(self, name: str) -> tuple[int, int, list[int]]:
        """``(stdout, stderr, write_ends)`` for a child; close ``write_ends`` once it runs.

        Raises OSError (out of file descriptors) with nothing left open.
        """
        label = f"{name.ljust(self.width)} | ".encode()
        write_ends: list[int] = []
        relays: list[LineRelay] = []
        try:
            for sink in self.sinks:
                read_end, write_end = os.pipe2(os.O_CLOEXEC)
                write_ends.append(write_end)
                try:
                    relays.append(LineRelay(read_end, label, sink, self.waiter, self._forget))
                except BaseException:
                    os.close(read_end)
                    raise
        except BaseException:
            for fd in write_ends:
                os.close(fd)
            for relay in relays:
                relay.close()
            raise
        self.relays.extend(relays)
        return write_ends[0], write_ends[1], write_ends

    def _forget(self, relay: LineRelay) -> None:
        if relay in self.relays:
            self.relays.remove(relay)

    def drain(self) -> None:
        """At exit: copy whatever is still buffered, and end partial lines."""
        for relay in list(self.relays):
            relay.read_available(DRAIN_READS)
            relay.close()
