"""The loop: snapshot -> match -> act, woken by signals, exits and due times.

The engine owns processes (starting, reaping, signalling) and rule states; it
knows no matcher or action by name. Plugins decide what matches
(``watchdog_match``) and what to do about it (``watchdog_rule_missing`` and
the other event hooks), using the small interface below: ``start``,
``call_at``, ``give_up``, ``describe``.
"""

from __future__ import annotations

import heapq
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from watchdog import processes
from watchdog.events import Waiter
from watchdog.logs import logger
from watchdog.output import Prefixer
from watchdog.rules import Rule
from watchdog.snapshot import Proc, Snapshot
from watchdog.tracker import Tracker

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
FORWARDED_SIGNALS = (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH)

# Exit statuses of a watchdog run (2, usage errors, comes from the command line).
EXIT_OK = 0
EXIT_NOT_RUNNING = 1
EXIT_GAVE_UP = 3
EXIT_KILLED = 4

# A started command has no pidfd to wake us when its service appears: look
# again soon, then less and less often, until it matches or exits.
FIRST_RECHECK = 0.05
# A starter that exits 0 has usually left a daemon behind that may still be
# detaching or writing its pidfile: give it this long to show up before the
# rule counts as missing (a second start now would make a second daemon).
SETTLE_AFTER_START = 1.0


@dataclass
class RuleStatus:
    """What the engine knows of one rule between checks."""

    state: str = "missing"  # "running", "starting" (its command still runs) or "missing"
    pids: tuple[int, ...] = ()  # matched at the last check
    children: set[int] = field(default_factory=set)  # started by us, not yet reaped
    starts: int = 0
    restarts: int = 0  # starts after the first start, or after it was seen running
    seen_running: bool = False
    last_exit: int | None = None
    since: float = field(default_factory=time.time)
    given_up: bool = False
    recheck_after: float = 0.0  # while starting: doubles from FIRST_RECHECK up to the interval
    settle_until: float = 0.0  # a starter exited 0: "starting" until then, unless it matches


