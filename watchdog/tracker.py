"""Snapshots that cost what changed: each one re-reads only what can differ from the last.

Listing ``/proc`` is cheap; reading every ``/proc/PID/stat`` is what a
snapshot of a large table costs. Between two listings, a process can change in
what matchers see (its name, its state, its parent) only by being born, by
exec'ing, by dying, or by renaming itself. So a snapshot taken on an event
reads the stat of:

- pids not in the previous listing (born since);
- pids the kernel can have handed out again since (``pidwindow``): a pid in
  both listings is otherwise the process read before;
- processes that were still young when last read, younger than
  ``EXEC_SETTLE``: a starter between fork and exec, a daemon's stages, a
  script about to exec its service (the same reasoning the command-line cache
  uses for titles);
- processes a rule matched since the last full read (``follow``): their death
  can leave a zombie with the same pid, and their exec takes them out of the
  rule.

Everything else is taken from the previous snapshot. What no event shows (an
old process that exec's into a service's name, or renames itself) is seen by
the full read, which happens when the caller asks for it (the periodic check)
and at least once per ``backstop`` seconds whatever the caller asks.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

from watchdog.pidwindow import Cursor, Window, read_cursor
from watchdog.snapshot import (
    CLOCK_TICKS,
    EXEC_SETTLE,
    CommandLineCache,
    Proc,
    Snapshot,
    read_stat,
)


class Tracker:
    """Takes the engine's snapshots, carrying what each listing learnt to the next."""

    def __init__(self, backstop: float, proc_root: str = "/proc", self_pid: int | None = None) -> None:
        self.backstop = backstop
        self.proc_root = proc_root
        self.self_pid = os.getpid() if self_pid is None else self_pid
        self.cache = CommandLineCache(ttl=backstop)
        self.full_reads = 0  # how many snapshots read every stat (for tests and figures)
        self.last_reads = 0  # stat files the last snapshot read
        self._procs: dict[int, Proc] = {}
        self._cursor: Cursor | None = None
        self._last_full = -float("inf")
        self._young: set[int] = set()  # pids last read before EXEC_SETTLE
        self._followed: set[int] = set()  # pids matched since the last full read

    def follow(self, procs: Iterable[Proc]) -> None:
        """Re-read these (a rule matched them) at every snapshot until the next full read."""
        self._followed.update(proc.pid for proc in procs)

    def take(self, full: bool = False) -> Snapshot:
        """The process table now; ``full`` reads every process's stat."""
        started = time.monotonic()
        listed = {int(entry) for entry in os.listdir(self.proc_root) if entry.isdigit()}
        # Read after the listing, so that a pid handed out before the listing
        # lies in this window or an earlier one.
        cursor = read_cursor(self.proc_root)
        uptime = time.clock_gettime(time.CLOCK_BOOTTIME)
        previous = self._cursor
        self._cursor = cursor
        if full or started - self._last_full >= self.backstop or previous is None or cursor is None:
            self._last_full = started
            self._followed.clear()
            self._young.clear()
            procs: dict[int, Proc] = {}
            to_read: Iterable[int] = listed
            self.full_reads += 1
        else:
            known = self._procs.keys()
            procs = dict(self._procs)
            for pid in known - listed:
                del procs[pid]
            kept = listed & known
            to_read = (listed - known) | Window(previous, cursor).among(kept) \
                | (self._young & kept) | (self._followed & kept)
        reads = 0
        for pid in to_read:
            reads += 1
            proc = read_stat(self.proc_root, str(pid))
            if proc is None:
                procs.pop(pid, None)
                continue
            procs[pid] = proc
            if uptime - proc.start_ticks / CLOCK_TICKS < EXEC_SETTLE:
                self._young.add(pid)
            else:
                self._young.discard(pid)
        self.last_reads = reads
        self._young.intersection_update(procs)
        self._followed.intersection_update(procs)
        self._procs = procs
        if self._last_full == started:
            self.cache.keep_only(procs)
        # Never changed after this: the next snapshot starts from a copy.
        return Snapshot(procs, self.self_pid, self.proc_root, self.cache)
