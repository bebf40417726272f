"""Snapshots that cost what changed: each one re-reads only what can differ from the last.

Reading every ``/proc/PID/stat`` is what a snapshot of a large table costs,
and even listing ``/proc`` costs about a microsecond per process. Between two
snapshots a process changes what matchers see of it (name, state, parent) only
by being born, exec'ing, dying or renaming itself. So a snapshot taken on an
event reads the stat of:

- every pid the kernel handed out since the previous snapshot (``pidwindow``):
  the births, and pids handed out again; and, among pids not known yet, those
  handed out within the last ``EXEC_SETTLE`` seconds, for a fork still in
  progress (not yet in /proc) at an earlier look;
- processes that were still young when last read: a starter between fork and
  exec, a daemon's stages, a script about to exec its service (the same
  reasoning the command-line cache uses for titles);
- processes a rule matched since the last full read (``follow``): their death
  can leave a zombie with the same pid, and their exec takes them out of the
  rule.

The young and the followed are read first, the cursor after them: a death
seen in a snapshot then comes before its cursor reading, and so does every
fork the dead process made, so the snapshot holds the child a daemon handed
over to (the full read, when a listed process was gone by the time it was
read, reads the window since its start once it is done, for the same reason). The
rest is carried over from the previous snapshot, and ``/proc`` is listed only
when the window is too wide to read pid by pid. A carried process gives
every matcher the answer it gave at its last read, unless the matcher reads
something live (``get`` reads the pid again for that reason): had it matched
then, it would be followed. What no event shows, an old process that exec's
into a service's name or renames itself, and the death of a process no rule
matched, is seen by the full read: when the caller asks for it (the check due
at the interval) and at least once per ``backstop`` seconds whatever it asks.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

from watchdog.pidwindow import Cursor, Window, read_cursor, read_pid_max
from watchdog.snapshot import (
    CLOCK_TICKS,
    EXEC_SETTLE,
    CommandLineCache,
    Proc,
    Snapshot,
    index_names,
    read_stat,
)

# Below this many pids a window is read pid by pid (a missing pid costs a failed
# open); above it and above half the table, listing /proc is cheaper.
WINDOW_READ_LIMIT = 64


class Tracker:
    """Takes the engine's snapshots, carrying what each one learnt to the next."""

    def __init__(self, backstop: float, proc_root: str = "/proc", self_pid: int | None = None,
                 scope: int | None = None) -> None:
        self.backstop = backstop
        self.scope = scope  # see Snapshot: the pid whose descendants alone are visible
        self.proc_root = proc_root
        self.self_pid = os.getpid() if self_pid is None else self_pid
        self.cache = CommandLineCache(ttl=backstop)
        self.full_reads = 0  # snapshots that read every stat
        self.listings = 0  # times /proc was listed
        self.last_reads = 0  # stat files the last snapshot read
        self._procs: dict[int, Proc] = {}
        self._names: dict[str, tuple[Proc, ...]] = {}
        self._readings: list[tuple[float, Cursor]] = []  # oldest first
        self._pid_max: int | None = None  # None: no cursor to go by, every snapshot is a full read
        self._last_full = -float("inf")
        self._young: set[int] = set()  # pids last read within EXEC_SETTLE of their start
        self._followed: set[int] = set()  # pids matched since the last full read

    def follow(self, procs: Iterable[Proc]) -> None:
        """Read these (a rule matched them) at every snapshot until the next full read."""
        # A third-party matcher may return records of its own: only pids can be followed.
        self._followed.update(pid for proc in procs if isinstance(pid := getattr(proc, "pid", None), int))

    def take(self, full: bool = False) -> Snapshot:
        """The process table now; ``full`` reads every process's stat."""
        now = time.monotonic()
        uptime = time.clock_gettime(time.CLOCK_BOOTTIME)
        if full or not self._procs or now - self._last_full >= self.backstop:
            return self._read_everything(now, uptime)
        procs, names = dict(self._procs), dict(self._names)  # the snapshots handed out stay as they are
        # What can have died or exec'd is read before the cursor: a death seen here
        # then comes before the cursor reading, and so does every fork the dead
        # process made (a daemon's last one), so its child is in the window.
        first = (self._young | self._followed) & procs.keys()
        self._read(first, procs, names, uptime)
        windows = self._windows(now, self._cursor())
        if windows is None or windows[0].everything:
            return self._read_everything(now, uptime)
        # Pids unknown here are looked for over the wide window (a fork still in
        # progress at the last look shows up later); a known pid is read again only
        # if it was handed out since the previous snapshot, when it was last read.
        wide, recent = windows
        size = wide.size()
        unknown = [pid for pid in wide.pids() if pid not in procs] \
            if size is not None and size <= max(WINDOW_READ_LIMIT, 2 * len(procs)) else None
        if unknown is not None and len(unknown) <= max(WINDOW_READ_LIMIT, len(procs) // 2):
            born = set(unknown) | recent.among(procs.keys())  # the usual event
        else:
            self.listings += 1
            listed = {int(entry) for entry in os.listdir(self.proc_root) if entry.isdigit()}
            for pid in procs.keys() - listed:
                unindex(names, procs.pop(pid))
            born = (listed - procs.keys()) | recent.among(procs.keys() & listed)
        born -= first
        self._read(born, procs, names, uptime)
        self.last_reads = len(first) + len(born)
        self._young.intersection_update(procs)
        self._followed.intersection_update(procs)
        self._procs, self._names = procs, names
        return Snapshot(procs, self.self_pid, self.proc_root, self.cache, names=names, fresh=first | born,
                        scope=self.scope)

    def _windows(self, now: float, cursor: Cursor | None) -> tuple[Window, Window] | None:
        """The pids handed out since the reading that starts the wide window, and since
        the previous reading; None: any pid."""
        if cursor is None:
            self._readings.clear()
            return None
        # The window starts at the latest reading at least EXEC_SETTLE old (or the
        # oldest there is): a pid handed out just before a reading may not be in
        # /proc yet when it is read, as the fork is still setting the process up.
        start = 0
        for index, (when, _) in enumerate(self._readings):
            if now - when >= EXEC_SETTLE:
                start = index
        del self._readings[:start]
        self._readings.append((now, cursor))
        if len(self._readings) < 2:
            return None
        return Window(self._readings[0][1], cursor), Window(self._readings[-2][1], cursor)

    def _cursor(self) -> Cursor | None:
        return read_cursor(self.proc_root, self._pid_max) if self._pid_max is not None else None

    def _read_everything(self, now: float, uptime: float) -> Snapshot:
        self._pid_max = read_pid_max(self.proc_root)
        self._windows(now, self._cursor())  # the start of the next windows
        self._last_full = now
        self.full_reads += 1
        self.listings += 1
        self._followed.clear()
        self._young.clear()
        procs: dict[int, Proc] = {}
        gone = self._read_new((int(entry) for entry in os.listdir(self.proc_root) if entry.isdigit()),
                              procs, uptime, listed=True)
        windows = self._windows(time.monotonic(), self._cursor())
        if gone:
            # A process found gone while the table was read may have forked first:
            # its child was born before the cursor was read again, so it is in the
            # window since the reading above, or (when that says nothing) listed now.
            size = windows[1].size() if windows is not None else None
            if size is not None and size <= max(WINDOW_READ_LIMIT, len(procs) // 2):
                born: Iterable[int] = windows[1].pids() if windows is not None else ()
            else:
                self.listings += 1
                born = (int(entry) for entry in os.listdir(self.proc_root) if entry.isdigit())
            self._read_new((pid for pid in born if pid not in procs), procs, uptime)
        names = index_names(procs)
        self.last_reads = len(procs)
        self._procs, self._names = procs, names
        self.cache.keep_only(procs)
        return Snapshot(procs, self.self_pid, self.proc_root, self.cache, names=names, scope=self.scope)

    def _read_new(self, pids: Iterable[int], procs: dict[int, Proc], uptime: float,
                  listed: bool = False) -> int:
        """Read these pids, none of them in ``procs`` yet, into it (no name index: built
        after); how many could not be read. ``listed``: they come from listing /proc,
        so none is a thread (see ``read_stat``)."""
        unread = 0
        for pid in pids:
            proc = read_stat(self.proc_root, str(pid), listed)
            if proc is None:
                unread += 1
                continue
            procs[pid] = proc
            if uptime - proc.start_ticks / CLOCK_TICKS < EXEC_SETTLE:
                self._young.add(pid)
        return unread

    def _read(self, pids: Iterable[int], procs: dict[int, Proc], names: dict[str, tuple[Proc, ...]],
              uptime: float) -> None:
        """Read these pids' stat into ``procs`` and ``names``; note which are young."""
        for pid in pids:
            proc = read_stat(self.proc_root, str(pid))
            old = procs.get(pid)
            if proc == old:
                pass
            elif proc is None:
                unindex(names, procs.pop(pid))  # old is not None here
            else:
                if old is not None:
                    unindex(names, old)
                procs[pid] = proc
                names[proc.name] = (*names.get(proc.name, ()), proc)
            if proc is not None and uptime - proc.start_ticks / CLOCK_TICKS < EXEC_SETTLE:
                self._young.add(pid)
            else:
                self._young.discard(pid)


def unindex(names: dict[str, tuple[Proc, ...]], proc: Proc) -> None:
    """Take ``proc`` out of the name index."""
    group = tuple(other for other in names.get(proc.name, ()) if other.pid != proc.pid)
    if group:
        names[proc.name] = group
    else:
        names.pop(proc.name, None)
