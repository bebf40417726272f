"""Which processes are a rule's: facts read from a snapshot, for the engine to act on.

A rule's processes are what it started and their descendants, plus what its
matcher names within the scope, if trusted:

- **Scope.** As PID 1 of a namespace the matcher looks at the whole
  namespace: everything in a container is the watchdog's to keep. Elsewhere
  it looks at the watchdog's own descendants by default: the watchdog is a
  child subreaper, so every orphan of what it started is re-parented to it
  and "what we started and its descendants" stays knowable without names,
  while a stranger's ``sleep`` on the host is never taken for (and stopped
  as) a service. ``--scope host`` looks at the whole table, for a watchdog
  that keeps alive daemons it did not start (a cron'd ``--once``, or
  ``--check``, which start nothing of their own and look at the host unless
  told otherwise).
- **Trust.** A name is chosen by whoever runs the program. A process matched
  by name that runs as another uid than the rule's (``Rule.uid``) is not the
  rule's unless it descends from what the rule started (its session, its
  process group or its tree: a daemon that drops privileges stays a
  descendant). A matcher whose match is evidence in itself (a trusted
  pidfile) says so, ``Matcher.proves_ownership``.
- **Hand-over and orphaned workers.** When a rule's main process dies and
  its children live on, they are either the daemon's next stage or the
  workers of a dead master, and timing says nothing about which. A next
  stage is visible: it leads its own session or process group (``setsid``),
  or the parent that forked it exited 0. Workers share the master's process
  group; when a master dies otherwise, what it leaves is a service that
  nothing serves, however early it died.
"""

from __future__ import annotations

import os
from collections.abc import Collection

from watchdog import processes
from watchdog.logs import logger
from watchdog.rules import Rule
from watchdog.snapshot import Proc, Snapshot, process_uids

DESCENDANTS, HOST = "descendants", "host"
SCOPES = (DESCENDANTS, HOST)
# Exit statuses of reaped processes kept for the hand-over question: the latest ones.
KEPT_EXITS = 1024


def scope_root(choice: str | None, starts_nothing_of_its_own: bool) -> int | None:
    """The pid whose descendants matchers see, or None for the whole table.

    ``starts_nothing_of_its_own``: ``--check`` and ``--once``, whose services
    outlive them and belong to the host, default to ``host``.
    """
    if os.getpid() == 1:
        return None  # the namespace is the watchdog's
    if choice is None:
        choice = HOST if starts_nothing_of_its_own else DESCENDANTS
    return None if choice == HOST else os.getpid()


