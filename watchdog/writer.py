"""Writing to the watchdog's stdout and stderr without ever blocking PID 1.

A reader that stops (a stuck log driver, a terminal paused with Ctrl-S, a
``watchdog | less`` left alone) fills the pipe after about 64 KiB; a plain
write would then wait in ``pipe_write`` with every restart and the status
file held up behind it. Here a write goes out at once if the destination
takes it, else it waits in a queue of at most ``MAX_PENDING`` bytes that the
loop sends when the destination can take more. A full queue gives up its
oldest whole lines (Docker's ``mode=non-blocking``) and counts them; once the
queue is empty again, one line says how many were lost.

The descriptor is made non-blocking without touching the one we inherited:
O_NONBLOCK belongs to the open file, which our parent (and a shell's other
commands) share. A pipe, FIFO or terminal is opened again through
``/proc/self/fd`` (a file of our own on the same pipe); a socket is sent to
with ``MSG_DONTWAIT``; a regular file or ``/dev/null`` never makes a writer
wait for a reader, so it is written as it is.
"""

from __future__ import annotations

import errno
import functools
import os
import select
import stat
import threading
import time
from collections import deque
from collections.abc import Callable

# Docker's default max-buffer-size for its non-blocking mode is 1 MB.
MAX_PENDING = 1024 * 1024

Register = Callable[[int, Callable[[], None]], None]


