"""What a rule's processes leave behind, and when that is the service or its ruins.

Three patterns of real daemons that a matcher alone gets wrong:

- a main process that died and left its workers (nginx's or gunicorn's master
  killed): the workers still match, but nothing serves. ``watchdog.ownership``
  tells them from a daemon's next stage, and the engine stops them and starts
  the service again;
- a command that keeps running under another name (an entrypoint script that
  ``exec``s its server): after ``CHILD_IS_SERVICE_AFTER`` seconds it is taken
  as the service;
- a starter that exits and leaves a daemon of another name (``setsid -f
  python3 worker.py``): the processes a start left behind, re-parented to the
  watchdog, are the service while they live, so a second copy is never
  started beside them.
"""

from __future__ import annotations

import os
import time

from watchdog.snapshot import Proc, Snapshot
from watchdog.state import RuleStatus

# A command of ours still running this long after its start, under a name its
# matcher does not know, is the service (Docker's "running" is no more than that).
CHILD_IS_SERVICE_AFTER = 10.0


def stand_ins(status: RuleStatus, snapshot: Snapshot, settled: bool) -> list[Proc]:
    """The processes that are the service when its matcher finds none.

    A command of ours that has run for ``CHILD_IS_SERVICE_AFTER`` seconds, and,
    once the settling after its starter's exit 0 is over (``settled``: a daemon
    still forking its way to its final process would have matched by then), the
    live processes its starts left behind.
    """
    now = time.time()
    found = []
    for pid in sorted(status.children):
        proc = snapshot.get(pid)
        if proc is not None and now - snapshot.start_time(proc) >= CHILD_IS_SERVICE_AFTER:
            found.append(proc)
    if not settled or status.children or status.last_exit != 0:
        return found  # a command that failed left ruins, not a daemon
    for pid, started in sorted(status.left_behind.items()):
        proc = snapshot.get(pid)
        if proc is not None and abs(snapshot.start_time(proc) - started) < 0.1:
            found.append(proc)
    return found


def forget_gone(status: RuleStatus, snapshot: Snapshot) -> None:
    for pid, started in list(status.left_behind.items()):
        proc = snapshot.get(pid)
        if proc is None or abs(snapshot.start_time(proc) - started) >= 0.1:
            del status.left_behind[pid]


def forget_claimed(status: RuleStatus, claimed: set[int]) -> None:
    """Drop the leftovers that a rule's matcher now names.

    Which start left an orphan behind is a guess from start times (``left_by``):
    two rules started within moments of each other cannot be told apart. A
    pidfile rule's daemon, orphaned before it writes its pidfile, may be given
    to a rule started just before it was born; once its own rule matches it,
    it is no stand-in for the other, which would otherwise keep the wrong
    service as its own and never start its own again.
    """
    for pid in claimed & status.left_behind.keys():
        del status.left_behind[pid]


def new_orphans(snapshot: Snapshot, known: set[int]) -> list[tuple[Proc, float]]:
    """Processes re-parented to the watchdog that no rule claims yet, with their start times.

    ``known``: every pid a rule matches, remembers, or that the engine started.
    """
    me = os.getpid()
    return [(proc, snapshot.start_time(proc)) for proc in snapshot.processes()
            if proc.ppid == me and proc.pid not in known]


def left_by(statuses: dict[str, RuleStatus], started: float) -> RuleStatus | None:
    """The rule whose last start came last before a process that started at ``started``."""
    before = [status for status in statuses.values()
              if status.starts and status.started_wall - 0.05 <= started]
    return max(before, key=lambda status: status.started_wall, default=None)


def descendants(snapshot: Snapshot) -> list[Proc]:
    """Every visible process below the watchdog (as PID 1: everything in the container)."""
    me = os.getpid()
    children: dict[int, list[Proc]] = {}
    for proc in snapshot.processes():
        children.setdefault(proc.ppid, []).append(proc)
    found: list[Proc] = []
    parents = [me]
    while parents:
        below = [child for pid in parents for child in children.get(pid, ())]
        found.extend(below)
        parents = [proc.pid for proc in below]
    return found