class Ownership:
    """What the engine learns about its processes beyond one snapshot: exit statuses of
    the orphans it reaps, the process groups each rule's commands lead, and which
    matched processes each rule was found entitled to."""

    def __init__(self) -> None:
        self.exits: dict[int, int] = {}  # pid -> exit status, in the order reaped
        self.groups: dict[str, set[int]] = {}  # rule name -> process groups its starts led
        self._last: dict[str, dict[int, Proc]] = {}  # rule name -> its processes at the last check
        self._trusted: dict[str, dict[int, int]] = {}  # rule name -> pid -> start ticks
        self._refused: dict[str, dict[int, int]] = {}  # rule name -> pid -> checks refused in a row

    # --- what the engine tells us -----------------------------------------------

    def started(self, rule: Rule, pid: int) -> None:
        """A command of ``rule`` was started as ``pid``: a session and group of its own."""
        self.groups.setdefault(rule.name, set()).add(pid)

    def reaped(self, pid: int, returncode: int) -> None:
        self.exits[pid] = returncode
        if len(self.exits) > KEPT_EXITS:
            del self.exits[next(iter(self.exits))]

    def seen(self, rule: Rule, procs: list[Proc]) -> None:
        """``rule``'s processes at this check, for the next one to compare with."""
        self._last[rule.name] = {proc.pid: proc for proc in procs}

    def forget(self, rule: Rule) -> None:
        for table in (self.groups, self._trusted, self._refused, self._last):
            table.pop(rule.name, None)

    # --- facts --------------------------------------------------------------------

    def live_groups(self, rule: Rule) -> set[int]:
        """The process groups ``rule``'s starts led that still have a member.

        Its commands start in a session of their own, so whatever they forked
        without ``setsid`` (a shell's ``&`` job) is in one of these, even once
        the command itself is gone.
        """
        groups = self.groups.get(rule.name, set())
        groups.intersection_update({pgid for pgid in groups if processes.signal_group(pgid, 0)})
        return set(groups)

    def trusted(self, rule: Rule, procs: list[Proc], roots: Collection[int],
                snapshot: Snapshot) -> list[Proc]:
        """The matched ``procs`` that may be ``rule``'s: of its uid, or descended from
        ``roots`` (what it started or already owns) or from another of ``procs`` that
        may be (apache2's workers of www-data under its master of root's, seen
        together for the first time), or in a process group or session that one of
        these or of its commands leads (nobody joins another's session but by being
        forked in it: nginx's workers, re-parented when their master died before
        any check saw them)."""
        before = self._trusted.get(rule.name, {})
        leaders = self.groups.get(rule.name, set()) | before.keys() | set(roots)
        kept: list[Proc] = []
        doubtful: list[tuple[Proc, int | None]] = []
        for proc in procs:
            if before.get(proc.pid) == proc.start_ticks or proc.sid in leaders or proc.pgid in leaders \
                    or snapshot.descends_from(proc, roots):
                kept.append(proc)
                continue
            uids = process_uids(snapshot.proc_root, proc.pid)
            if uids is not None and uids[0] == rule.uid:
                kept.append(proc)
            else:
                doubtful.append((proc, uids[0] if uids else None))
        below = {proc.pid for proc in kept}
        refused = []
        for proc, uid in doubtful:
            if snapshot.descends_from(proc, below):
                kept.append(proc)
            else:
                refused.append((proc, uid))
        self._trusted[rule.name] = {proc.pid: proc.start_ticks for proc in kept}
        # An orphan re-parented to the watchdog is reported at its second refusal: a
        # daemon of another uid that a start left behind is known as the rule's only
        # once the check after its birth has seen it (watchdog/leftovers.py).
        before_refused = self._refused.get(rule.name, {})
        now_refused = self._refused[rule.name] = {
            proc.pid: before_refused.get(proc.pid, 0) + 1 for proc, _ in refused}
        me = os.getpid()
        for proc, uid in refused:
            if now_refused[proc.pid] == (2 if proc.ppid == me else 1):
                logger.warning(
                    "pid %d is named %r but runs as uid %s, not the rule's uid %d, and was not "
                    "started by it: not taken as the service", proc.pid, proc.name,
                    "unknown" if uid is None else uid, rule.uid,
                    extra={"rule": rule.name, "event": "untrusted"})
        return kept

    def orphaned_workers(self, rule: Rule, procs: list[Proc],
                         snapshot: Snapshot) -> tuple[int, list[Proc]]:
        """``(dead main pid, its workers)`` when a main process died and left only workers.

        A main process is a top process of the rule at the last check (``seen``)
        that is gone now. Every process of the rule now must have been its child
        then, or, born since (a master killed as soon as it forked), be in the
        process group or session it led (it may have called ``setsid`` after
        that check); none may lead a tree of its own (a new master with
        workers), lead its own process group or session (a daemon's next stage),
        and the dead one must not have exited 0 (a parent that exits 0 after
        forking has handed over). When its status is not ours to know (not
        reaped here: a daemon of the host's), a single survivor is taken for a
        successor, several for workers.
        """
        before = self._last.get(rule.name, {})
        if not procs or not before:
            return 0, []
        dead_tops = {pid for pid, proc in before.items()
                     if proc.ppid not in before and snapshot.get(pid) is None}
        if not dead_tops:
            return 0, []
        now = {proc.pid for proc in procs}
        for proc in procs:
            was = before.get(proc.pid)
            # A group or session id is its leader's pid, never handed out again while
            # the group lives: a process in one named after a dead top is its.
            if (was.ppid not in dead_tops) if was is not None else \
                    (proc.pgid not in dead_tops and proc.sid not in dead_tops):
                return 0, []
            if proc.ppid in now or any(other.ppid == proc.pid for other in procs):
                return 0, []
            if proc.pgid == proc.pid or proc.sid == proc.pid:
                return 0, []
        statuses = [self.exits.get(pid) for pid in dead_tops]
        if 0 in statuses or (None in statuses and len(procs) == 1):
            return 0, []
        return min(dead_tops), procs

    def exit_of(self, pid: int) -> int | None:
        """The status of a process this watchdog reaped, if it did."""
        return self.exits.get(pid)