def nonblocking_target(fd: int) -> tuple[int, bool]:
    """``(fd to write, is_socket)``: a descriptor of our own that never blocks, where one is needed."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return fd, False
    if stat.S_ISSOCK(mode):
        return fd, True
    if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
        try:
            return os.open(f"/proc/self/fd/{fd}",
                           os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY | os.O_APPEND), False
        except OSError:
            # No /proc (or it refuses): the shared file then, the lesser evil
            # than a PID 1 that can hang on its own log.
            os.set_blocking(fd, False)
    return fd, False


class NonBlockingWriter:
    """One destination (our stdout or stderr): whole lines out, never a wait.

    ``write`` may be called from any thread (a log line from a worker thread);
    only the loop's thread registers with the selector (``attach``, ``pump``).
    """

    def __init__(self, fd: int, name: str, max_pending: int = MAX_PENDING) -> None:
        self.name = name
        self.fd, self.is_socket = nonblocking_target(fd)
        self.own_fd = self.fd != fd
        self.max_pending = max_pending
        self.pending: deque[bytes] = deque()
        self.pending_bytes = 0
        self.head_sent = 0  # bytes of pending[0] already written
        self.dropped_lines = 0
        self.dropped_bytes = 0
        self.broken = False  # the reader is gone for good (EPIPE): nothing more to send
        self.lock = threading.Lock()
        self.loop_thread: int | None = None
        self.register: Register | None = None
        self.unregister: Callable[[int], None] | None = None
        self.wake: Callable[[], None] | None = None
        self.watched = False

    # --- writing ----------------------------------------------------------------------

    def write(self, data: bytes | memoryview) -> None:
        """Send ``data`` (whole lines) now, or queue a copy; drop the oldest lines when too much waits."""
        if not data or self.broken:
            return
        with self.lock:
            view = memoryview(data)
            if not self.pending:
                while view and (sent := self._send(view)):
                    view = view[sent:]
                if not view or self.broken:
                    return
            data = bytes(view)
            self.pending.append(data)
            self.pending_bytes += len(data)
            self._trim()
        self._want_writable()

    def _send(self, data: bytes | memoryview) -> int:
        """Bytes written, 0 when the destination takes nothing now."""
        try:
            if self.is_socket:
                return _send_socket(self.fd, data)
            return os.write(self.fd, data)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as exc:
            if exc.errno in (errno.EPIPE, errno.EBADF, errno.EINVAL, errno.ENXIO):
                self.broken = True
                self.pending.clear()
                self.pending_bytes = 0
            return 0  # EIO, ENOSPC: what could not go is dropped like a stalled reader's

    def _trim(self) -> None:
        """Drop whole oldest entries (never the one half sent) until the queue fits."""
        while self.pending_bytes > self.max_pending and len(self.pending) > 1:
            index = 1 if self.head_sent else 0
            gone = self.pending[index]
            del self.pending[index]
            self.pending_bytes -= len(gone)
            self.dropped_bytes += len(gone)
            self.dropped_lines += gone.count(b"\n") or 1
        if self.pending_bytes > self.max_pending and len(self.pending) == 1 and not self.head_sent:
            # One entry larger than the whole queue: keep its last lines only.
            only = self.pending[0]
            keep = only[-self.max_pending:]
            cut = keep.find(b"\n") + 1
            keep = keep[cut:] if 0 < cut < len(keep) else keep
            self.dropped_lines += only[:len(only) - len(keep)].count(b"\n")
            self.dropped_bytes += len(only) - len(keep)
            self.pending[0] = keep
            self.pending_bytes = len(keep)

    def pump(self) -> None:
        """The destination can take more: send what waits; then say what was dropped."""
        with self.lock:
            while self.pending and not self.broken:
                head = self.pending[0]
                sent = self._send(memoryview(head)[self.head_sent:])
                if not sent:
                    break
                self.head_sent += sent
                if self.head_sent >= len(head):
                    self.pending.popleft()
                    self.pending_bytes -= len(head)
                    self.head_sent = 0
            if not self.pending and self.dropped_lines and not self.broken:
                note = self._drop_note()
                sent = self._send(note)
                if sent < len(note):
                    self.pending.append(note[sent:])
                    self.pending_bytes += len(note) - sent
                    self.head_sent = 0
            idle = not self.pending or self.broken
        if idle:
            self._stop_watching()

    def _drop_note(self) -> bytes:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        note = (f"{stamp}Z watchdog: warning: {self.dropped_lines} lines ({self.dropped_bytes} bytes) "
                f"for {self.name} were dropped: its reader did not keep up\n").encode()
        self.dropped_lines = self.dropped_bytes = 0
        return note

    # --- the loop ------------------------------------------------------------------------

    def attach(self, register: Register, unregister: Callable[[int], None],
               wake: Callable[[], None]) -> None:
        """From now on the loop (this thread) sends what waits when the destination is writable."""
        self.register, self.unregister, self.wake = register, unregister, wake
        self.loop_thread = threading.get_ident()
        self._want_writable()

    def detach(self) -> None:
        self._stop_watching()
        self.register = self.unregister = self.wake = None
        self.loop_thread = None

    def _want_writable(self) -> None:
        if not self.pending or self.register is None:
            return
        if threading.get_ident() != self.loop_thread:
            if self.wake is not None:
                self.wake()  # the loop's next turn calls ``poll``
            return
        if not self.watched:
            try:
                self.register(self.fd, self.pump)
                self.watched = True
            except (OSError, ValueError, KeyError):
                pass  # a regular file cannot be watched, and never needs to be

    def poll(self) -> None:
        """On the loop after a wake-up: what other threads queued gets watched for."""
        if self.pending and not self.watched:
            self._want_writable()

    def _stop_watching(self) -> None:
        if self.watched and self.unregister is not None and threading.get_ident() == self.loop_thread:
            self.watched = False
            try:
                self.unregister(self.fd)
            except (OSError, ValueError, KeyError):
                pass

    def close(self) -> None:
        """Give back the descriptor opened for it (the inherited one stays open)."""
        self.detach()
        if self.own_fd and self.fd >= 0:
            os.close(self.fd)
        self.fd = -1
        self.broken = True

    def flush(self, timeout: float) -> None:
        """At exit: wait up to ``timeout`` for what is queued to go out, then give it up."""
        deadline = time.monotonic() + timeout
        while self.pending and not self.broken:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                select.select([], [self.fd], [], left)
            except (OSError, ValueError):
                break
            with self.lock:
                if not self.pending:
                    break
                head = self.pending[0]
                sent = self._send(memoryview(head)[self.head_sent:])
                self.head_sent += sent
                if self.head_sent >= len(head):
                    self.pending.popleft()
                    self.pending_bytes -= len(head)
                    self.head_sent = 0


def _send_socket(fd: int, data: bytes | memoryview) -> int:
    import socket  # here: only an output that is a socket needs it, and every start would pay

    sock = socket.socket(fileno=fd)
    try:
        return sock.send(data, socket.MSG_DONTWAIT)
    finally:
        sock.detach()  # the descriptor stays ours; the object was only a way to call send


class Outputs:
    """The watchdog's own stdout and stderr, each a NonBlockingWriter."""

    def __init__(self) -> None:
        self.stdout = NonBlockingWriter(1, "stdout")
        self.stderr = NonBlockingWriter(2, "stderr")

    def both(self) -> tuple[NonBlockingWriter, NonBlockingWriter]:
        return self.stdout, self.stderr

    def flush(self, timeout: float) -> None:
        for writer in self.both():
            writer.flush(timeout / 2)


@functools.cache
def outputs() -> Outputs:
    """The process's one pair, made on first use: fd 1 and 2 are the process's, not a run's."""
    return Outputs()
