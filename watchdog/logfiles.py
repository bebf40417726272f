"""``--log-file``: services' lines written to files by a thread of their own, rotated by size.

The loop only queues (``write``): a slow or full disk never holds it up.
When ``MAX_QUEUED`` bytes wait, the loop stops reading the pipes of the rules
that write files (``busy``) until half of it is written, so a service that
writes faster than its disk takes is slowed down, as s6-log and svlogd slow
it, and its file loses nothing; the loop goes on with everything else. A
full disk (or any other write error) drops lines and counts them: one
warning says so, writing resumes by itself with the next lines that fit, and
once it does one line says how many were lost.

Rotation follows supervisord's ``stdout_logfile_maxbytes`` and ``_backups``:
``PATH`` is renamed ``PATH.1`` (``PATH.1`` to ``PATH.2``, and so on up to
``PATH.N``, the oldest dropped); with 0 backups ``PATH`` is emptied instead;
a limit of 0 never rotates. Unlike supervisord, rotation comes before the
write that would pass the limit, so a file holds at most the limit (a single
line longer than it excepted) and ends with a whole line.

The directory is made 0750, the files 0640, opened with ``O_APPEND`` (so
logrotate's ``copytruncate`` works) and never through a symlink. ``reopen``
closes them all; the next line opens each again (logrotate's ``create``
followed by ``watchdogctl reload``).
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from watchdog.logs import logger
from watchdog.output import OutputSettings

if TYPE_CHECKING:
    from queue import SimpleQueue

MAX_QUEUED = 8 * 1024 * 1024
# Beyond this the queue drops, whatever the loop does: a bound that holds even
# for a caller that ignores ``busy``.
HARD_LIMIT = 4 * MAX_QUEUED
_REOPEN = object()
_STOP = object()


class OpenFile:
    def __init__(self, fd: int, size: int, regular: bool) -> None:
        self.fd = fd
        self.size = size
        self.regular = regular


class LogFiles:
    """Every log file of the run, written by one thread."""

    def __init__(self, max_queued: int = MAX_QUEUED) -> None:
        self.max_queued = max_queued
        self.wake: Callable[[], None] | None = None  # the loop's, to resume reading when there is room
        self.want_room = False
        self.queue: SimpleQueue[object] | None = None  # at the first line: most runs write no file
        self.queued = 0
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.files: dict[str, OpenFile] = {}  # the thread's alone
        self.dropped: dict[str, int] = {}  # path -> lines lost since the last warning
        self.failing: dict[str, str] = {}  # path -> why its lines are being dropped
        self.overflowed: set[str] = set()  # paths whose lines the queue had no room for

    # --- the loop's side -----------------------------------------------------------------

    def write(self, path: str, data: bytes, settings: OutputSettings) -> None:
        """Queue whole lines for ``path``; drop and count them when too much waits."""
        with self.lock:
            if self.queued + len(data) > HARD_LIMIT:
                first = path not in self.overflowed
                self.overflowed.add(path)
                self.dropped[path] = self.dropped.get(path, 0) + data.count(b"\n")
            else:
                first = False
                self.queued += len(data)
                self._queue().put((path, data, settings))
        if first:
            logger.warning("the log file %s does not keep up: dropping lines until it does", path,
                           extra={"event": "log-dropped"})
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, args=(self._queue(),), name="watchdog-log-files",
                                           daemon=True)
            self.thread.start()

    def busy(self) -> bool:
        """Enough waits to be written: stop reading the pipes that feed files until ``wake``."""
        with self.lock:
            if self.queued < self.max_queued:
                return False
            self.want_room = True
            return True

    def reopen(self) -> None:
        """Close every file; each is opened again (created if gone) at its next line."""
        if self.thread is not None:
            self._queue().put(_REOPEN)

    def close(self, timeout: float = 2.0) -> None:
        """Write what is queued (for at most ``timeout``), then close the files."""
        if self.thread is not None:
            self._queue().put(_STOP)
            self.thread.join(timeout)
            self.thread = None

    # --- the thread --------------------------------------------------------------------------

    def _queue(self) -> SimpleQueue[object]:
        if self.queue is None:
            import queue  # here: see __init__

            self.queue = queue.SimpleQueue()
        return self.queue

    def _run(self, items: SimpleQueue[object]) -> None:
        while True:
            item = items.get()
            if item is _STOP:
                self._close_all()
                return
            if item is _REOPEN:
                self._close_all()
                continue
            assert isinstance(item, tuple)
            path, data, settings = item
            with self.lock:
                self.queued -= len(data)
                room = self.want_room and self.queued < self.max_queued // 2
                if room:
                    self.want_room = False
            if room and self.wake is not None:
                self.wake()
            try:
                self._write(path, data, settings)
            except Exception as exc:  # a bug here must not end the thread, and with it every file
                logger.error("writing %s: %s: %s", path, type(exc).__name__, exc,
                             extra={"event": "log-error"})

    def _close_all(self) -> None:
        for open_file in self.files.values():
            try:
                os.close(open_file.fd)
            except OSError:
                pass
        self.files.clear()

    def _open(self, path: str, owner: tuple[int, int] | None, truncate: bool = False) -> OpenFile:
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            os.makedirs(directory, mode=0o750, exist_ok=True)
            if owner is not None:  # made for the rule's user; a directory that was there is left as it is
                os.chown(directory, *owner)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
        try:  # a file made now is the rule's user's; one that was there keeps its owner
            fd = os.open(path, flags | os.O_EXCL, 0o640)
            if owner is not None:
                os.fchown(fd, *owner)
        except FileExistsError:
            fd = os.open(path, flags | (os.O_TRUNC if truncate else 0), 0o640)
        info = os.fstat(fd)
        if not (stat.S_ISREG(info.st_mode) or stat.S_ISCHR(info.st_mode)):
            os.close(fd)
            raise OSError(errno.EINVAL, "not a regular file")
        return OpenFile(fd, info.st_size, stat.S_ISREG(info.st_mode))

    def _write(self, path: str, data: bytes, settings: OutputSettings) -> None:
        open_file = self.files.get(path)
        try:
            if open_file is None:
                open_file = self.files[path] = self._open(path, settings.owner)
            limit = settings.max_bytes if open_file.regular else 0
            while data:
                if limit and open_file.size and open_file.size + len(data) > limit:
                    fits = data.rfind(b"\n", 0, limit - open_file.size) + 1
                    if fits:
                        self._put(open_file, data[:fits])
                        data = data[fits:]
                    open_file = self.files[path] = self._rotate(path, open_file, settings)
                    continue
                piece = data
                if limit and len(data) > limit:  # an empty file: as many lines as fit, else one line
                    end = data.rfind(b"\n", 0, limit) + 1 or data.find(b"\n") + 1 or len(data)
                    piece = data[:end]
                self._put(open_file, piece)
                data = data[len(piece):]
        except OSError as exc:
            self._failed(path, data, exc)
            return
        self._recovered(path)

    def _put(self, open_file: OpenFile, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(open_file.fd, view)
            open_file.size += written
            view = view[written:]

    def _rotate(self, path: str, open_file: OpenFile, settings: OutputSettings) -> OpenFile:
        os.close(open_file.fd)
        backups = settings.backups
        if backups <= 0:
            return self._open(path, settings.owner, truncate=True)
        for index in range(backups - 1, 0, -1):
            older = f"{path}.{index}"
            if os.path.lexists(older):
                os.replace(older, f"{path}.{index + 1}")
        os.replace(path, f"{path}.1")
        return self._open(path, settings.owner)

    def _failed(self, path: str, data: bytes, exc: OSError) -> None:
        stale = self.files.pop(path, None)
        if stale is not None:
            try:
                os.close(stale.fd)
            except OSError:
                pass
        self.dropped[path] = self.dropped.get(path, 0) + max(1, data.count(b"\n"))
        if path not in self.failing:
            self.failing[path] = exc.strerror or str(exc)
            logger.warning("cannot write the log file %s: %s; dropping its lines until it can",
                           path, self.failing[path], extra={"event": "log-dropped"})

    def _recovered(self, path: str) -> None:
        with self.lock:
            overflowed = path in self.overflowed
            self.overflowed.discard(path)
            lost = self.dropped.pop(path, 0)
        if path in self.failing or overflowed:
            self.failing.pop(path, None)
            logger.warning("writing the log file %s again; %d lines were dropped", path, lost,
                           extra={"event": "log-resumed"})