class Engine:
    """Keeps every rule's service alive until a stop signal or a give-up."""

    def __init__(
        self,
        rules: list[Rule],
        hook: Any,
        *,
        interval: float = 5.0,
        grace: float = 8.0,
        use_pidfd: bool = True,
        prefix: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rules = rules
        self.hook = hook
        self.interval = interval
        self.grace = grace
        self.clock = clock
        # Snapshots: an event re-reads only what it can have changed; the check
        # due at the interval reads everything (see watchdog/tracker.py).
        self.snapshots = Tracker(backstop=interval)
        self.take_snapshot = self.snapshots.take
        self.status = {rule.name: RuleStatus() for rule in rules}
        self.waiter = Waiter(use_pidfd)
        self.prefixer = Prefixer(self.waiter, [rule.name for rule in rules],
                                 sys.stdout.buffer, sys.stderr.buffer) if prefix else None
        self._children: dict[int, Rule] = {}  # every unreaped child we started
        self._wake_times: list[float] = []
        self._exit_code: int | None = None
        self._stop_reason: str | None = None
        self._once = False
        self._last_check = clock()

    # --- the interface plugins use --------------------------------------------

    def start(self, rule: Rule) -> int | None:
        """Run ``rule``'s command; return its pid, or None when it cannot be executed."""
        if self._stop_reason is not None:
            return None
        write_ends: list[int] = []
        try:
            if self.prefixer is not None:
                stdout, stderr, write_ends = self.prefixer.pipes(rule.name)
                pid = processes.spawn(rule.argv, stdout, stderr)
            else:
                pid = processes.spawn(rule.argv)
        except OSError as exc:
            logger.warning(
                "cannot start %r: %s", rule.command, exc.strerror or exc,
                extra={"rule": rule.name, "event": "start-failed"},
            )
            return None
        finally:
            for fd in write_ends:  # the child holds them now; EOF comes when it is done
                os.close(fd)
        status = self.status[rule.name]
        if status.starts or status.seen_running:
            status.restarts += 1
        status.children.add(pid)
        status.starts += 1
        status.recheck_after = FIRST_RECHECK
        status.settle_until = 0.0
        self._children[pid] = rule
        self._set_state(rule, "starting")
        self.call_at(self.clock() + FIRST_RECHECK)
        self.hook.watchdog_process_started(rule=rule, pid=pid)
        return pid

    def call_at(self, when: float) -> None:
        """Check again at ``when`` (on ``engine.clock``), whatever else happens."""
        heapq.heappush(self._wake_times, when)

    def give_up(self, rule: Rule, reason: str, exit_code: int | None = None) -> None:
        """Stop acting on ``rule``; with ``exit_code``, stop everything and exit with it."""
        status = self.status[rule.name]
        if not status.given_up:
            status.given_up = True
            self.hook.watchdog_rule_gave_up(rule=rule, reason=reason)
        if exit_code is not None and self._exit_code is None:
            self._exit_code = exit_code
            self._stop_reason = f"giving up on {rule.name}"

    def describe(self, rule: Rule) -> str:
        """What ``rule``'s matcher looks for, in words."""
        return str(self.hook.watchdog_describe(rule=rule) or f"a match for {rule.name!r}")

    # --- modes ----------------------------------------------------------------

    def missing_rules(self) -> list[Rule]:
        """One look at the process table, acting on nothing (``--check``)."""
        snapshot = self.take_snapshot()
        return [rule for rule in self.rules if not self._match(rule, snapshot)]

    def run(self, *, once: bool = False) -> int:
        """Keep the rules alive; return the exit status.

        With ``once``: start what is missing, wait (at most one interval) until
        every command has either produced a match or exited, and return 0 when
        every rule matches, 1 otherwise, leaving the services running.
        """
        self._once = once
        caught = (*STOP_SIGNALS, *FORWARDED_SIGNALS, signal.SIGCHLD)
        with self.waiter.signals_caught(caught):
            self._announce()
            self.hook.watchdog_started(engine=self)
            give_up_by = self.clock() + self.interval
            while True:
                self._check()
                if self._stop_reason is not None:
                    return self._stop(self._stop_reason)
                if once and (self._settled() or self.clock() >= give_up_by):
                    return EXIT_OK if all(s.state == "running" for s in self.status.values()) \
                        else EXIT_NOT_RUNNING
                self._wait_until_due(give_up_by if once else None)
                if self._stop_reason is not None:
                    return self._stop(self._stop_reason)

    # --- the loop -------------------------------------------------------------

    def _announce(self) -> None:
        if os.getpid() == 1:
            logger.info("running as PID 1: reaping every orphan in the container")
        elif processes.become_subreaper():
            logger.info("not PID 1: registered as child subreaper, orphans of services come to us")
        else:
            logger.warning("not PID 1 and cannot become a child subreaper: orphans go elsewhere")
        if not self.waiter.use_pidfd:
            logger.warning(
                "pidfd is unavailable: exits of adopted processes are seen at each "
                "--interval (%ss) check", self.interval,
            )

    def _next_due(self, deadline: float | None) -> float:
        due = self._last_check + self.interval
        if self._wake_times:
            due = min(due, self._wake_times[0])
        return due if deadline is None else min(due, deadline)

    def _wait_until_due(self, deadline: float | None) -> None:
        """Block until something may have changed: a death, a signal or a due time."""
        while True:
            exited = self.waiter.wait(self._next_due(deadline) - self.clock())
            reaped = self._reap()
            for signum in self.waiter.take_signals():
                if signum in STOP_SIGNALS:
                    self._stop_reason = signal.Signals(signum).name
                    return
                if signum in FORWARDED_SIGNALS:
                    self._forward(signal.Signals(signum))
            if exited or reaped or self.clock() >= self._next_due(deadline):
                return

    def _reap(self) -> bool:
        reaped = processes.reap()
        for pid, returncode in reaped:
            rule = self._children.pop(pid, None)
            if rule is None:
                continue  # an orphan we adopted as PID 1 or subreaper: nothing to report
            status = self.status[rule.name]
            status.children.discard(pid)
            status.last_exit = returncode
            if returncode == 0 and not status.children:
                status.settle_until = self.clock() + SETTLE_AFTER_START
                status.recheck_after = FIRST_RECHECK
            status.pids = tuple(p for p in status.pids if p != pid)
            self.waiter.unwatch(pid)
            self.hook.watchdog_process_exited(rule=rule, pid=pid, returncode=returncode)
        return bool(reaped)

    def _match(self, rule: Rule, snapshot: Snapshot) -> list[Proc]:
        procs = list(self.hook.watchdog_match(rule=rule, snapshot=snapshot) or [])
        self.snapshots.follow(procs)  # a matched process's death or exec is re-read at once
        return procs

    def _check(self) -> None:
        now = self.clock()
        backstop = now >= self._last_check + self.interval  # no event: read every process
        self._last_check = now
        while self._wake_times and self._wake_times[0] <= now:
            heapq.heappop(self._wake_times)
        snapshot = self.take_snapshot(full=backstop)
        matches = {rule.name: self._match(rule, snapshot) for rule in self.rules}
        if any(self.status[rule.name].state != "missing" and
               self._looks_missing(rule, matches[rule.name], now) for rule in self.rules):
            # A process that died while the table was being read may have handed
            # over to a child forked after the listing (a daemon's last fork).
            # Its death came before this second listing, so its child is in it.
            snapshot = self.take_snapshot()
            matches = {rule.name: self._match(rule, snapshot) for rule in self.rules}
        for rule in self.rules:
            status = self.status[rule.name]
            procs = matches[rule.name]
            self._follow(rule, status, procs, snapshot)
            if procs:
                status.seen_running = True
                status.settle_until = 0.0  # its daemon showed up: a later death is a death
                if status.state != "running":
                    self._set_state(rule, "running")
                    self.hook.watchdog_rule_found(rule=rule, procs=procs)
            elif not self._looks_missing(rule, procs, now):
                self._set_state(rule, "starting")
                next_look = now + status.recheck_after
                if not status.children:  # look once more when the settling ends
                    next_look = min(next_look, status.settle_until)
                self.call_at(next_look)
                status.recheck_after = min(self.interval, status.recheck_after * 2)
            else:
                self._set_state(rule, "missing")
                if not status.given_up and not (self._once and status.starts):
                    self.hook.watchdog_rule_missing(rule=rule, engine=self)
        self.hook.watchdog_checked(engine=self)

    def _looks_missing(self, rule: Rule, procs: list[Proc], now: float) -> bool:
        status = self.status[rule.name]
        return not procs and not status.children and now >= status.settle_until

    def _follow(self, rule: Rule, status: RuleStatus, procs: list[Proc], snapshot: Snapshot) -> None:
        """Watch the new matches' pidfds; report adopted processes that are gone."""
        matched = {proc.pid for proc in procs}
        for pid in status.pids:
            if pid not in matched:
                self.waiter.unwatch(pid)
                if pid not in self._children and snapshot.get(pid) is None:
                    self.hook.watchdog_process_exited(rule=rule, pid=pid, returncode=None)
        for proc in top_processes(procs):
            self.waiter.watch(proc.pid)
        status.pids = tuple(sorted(matched))

    def _set_state(self, rule: Rule, state: str) -> None:
        status = self.status[rule.name]
        if status.state != state:
            status.state = state
            status.since = time.time()

    def _settled(self) -> bool:
        return all(status.state != "starting" for status in self.status.values())

    # --- signals to services --------------------------------------------------

    def _targets(self, rule: Rule, snapshot: Snapshot) -> tuple[set[int], set[int]]:
        """Process groups of the commands we started, and matched processes outside them.

        Only the top of a matched tree is signalled (apache2's parent, not its
        workers): the service itself passes the signal on, as it expects to.
        """
        groups = set(self.status[rule.name].children)
        pids = set()
        for proc in top_processes(self._match(rule, snapshot)):
            if processes.process_group(proc.pid) not in groups:
                pids.add(proc.pid)
        return groups, pids

    def _send(self, rule: Rule, snapshot: Snapshot, sig: int) -> None:
        groups, pids = self._targets(rule, snapshot)
        for pgid in groups:
            processes.signal_group(pgid, sig)
        for pid in pids:
            self.waiter.watch(pid)
            self.waiter.send_signal(pid, sig)

    def _forward(self, sig: signal.Signals) -> None:
        snapshot = self.take_snapshot()
        logger.info("forwarding %s to every service", sig.name)
        for rule in self.rules:
            self._send(rule, snapshot, sig)

    def _alive(self, snapshot: Snapshot) -> dict[Rule, list[Proc]]:
        alive = {}
        for rule in self.rules:
            procs = self._match(rule, snapshot)
            if procs or self.status[rule.name].children:
                alive[rule] = procs
        return alive

    def _stop(self, reason: str) -> int:
        """Stop signal to every service, wait up to the grace, then SIGKILL what is left."""
        logger.info("stopping every service (%s), grace %ss", reason, self.grace)
        self.hook.watchdog_stopping(signal_name=reason)
        began = self.clock()
        deadline = began + self.grace
        signalled: set[int] = set()
        while True:
            self._reap()
            snapshot = self.take_snapshot()
            alive = self._alive(snapshot)
            for rule in alive:
                groups, pids = self._targets(rule, snapshot)
                for pgid in groups - signalled:
                    processes.signal_group(pgid, rule.stop_signal)
                for pid in pids - signalled:
                    self.waiter.watch(pid)
                    self.waiter.send_signal(pid, rule.stop_signal)
                signalled |= groups | pids
            if not alive:
                code = EXIT_OK
                break
            remaining = deadline - self.clock()
            if remaining <= 0 or self._stop_requested_again():
                code = self._kill(alive)
                break
            for procs in alive.values():
                for proc in procs:
                    self.waiter.watch(proc.pid)
            self.waiter.wait(remaining)
        self._finish_reaping()
        if self.prefixer is not None:
            self.prefixer.drain()
        logger.info("stopped in %.2fs", self.clock() - began)
        if self._exit_code is not None:
            code = self._exit_code
        self.hook.watchdog_stopped(exit_code=code)
        self.waiter.close()
        return code

    def _stop_requested_again(self) -> bool:
        return any(sig in (signal.SIGTERM, signal.SIGINT) for sig in self.waiter.take_signals())

    def _kill(self, alive: dict[Rule, list[Proc]]) -> int:
        names = ", ".join(rule.name for rule in alive)
        logger.warning("still running after the grace, sending SIGKILL: %s", names)
        for rule, procs in alive.items():
            for pgid in self.status[rule.name].children:
                processes.signal_group(pgid, signal.SIGKILL)
            for proc in procs:
                self.waiter.send_signal(proc.pid, signal.SIGKILL)
        return EXIT_KILLED

    def _finish_reaping(self) -> None:
        """Collect our killed children so nothing is left a zombie (bounded wait)."""
        give_up_at = self.clock() + 1.0
        while self._children and self.clock() < give_up_at:
            if not self._reap():
                self.waiter.wait(give_up_at - self.clock())  # SIGCHLD wakes us


def top_processes(procs: list[Proc]) -> list[Proc]:
    """The processes whose parent is not among ``procs``: a service's main processes."""
    pids = {proc.pid for proc in procs}
    return [proc for proc in procs if proc.ppid not in pids]
