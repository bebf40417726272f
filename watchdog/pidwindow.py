"""Which pids the kernel can have handed out between two listings of the process table.

A pid seen in two listings names the same process unless it was freed and
handed out again in between. The kernel hands pids out cyclically, from just
after the last one it gave (``/proc/loadavg``'s last field) up to ``pid_max``
and round again from ``RESERVED_PIDS``, skipping pids in use. So every pid
handed out since a first reading lies between the two readings' last pids,
as long as the cursor cannot have gone a whole lap: a lap takes at least
``pid_max - RESERVED_PIDS`` steps, of which at most the tasks alive at the
first reading are skipped ones, and every other step is a fork. The fork
count (``processes`` in ``/proc/stat``) is the whole machine's, never less
than this namespace's, so the bound errs only towards "a lap is possible",
which makes the caller read everything.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Set

from watchdog.snapshot import read_proc_file

RESERVED_PIDS = 300  # where the kernel's allocation starts again after a wrap
LAP_MARGIN = 1024  # forks between the two reads of one cursor, and other slack


class Cursor:
    """Where the kernel's pid allocation stood at one instant."""

    __slots__ = ("last_pid", "forks", "tasks", "pid_max")  # one per snapshot

    def __init__(self, last_pid: int, forks: int, tasks: int, pid_max: int) -> None:
        self.last_pid = last_pid
        self.forks = forks  # forks since boot, whole machine (threads included: they take pids too)
        self.tasks = tasks  # tasks alive, whole machine
        self.pid_max = pid_max


def read_pid_max(proc_root: str = "/proc") -> int | None:
    """The kernel's pid_max; None when it cannot be read or this /proc is not ours.

    ``/proc/loadavg`` reports the reader's pid namespace, so its cursor says
    nothing about a /proc mounted for another one. Both can change only by
    an administrator's hand: the caller asks again at each full read.
    """
    try:
        if os.readlink(f"{proc_root}/self") != str(os.getpid()):
            return None
    except OSError:
        return None
    raw = read_proc_file(f"{proc_root}/sys/kernel/pid_max")
    return int(raw) if raw is not None and raw.strip().isdigit() else None


def read_cursor(proc_root: str = "/proc", pid_max: int | None = None) -> Cursor | None:
    """The allocation cursor now; None when it cannot be read or is not this /proc's.

    ``pid_max`` is ``read_pid_max(proc_root)``, read here when not given.
    """
    if pid_max is None and (pid_max := read_pid_max(proc_root)) is None:
        return None
    # The fork count first: a fork between the two reads then moves the last pid
    # (and so the window) without being counted, never the other way round.
    stat = read_proc_file(f"{proc_root}/stat", whole=True)
    loadavg = read_proc_file(f"{proc_root}/loadavg")
    if loadavg is None or stat is None:
        return None
    try:
        fields = loadavg.split()
        tasks = int(fields[3].partition(b"/")[2])
        at = stat.index(b"\nprocesses ") + len(b"\nprocesses ")
        forks = int(stat[at : stat.index(b"\n", at)])
        return Cursor(int(fields[4]), forks, tasks, pid_max)
    except (IndexError, ValueError):
        return None


class Window:
    """The pids that can have been handed out from one cursor reading to a later one."""

    def __init__(self, before: Cursor, after: Cursor) -> None:
        lap = before.pid_max - RESERVED_PIDS
        steps = after.forks - before.forks
        self.everything = (after.pid_max != before.pid_max or steps < 0
                           or steps + before.tasks + LAP_MARGIN >= lap)
        self.low, self.high = before.last_pid, after.last_pid  # the window is (low, high]
        self.pid_max = before.pid_max

    def __contains__(self, pid: object) -> bool:
        if self.everything:
            return True
        if not isinstance(pid, int):
            return False
        if self.low <= self.high:
            return self.low < pid <= self.high
        return pid > self.low or pid <= self.high  # wrapped

    def size(self) -> int | None:
        """How many pids the window spans; None when it spans every pid."""
        if self.everything:
            return None
        if self.low <= self.high:
            return self.high - self.low
        return self.pid_max - 1 - self.low + self.high

    def pids(self) -> Iterator[int]:
        """Every pid in the window (give it a bounded one: see ``size``)."""
        if self.low <= self.high:
            yield from range(self.low + 1, self.high + 1)
        else:
            yield from range(self.low + 1, self.pid_max)
            yield from range(1, self.high + 1)

    def among(self, pids: Set[int]) -> set[int]:
        """The members of ``pids`` that can have been handed out again."""
        if self.everything:
            return set(pids)
        if self.low <= self.high and self.high - self.low <= len(pids):
            return set(range(self.low + 1, self.high + 1)).intersection(pids)
        return {pid for pid in pids if pid in self}
