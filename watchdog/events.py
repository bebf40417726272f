"""The one place the watchdog blocks: signals, child exits and pidfds in one selector.

Signal handlers only record the signal number; ``set_wakeup_fd`` makes the
selector return when one arrives. A pidfd (Linux 5.3+) becomes readable when
its process exits, whether or not it is our child, so adopted daemons wake the
loop as quickly as our own children do.
"""

from __future__ import annotations

import errno
import os
import selectors
import signal
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from types import FrameType

from watchdog.logs import logger

# The longest one wait may take: the kernel counts a wait's milliseconds in an int
# (24.8 days). A later due time is reached by waiting again: nothing due means no check.
MAX_WAIT = 24 * 3600.0


def pidfd_supported() -> bool:
    if not hasattr(os, "pidfd_open"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return False
    return True


class Waiter:
    """Waits for the next signal, process exit or deadline."""

    def __init__(self, use_pidfd: bool = True) -> None:
        self.use_pidfd = use_pidfd and pidfd_supported()
        self._selector = selectors.DefaultSelector()
        # A pipe rather than a socket pair: the same wake-up, without importing socket
        # (milliseconds of every start) before the services start.
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._pending: list[int] = []
        self._pidfds: dict[int, int] = {}  # pid -> pidfd
        self._fd_limit_warned = False

    # --- signals --------------------------------------------------------------

    def _record(self, signum: int, frame: FrameType | None) -> None:
        self._pending.append(signum)

    @contextmanager
    def signals_caught(self, signals: Iterable[int]) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self._record) for sig in signals}
        old_fd = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        try:
            yield
        finally:
            signal.set_wakeup_fd(old_fd)
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def take_signals(self) -> list[int]:
        taken, self._pending = self._pending, []
        return taken

    def wake(self) -> None:
        """Make the current or next ``wait`` return at once; safe from any thread."""
        if self._wake_w < 0:  # closed at exit: the number may be another file's by now
            return
        try:
            os.write(self._wake_w, b"\0")
        except OSError:  # full (a wake-up is pending anyway) or closed meanwhile
            pass

    # --- pidfds ---------------------------------------------------------------

    def watch(self, pid: int) -> bool:
        """Wake the loop when ``pid`` exits. False if pidfds are off or the pid is gone."""
        if not self.use_pidfd or pid in self._pidfds:
            return pid in self._pidfds
        try:
            fd = os.pidfd_open(pid)
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE) and not self._fd_limit_warned:
                self._fd_limit_warned = True
                logger.warning("out of file descriptors for pidfds: some exits are seen at the interval")
            return False
        self._pidfds[pid] = fd
        self._selector.register(fd, selectors.EVENT_READ, pid)
        return True

    def unwatch(self, pid: int) -> None:
        fd = self._pidfds.pop(pid, None)
        if fd is not None:
            self._selector.unregister(fd)
            os.close(fd)

    # --- other file descriptors (service output) --------------------------------

    def add_reader(self, fd: int, on_readable: Callable[[], None]) -> None:
        self._selector.register(fd, selectors.EVENT_READ, on_readable)

    def remove_reader(self, fd: int) -> None:
        self._selector.unregister(fd)

    def add_writer(self, fd: int, on_writable: Callable[[], None]) -> None:
        """Like ``add_reader``, for writing. One way at a time; ``remove_reader`` ends either."""
        self._selector.register(fd, selectors.EVENT_WRITE, on_writable)

    def send_signal(self, pid: int, sig: int) -> bool:
        """Signal ``pid`` through its pidfd when we hold one, so a reused pid is never hit."""
        try:
            fd = self._pidfds.get(pid)
            if fd is not None:
                signal.pidfd_send_signal(fd, sig)
            else:
                os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    # --- waiting --------------------------------------------------------------

    def wait(self, timeout: float | None) -> set[int]:
        """Block until a signal, a watched exit or ``timeout``; return the pids that exited."""
        if self._pending:
            timeout = 0
        exited = set()
        for key, _ in self._selector.select(None if timeout is None else min(max(0.0, timeout), MAX_WAIT)):
            if key.data is None:
                try:
                    while os.read(self._wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
            elif callable(key.data):
                key.data()
            else:
                exited.add(key.data)
        for pid in exited:
            self.unwatch(pid)
        return exited

    def close(self) -> None:
        for pid in list(self._pidfds):
            self.unwatch(pid)
        self._selector.close()
        wake_r, wake_w = self._wake_r, self._wake_w
        self._wake_r = self._wake_w = -1
        os.close(wake_r)
        os.close(wake_w)
