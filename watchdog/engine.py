"""The loop: snapshot -> match -> act, woken by signals, exits, due times and finished work.

The engine owns processes (starting, reaping, signalling) and rule states; it
knows no matcher or action by name. Matchers (``watchdog.matchers``) say
what a rule's processes are; plugins decide what to do about changes through
the event hooks, and act with the verbs below (``start``, ``stop``,
``restart``, ``signal``), timers (``call_at``, ``call_later``) and
background work (``run_in_background``). ``watchdog.api.EngineAPI`` is that
interface, typed and documented for plugin authors.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from watchdog import leftovers, processes, view
from watchdog.background import Background
from watchdog.children import Children
from watchdog.events import Waiter
from watchdog.exits import EXIT_INTERNAL_ERROR, EXIT_NOT_RUNNING, EXIT_OK
from watchdog.hooks import calls, log_failure
from watchdog.logfiles import LogFiles
from watchdog.logoptions import default_settings
from watchdog.logs import logger
from watchdog.matchers import Matchers
from watchdog.output import Capture, LogLine
from watchdog.ownership import Ownership
from watchdog.rulerun import Transitions, after_end, decide, how_it_ended
from watchdog.rules import ALWAYS, FORWARDABLE_SIGNALS, NO, Rule
from watchdog.shutdown import Shutdown
from watchdog.snapshot import Proc, Snapshot
from watchdog.state import (
    FAILED,
    FINAL,
    HEALTHY,
    MISSING,
    RUNNING,
    STARTING,
    STOPPED,
    STOPPING,
    UNHEALTHY,
    WAITING,
    RuleStatus,
)
from watchdog.stopping import RuleStop, Signaller, Targets, top_processes
from watchdog.tasks import InitTasks
from watchdog.timers import Timer, Timers
from watchdog.tracker import Tracker
from watchdog.writer import outputs

if TYPE_CHECKING:  # concurrent.futures is imported once background work is
    from concurrent.futures import Future

T = TypeVar("T")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)

# A started command has no pidfd to wake us when its service appears: look
# again soon, then less and less often, until it matches or exits.
FIRST_RECHECK = 0.05
# A starter that exits 0 has usually left a daemon behind that may still be
# detaching or writing its pidfile: give it this long to show up before the
# rule counts as missing (a second start now would make a second daemon).
SETTLE_AFTER_START = 1.0


def initial_status(rule: Rule) -> RuleStatus:
    """Where a rule starts: missing (so it is started), or stopped until asked (``--autostart``)."""
    if rule.autostart:
        return RuleStatus()
    return RuleStatus(state=STOPPED, reason="autostart=false: starts when asked (watchdogctl start)")


class Engine:
    """Keeps every rule's service alive until a stop signal or a give-up."""

    def __init__(
        self,
        rules: list[Rule],
        hooks: Any,
        matchers: Matchers,
        *,
        interval: float = 5.0,
        grace: float = 8.0,
        use_pidfd: bool = True,
        prefix: bool = False,
        timestamps: bool = False,
        log_files: LogFiles | None = None,
        clock: Callable[[], float] = time.monotonic,
        init_tasks: Sequence[Rule] = (),
        scope: int | None = None,
    ) -> None:
        self.rules = rules
        self.hooks = hooks
        self.matchers = matchers
        self.interval = interval
        self.grace = grace
        self.clock = clock
        # Snapshots: an event re-reads only what it can have changed; the check
        # due at the interval reads everything (see watchdog/tracker.py).
        # ``scope``: the pid whose descendants alone matchers see (watchdog/ownership.py).
        self.snapshots = Tracker(backstop=interval, scope=scope)
        self.ownership = Ownership()
        self.take_snapshot = self.snapshots.take
        self.status = {rule.name: initial_status(rule) for rule in rules}
        # Every change of a rule's run state goes through here (watchdog.rulerun).
        self.transitions = Transitions(hooks, self._wake)
        self.move = self.transitions.move
        self.waiter = Waiter(use_pidfd)
        self.init_tasks = init_tasks
        # Services' output: relayed to our stdout and stderr, kept per rule, written to files.
        self.writers = outputs().both()
        self.output = Capture(self.waiter, [rule.name for rule in [*rules, *init_tasks]], *self.writers,
                              prefix=prefix, timestamps=timestamps, default=default_settings())
        self.log_files = log_files
        if log_files is not None:
            self.output.files = log_files.write
            self.output.files_busy = log_files.busy
            log_files.wake = self.waiter.wake
        self.output.on_ready = self._ready_from_output
        self.children = Children(self.output)
        self.signaller = Signaller(self.waiter)
        self.timers = Timers()
        self.background = Background(self.waiter.wake, self.hooks.call_contained)
        self.exit_code: int | None = None
        self._stop_reason: str | None = None
        self._once = False
        self._check_soon = False
        self._last_check = clock()
        self._removing: dict[str, Rule] = {}  # by name: stopping, to be dropped (remove_rule)
        self._replacing: dict[str, Rule] = {}  # by name: added once the removed one is gone
        self._helpers: dict[int, Callable[[int], None]] = {}  # plugins' own children: pid -> on_exit

    # --- the interface plugins use (watchdog.api.EngineAPI) --------------------

    def start(self, rule: Rule) -> int | None:
        """Run ``rule``'s command; return its pid, or None when nothing was started."""
        status = self.status[rule.name]
        if self._stop_reason is not None:
            return None
        if status.stop is not None:  # never a start while it is stopping: start after it
            status.stop.restart = True
            return None
        status.given_up = False
        if status.pids or status.children:  # it runs already: never a second copy
            if status.state in FINAL:  # looked at again at the next check
                self.move(rule, status, MISSING, "start requested")
            self._check_soon = True
            return None
        if status.starts or status.seen_running:
            status.restarts += 1  # an attempt counts, whether or not the program could run
        status.planned = False
        try:
            pid = self.children.spawn(rule)
        except OSError as exc:
            # The shell's statuses: 127 for a program that is not there, 126 for one that cannot run.
            status.last_exit = status.ended_with = 127 if isinstance(exc, FileNotFoundError) else 126
            status.starts += 1
            logger.warning(
                "cannot start %r: %s", rule.command, exc.strerror or exc,
                extra={"rule": rule.name, "event": "start-failed", "status": status.last_exit},
            )
            ended = after_end(rule, status.ended_with) if rule.restart != ALWAYS else MISSING
            self.move(rule, status, ended, f"cannot start: {exc.strerror or exc}")
            return None
        status.children.add(pid)
        self.ownership.started(rule, pid)
        status.starts += 1
        status.started_wall = time.time()
        status.stand_in_noted = False
        status.ready_reported = status.passed_check = False  # readiness is per start
        status.message = ""
        status.recheck_after = FIRST_RECHECK
        status.settle_until = 0.0
        status.ended_with = None
        self.move(rule, status, STARTING, f"started pid {pid}")
        self.call_at(self.clock() + FIRST_RECHECK)
        if rule.start_timeout is not None:
            self.call_later(rule.start_timeout, partial(self._start_timed_out, rule, status, status.starts))
        self.hooks.watchdog_process_started(rule=rule, pid=pid)
        return pid

    def stop(self, rule: Rule, reason: str = "stop requested") -> None:
        """Stop ``rule``'s processes (stop signal, ``--grace``, KILL); it stays down until ``start``."""
        status = self.status[rule.name]
        if status.stop is not None:
            status.stop.restart = status.stop.crashed = False  # a clear-up becomes this stop
            status.planned = True
        elif status.state != STOPPED:
            self._begin_stop(rule, reason, restart=False, planned=True)

    def restart(self, rule: Rule, reason: str = "restart requested", *, planned: bool = False) -> None:
        """Stop ``rule``'s processes like ``stop``, then hand it to the actions to start again.

        ``planned``: asked for (an operator, a reload, a plugin's schedule), not a failure.
        """
        status = self.status[rule.name]
        status.given_up = False
        if status.stop is not None:
            if not status.stop.restart:  # a stop becomes a restart: this call says what it is
                status.planned = planned
            status.stop.restart = True
        else:
            self._begin_stop(rule, reason, restart=True, planned=planned)

    def signal(self, rule: Rule, sig: int) -> int:
        """Send ``sig`` to ``rule``'s processes; return how many received it."""
        return self.signaller.send(self._targets(rule, self.take_snapshot()), sig)

    def call_at(self, when: float, callback: Callable[[], None] | None = None) -> Timer:
        """At ``when`` (on ``engine.clock``), call ``callback`` on the loop, or check again."""
        return self.timers.add(when, callback)

    def call_later(self, delay: float, callback: Callable[[], None] | None = None) -> Timer:
        """``call_at(engine.clock() + delay, callback)``."""
        return self.timers.add(self.clock() + delay, callback)

    def run_in_background(
        self, work: Callable[[], T], on_done: Callable[[Future[T]], None] | None = None
    ) -> Future[T]:
        """Run ``work()`` in a thread; ``on_done(future)`` is then called on the loop."""
        return self.background.submit(work, on_done)

    def watch_child(self, pid: int, on_exit: Callable[[int], None]) -> None:
        """Call ``on_exit(returncode)`` on the loop when ``pid``, a plugin's own child, is reaped."""
        self._helpers[pid] = on_exit

    def add_reader(self, fd: int, on_readable: Callable[[], None]) -> None:
        """Call ``on_readable()`` on the loop whenever ``fd`` can be read (a socket of the plugin's)."""
        self.waiter.add_reader(fd, partial(self.hooks.call_contained, on_readable))

    def remove_reader(self, fd: int) -> None:
        self.waiter.remove_reader(fd)

    def add_writer(self, fd: int, on_writable: Callable[[], None]) -> None:
        """Call ``on_writable()`` on the loop whenever ``fd`` can be written (not while it is a reader)."""
        self.waiter.add_writer(fd, partial(self.hooks.call_contained, on_writable))

    def remove_writer(self, fd: int) -> None:
        self.waiter.remove_reader(fd)

    def set_health(self, rule: Rule, health: str, detail: str = "") -> None:
        """Record what a check found; a change is logged and reported to ``watchdog_rule_health``."""
        status = self.status[rule.name]
        status.health_detail = detail
        if status.health == health and (status.passed_check or health != HEALTHY):
            # The usual result: nothing that readiness depends on changed.
            self.hooks.watchdog_rule_health_checked(rule=rule, health=health, detail=detail)
            return
        changed = status.health != health
        status.health = health
        status.passed_check = status.passed_check or health == HEALTHY
        self._update_ready(rule)  # unhealthy is not ready; a first pass may make it ready
        if not changed:
            self.hooks.watchdog_rule_health_checked(rule=rule, health=health, detail=detail)
            return
        log = logger.warning if health == UNHEALTHY else logger.info
        log("%s%s", health, f" ({detail})" if detail else "", extra={"rule": rule.name, "event": "health"})
        self.hooks.watchdog_rule_health(rule=rule, health=health, detail=detail)
        self.hooks.watchdog_rule_health_checked(rule=rule, health=health, detail=detail)

    def set_ready(self, rule: Rule, ready: bool = True) -> None:
        """A plugin's word that ``rule`` is ready (or no longer, as while it reloads)."""
        self.status[rule.name].ready_reported = ready
        self._update_ready(rule)

    def adopt(self, rule: Rule, pid: int) -> bool:
        """Count process ``pid`` as ``rule``'s (watched, signalled) while it lives; False if gone."""
        proc = self.take_snapshot().get(pid)
        if proc is None:
            return False
        self.status[rule.name].adopted[pid] = proc.start_ticks
        self._check_soon = True
        return True

    def give_up(self, rule: Rule, reason: str, exit_code: int | None = None) -> None:
        """Stop acting on ``rule``; with ``exit_code``, stop everything and exit with it."""
        status = self.status[rule.name]
        if not status.given_up:
            status.given_up = True
            self.hooks.watchdog_rule_gave_up(rule=rule, reason=reason)
        if exit_code is not None and self.exit_code is None:
            self.exit_code = exit_code
            self._stop_reason = f"giving up on {rule.name}"
            self._check_soon = True  # called from a timer or background callback: the loop must wake

    def reopen_log_files(self) -> None:
        """Close every ``--log-file``; each is opened again (created if gone) at its next line."""
        if self.log_files is not None:
            self.log_files.reopen()

    def grace_of(self, rule: Rule) -> float:
        """How long ``rule``'s processes get between the stop signal and SIGKILL."""
        return self.grace if rule.grace is None else rule.grace

    def describe(self, rule: Rule) -> str:
        """What ``rule``'s matcher looks for, in words."""
        try:
            described: str = calls.run(f"matcher {rule.strategy}", "describe", self.matchers.describe, rule)
            return described
        except BaseException as exc:
            log_failure(f"matcher {rule.strategy}", "describe", exc)
            return f"a match for {rule.name!r}"

    def ways_to_match(self, rule: Rule) -> str:
        return self.matchers.ways_to_match(rule)

    # --- rules added and removed while running (reload) --------------------------

    def add_rule(self, rule: Rule) -> None:
        """Keep ``rule`` alive from the next check on; if its name is being removed, once that is done."""
        if rule.name in self._removing:
            self._replacing[rule.name] = rule
            return
        if rule.name in self.status:
            raise ValueError(f"a rule named {rule.name!r} exists already")
        self.rules.append(rule)
        self.status[rule.name] = initial_status(rule)
        logger.info("added %r", rule.command, extra={"rule": rule.name, "event": "added"})
        self.hooks.watchdog_rule_added(rule=rule, engine=self)
        self._check_soon = True

    def remove_rule(self, rule: Rule, reason: str = "removed") -> None:
        """Stop ``rule`` like ``stop``, then forget it (``watchdog_rule_removed``)."""
        self._replacing.pop(rule.name, None)
        if rule.name in self._removing or self.status.get(rule.name) is None:
            return
        self._removing[rule.name] = rule
        status = self.status[rule.name]
        if status.stop is not None:
            status.stop.restart = False
            status.stop.reason = reason
        elif status.state in FINAL:
            self._drop(rule, reason)
        else:
            self._begin_stop(rule, reason, restart=False, planned=True)

    def _drop(self, rule: Rule, reason: str) -> None:
        del self._removing[rule.name]
        status = self.status.pop(rule.name)
        self.rules.remove(rule)
        self.output.forget(rule.name)
        for pid in status.pids:
            self.waiter.unwatch(pid)
        self.ownership.forget(rule)  # a rule added under its name starts afresh
        logger.info("removed (%s)", reason, extra={"rule": rule.name, "event": "removed"})
        self.hooks.watchdog_rule_removed(rule=rule, reason=reason)
        replacement = self._replacing.pop(rule.name, None)
        if replacement is not None:
            self.add_rule(replacement)

    # --- modes ----------------------------------------------------------------

    def missing_rules(self) -> list[Rule]:
        """One look at the process table, acting on nothing (``--check``)."""
        snapshot = self.take_snapshot()
        return [rule for rule in self.rules if not self.matchers.match(rule, snapshot)]

    def run(self, *, once: bool = False) -> int:
        """Keep the rules alive; return the exit status.

        With ``once``: start what is missing, wait (at most one interval) until
        every command has either produced a match or exited, and return 0 when
        every rule matches, 1 otherwise, leaving the services running.

        An unexpected error in the engine itself is logged, every service is
        stopped the usual way, and the status is ``EXIT_INTERNAL_ERROR``. That
        includes a SystemExit or KeyboardInterrupt that got this far: plugins'
        are contained before, and the watchdog's own exit is a return.
        """
        self._once = once
        caught = (*STOP_SIGNALS, *FORWARDABLE_SIGNALS, signal.SIGCHLD)
        with self.waiter.signals_caught(caught), calls.watching():
            try:
                return self._loop(once)
            except BaseException as exc:
                logger.critical("internal error: %s: %s; stopping every service",
                                type(exc).__name__, exc, exc_info=exc, extra={"event": "internal-error"})
                self.exit_code = EXIT_INTERNAL_ERROR
                try:
                    return self._stop("internal error")
                except BaseException:
                    Shutdown(self).kill_known()
                    return EXIT_INTERNAL_ERROR

    # --- the loop -------------------------------------------------------------

    def _loop(self, once: bool) -> int:
        for writer in self.writers:  # our own lines: sent when the reader takes them
            writer.attach(self.waiter.add_writer, self.waiter.remove_reader, self.waiter.wake)
        self._announce()
        init_failed = InitTasks(
            self.init_tasks, self.children, self.waiter, grace=self.grace, clock=self.clock,
            stop_signals=STOP_SIGNALS, forwarded_signals=FORWARDABLE_SIGNALS,
        ).run()
        if init_failed is not None:
            self.close_output()
            self.waiter.close()
            return init_failed
        self.hooks.watchdog_started(engine=self)
        give_up_by = self.clock() + self.interval
        while True:
            self._check()
            if self._stop_reason is not None:
                return self._stop(self._stop_reason)
            if once and (self._settled() or self.clock() >= give_up_by):
                return EXIT_OK if all(view.fine(s.state, s.health) for s in self.status.values()) \
                    else EXIT_NOT_RUNNING
            self._wait_until_due(give_up_by if once else None)
            if self._stop_reason is not None:
                return self._stop(self._stop_reason)

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

    def _next_check(self, deadline: float | None) -> float:
        due = self._last_check + self.interval
        return due if deadline is None else min(due, deadline)

    def _wait_until_due(self, deadline: float | None) -> None:
        """Block until something may have changed: a death, a signal or a due time.

        Timer callbacks and finished background work run here, on the loop,
        between waits; only plain ``call_at`` wake-ups and exits force a check.
        """
        while True:
            wake_at = self._next_check(deadline)
            timer_due = self.timers.next_due()
            if timer_due is not None:
                wake_at = min(wake_at, timer_due)
            exited = self.waiter.wait(0 if self._check_soon else wake_at - self.clock())
            for writer in self.writers:  # lines other threads logged meanwhile
                writer.poll()
            self.output.resume()  # pipes left unread while their log files had too much to write
            reaped = self.reap()
            for signum in self.waiter.take_signals():
                if signum in STOP_SIGNALS:
                    self._stop_reason = signal.Signals(signum).name
                    return
                if signum in FORWARDABLE_SIGNALS:
                    self._forward(signum)
            self.background.run_finished()
            for timer in self.timers.pop_due(self.clock()):
                if timer.cancelled:  # by a callback before it on this wake-up
                    continue
                if timer.callback is None:
                    self._check_soon = True
                else:
                    self.hooks.call_contained(timer.callback)
            if exited or reaped or self._check_soon or self.clock() >= self._next_check(deadline):
                return

    def reap(self) -> bool:
        """Collect every child that ended; True when one may change what a check finds."""
        reaped = self.children.reap()
        changed = False
        for pid, rule, returncode in reaped:
            on_exit = self._helpers.pop(pid, None) if rule is None else None
            if on_exit is not None:  # a plugin's helper (a health check's command), not a service
                self.hooks.call_contained(on_exit, returncode)
                continue
            changed = True
            self.ownership.reaped(pid, returncode)  # a daemon's stage or a master: did it hand over?
            if rule is None or rule not in self.rules:
                continue  # an orphan we adopted (PID 1, subreaper), or one of a rule removed since
            status = self.status[rule.name]
            status.children.discard(pid)
            status.last_exit = status.ended_with = returncode
            if returncode == 0 and not status.children:
                status.settle_until = self.clock() + SETTLE_AFTER_START
                status.recheck_after = FIRST_RECHECK
            status.pids = tuple(p for p in status.pids if p != pid)
            self.waiter.unwatch(pid)
            status.last_output = self._last_output(rule, pid)
            self.hooks.watchdog_process_exited(rule=rule, pid=pid, returncode=returncode, engine=self)
        return changed

    def _match(self, rule: Rule, snapshot: Snapshot) -> list[Proc] | None:
        """The rule's processes; None when its matcher failed (logged)."""
        try:
            procs: list[Proc] = calls.run(f"matcher {rule.strategy}", f"matching rule {rule.name}",
                                          self.matchers.match, rule, snapshot)
        except BaseException as exc:
            log_failure(f"matcher {rule.strategy}", f"matching rule {rule.name}", exc)
            return None
        status = self.status[rule.name]
        if not self.matchers.proves_ownership(rule):
            roots = {*status.children, *status.pids, *status.adopted, *status.left_behind}
            procs = self.ownership.trusted(rule, procs, roots, snapshot)
        adopted = status.adopted
        for pid, start_ticks in list(adopted.items()):  # engine.adopt: while that very process lives
            proc = snapshot.get(pid)
            if proc is None or proc.start_ticks != start_ticks:
                del adopted[pid]
            elif all(p.pid != pid for p in procs):
                procs.append(proc)
        self.snapshots.follow(procs)  # a matched process's death or exec is re-read at once
        return procs

    def current(self, rule: Rule, snapshot: Snapshot) -> list[Proc] | None:
        """What a stop or a signal reaches: the matches, else the service under another name."""
        procs = self._match(rule, snapshot)
        if procs == []:
            status = self.status[rule.name]
            procs = leftovers.stand_ins(status, snapshot, self.clock() >= status.settle_until)
        return procs

    def _match_all(self, snapshot: Snapshot) -> dict[str, list[Proc] | None]:
        return {rule.name: self._match(rule, snapshot) for rule in self.rules}

    def _check(self) -> None:
        now = self.clock()
        backstop = now >= self._last_check + self.interval  # no event: read every process
        self._last_check = now
        self._check_soon = False
        snapshot = self.take_snapshot(full=backstop)
        matches = self._match_all(snapshot)
        if any(self._watching_for_death(rule) and self._looks_missing(rule, matches[rule.name] or [], now)
               for rule in self.rules):
            # A process that died while the table was being read may have handed
            # over to a child forked after the listing (a daemon's last fork).
            # Its death came before this second listing, so its child is in it.
            snapshot = self.take_snapshot()
            matches = self._match_all(snapshot)
        self._collect_left_behind(snapshot, matches)
        for rule in list(self.rules):  # a rule may be removed or added on the way
            status = self.status.get(rule.name)
            procs = matches.get(rule.name)
            if status is None:
                continue
            if procs is None:  # a broken matcher: keep what was known, change nothing
                continue
            if status.state == RUNNING and self._main_process_died(rule, status, procs, snapshot):
                continue
            if not procs and status.state not in FINAL:
                procs = self._stand_ins(rule, status, snapshot)
            self._follow(rule, status, procs, snapshot)
            if status.stop is not None and not self._advance_stop(rule, status, procs, now):
                continue
            if status.state in FINAL:
                continue
            self._carry_on(rule, status, procs, now)
        for rule in self.rules:
            self._update_ready(rule)
        self.hooks.watchdog_checked(engine=self)

    def _carry_on(self, rule: Rule, status: RuleStatus, procs: list[Proc], now: float) -> None:
        """One rule after a check, neither stopping nor final: the model decides, the engine acts."""
        if procs:
            status.seen_running = True
            status.settle_until = 0.0  # its daemon showed up: a later death is a death
            if any(proc.pid not in status.children for proc in procs):
                status.ended_with = None  # it outlives our command: its end's status is not ours
        starting = not procs and not self._looks_missing(rule, procs, now)
        new, reason = decide(rule, status, [proc.pid for proc in procs], starting,
                             partial(self._waiting_for, rule, status))
        if new in (MISSING, *FINAL) and self._clear_leftovers(rule):
            return  # what the ended run left is stopped first; then the policy decides
        changed = self.move(rule, status, new, reason)
        if new == RUNNING:
            if changed:
                self.hooks.watchdog_rule_found(rule=rule, procs=procs)
        elif new == STARTING:
            next_look = now + status.recheck_after
            if not status.children:  # look once more when the settling ends
                next_look = min(next_look, status.settle_until)
            self.call_at(next_look)
            status.recheck_after = min(self.interval, status.recheck_after * 2)
            if status.children:  # a command running under another name: look when it may count
                self.call_at(now + leftovers.CHILD_IS_SERVICE_AFTER)
        elif new == MISSING and not status.given_up and not (self._once and status.starts):
            self.hooks.watchdog_rule_missing(rule=rule, engine=self)

    def _start_timed_out(self, rule: Rule, status: RuleStatus, start: int) -> None:
        """``--start-timeout``: a start not ready in time failed (restarted, or failed for good)."""
        if self.status.get(rule.name) is not status or status.starts != start or status.ready \
                or status.state not in (STARTING, RUNNING) or self._stop_reason is not None:
            return  # a later start, a stop, or it is ready: this timer says nothing
        reason = f"not ready within {rule.start_timeout:g}s of its start (--start-timeout)"
        logger.warning("%s: the start failed", reason, extra={"rule": rule.name, "event": "start-timeout"})
        if rule.restart == NO:
            self._begin_stop(rule, reason, restart=False, planned=False)  # ends failed
        else:
            self.restart(rule, reason)

    def _main_process_died(self, rule: Rule, status: RuleStatus, procs: list[Proc],
                           snapshot: Snapshot) -> bool:
        """A dead main process that left only its workers: the service is down, as after
        any crash (``--essential`` ends with it); its workers are stopped first."""
        dead, workers = self.ownership.orphaned_workers(rule, procs, snapshot)
        if not workers:
            return False
        logger.warning("main process %d died and left %d of its workers (pid %s): nothing serves; "
                       "stopping them to start the service again", dead, len(workers),
                       ",".join(str(proc.pid) for proc in workers),
                       extra={"rule": rule.name, "event": "orphaned-workers"})
        self.ownership.seen(rule, [])
        if dead in status.pids:  # not a child of ours, whose exit reap reported
            status.pids = ()  # its workers are left, but nothing serves: the service ended
            self.waiter.unwatch(dead)
            status.ended_with = self.ownership.exit_of(dead)  # reaped here when re-parented to us
            status.last_output = self._last_output(rule, None)
            self.hooks.watchdog_process_exited(rule=rule, pid=dead, returncode=status.ended_with, engine=self)
        self._begin_stop(rule, f"main process {dead} died", restart=False, planned=False, crashed=True)
        return True

    def _clear_leftovers(self, rule: Rule) -> bool:
        """Stop what a run that ended left in its commands' process groups (a shell's
        ``&`` job) before the rule counts as missing and runs again; True if any."""
        if self.status[rule.name].given_up or not self.ownership.live_groups(rule):
            return False
        logger.warning("its command ended and left processes in its process group: stopping them "
                       "before it runs again", extra={"rule": rule.name, "event": "leftovers"})
        self._begin_stop(rule, "its command ended", restart=False, planned=False, crashed=True)
        return True

    def _stand_ins(self, rule: Rule, status: RuleStatus, snapshot: Snapshot) -> list[Proc]:
        """The command of ours or its leftovers that are the service under another name."""
        procs = leftovers.stand_ins(status, snapshot, self.clock() >= status.settle_until)
        if procs and not status.stand_in_noted:
            status.stand_in_noted = True
            first = procs[0]
            ways = self.ways_to_match(rule)
            logger.warning(
                "%r runs as %r (pid %d, %r), which is not %s: taking it as the service%s",
                rule.command, first.name, first.pid, snapshot.command_line(first.pid),
                self.describe(rule), f"; {ways} would match it directly" if ways else "",
                extra={"rule": rule.name, "event": "stand-in"},
            )
        return procs

    def _collect_left_behind(self, snapshot: Snapshot, matches: dict[str, list[Proc] | None]) -> None:
        """Give each orphan re-parented to us to the rule whose start left it behind.

        Only while a rule is not running: a service that runs needs no stand-in.
        A process that a rule matches is that rule's, and no other rule's leftover,
        whatever an earlier check gave it to (see ``leftovers.forget_claimed``).
        """
        claimed = {proc.pid for procs in matches.values() for proc in procs or ()}
        for status in self.status.values():
            leftovers.forget_claimed(status, claimed)
        if all(status.state in (RUNNING, *FINAL) for status in self.status.values()):
            return
        known = set(self.children.pids()) | claimed
        for status in self.status.values():
            leftovers.forget_gone(status, snapshot)
            known.update(status.left_behind)
        for proc, started in leftovers.new_orphans(snapshot, known):
            starter = leftovers.left_by(self.status, started)
            if starter is not None:
                starter.left_behind[proc.pid] = started

    def _waiting_for(self, rule: Rule, status: RuleStatus) -> tuple[str, ...]:
        """The rules ``--after`` which ``rule`` is and that are not ready (it waits, unstarted)."""
        waiting_for = tuple(name for name in rule.after if not self.status[name].ready)
        if waiting_for != status.waiting_for and waiting_for:
            logger.info("waiting for %s to be ready", ", ".join(waiting_for),
                        extra={"rule": rule.name, "event": "waiting"})
        status.waiting_for = waiting_for
        return waiting_for

    def _update_ready(self, rule: Rule) -> None:
        """Recompute ``rule``'s readiness; a change is logged, reported, and wakes its dependents."""
        self.transitions.update_ready(rule, self.status[rule.name])

    def _wake(self) -> None:
        self._check_soon = True

    def _watching_for_death(self, rule: Rule) -> bool:
        return self.status[rule.name].state in (RUNNING, STARTING)

    def _looks_missing(self, rule: Rule, procs: list[Proc], now: float) -> bool:
        status = self.status[rule.name]
        return not procs and not status.children and now >= status.settle_until

    def _follow(self, rule: Rule, status: RuleStatus, procs: list[Proc], snapshot: Snapshot) -> None:
        """Watch the new matches' pidfds; report adopted processes that are gone."""
        matched = {proc.pid for proc in procs}
        gone = []
        for pid in status.pids:
            if pid not in matched:
                self.waiter.unwatch(pid)
                if pid not in status.children and snapshot.get(pid) is None \
                        and not (status.stop is not None and status.stop.crashed):  # the clear-up's own
                    gone.append(pid)
        for proc in top_processes(procs):
            self.waiter.watch(proc.pid)
        status.pids = tuple(sorted(matched))
        self.ownership.seen(rule, procs)
        # Reported once the rule's processes are known: a worker that ends while the
        # service runs on is not the service ending (plugins/log.py).
        for pid in gone:
            # Not started by us: its status is known only if it came to us to be reaped.
            status.ended_with = self.ownership.exit_of(pid)
            if not status.pids:
                status.last_output = self._last_output(rule, None)
            self.hooks.watchdog_process_exited(rule=rule, pid=pid, returncode=status.ended_with, engine=self)

    def _last_output(self, rule: Rule, pid: int | None) -> list[dict[str, Any]]:
        """The last lines of the run that ``pid`` started (else the latest), for a crash report."""
        return [line_view(line) for line in self.output.last_lines(rule.name, pid)]

    def _ready_from_output(self, name: str) -> None:
        """``--ready-log``: a line of this start matched."""
        rule = next((rule for rule in self.rules if rule.name == name), None)
        if rule is not None:
            self.set_ready(rule)

    def close_output(self) -> None:
        """At exit: the pipes' last lines out, the log files written and closed."""
        self.children.drain_output()
        if self.log_files is not None:
            self.log_files.close()
        for writer in self.writers:
            writer.detach()

    def _settled(self) -> bool:
        """Nothing is starting, and no waiting rule may start now (``--once``)."""
        return all(status.state != STARTING
                   and not (status.state == WAITING and all(self.status[n].ready for n in rule.after))
                   for rule in self.rules for status in (self.status[rule.name],))

    # --- one rule's stop and restart --------------------------------------------

    def _begin_stop(self, rule: Rule, reason: str, *, restart: bool, planned: bool,
                    crashed: bool = False) -> None:
        status = self.status[rule.name]
        grace = self.grace_of(rule)
        status.stop = RuleStop(rule.name, reason, restart, deadline=self.clock() + grace,
                               crashed=crashed)
        status.planned = planned
        self.move(rule, status, STOPPING, reason)
        if not crashed:  # a crash's clear-up is no stop anyone asked for
            logger.info("%s (%s), grace %ss", "restarting" if restart else "stopping", reason, grace,
                        extra={"rule": rule.name, "event": "restarting" if restart else "stopping"})
            self.hooks.watchdog_rule_stopping(rule=rule, reason=reason)
        procs = self.current(rule, self.take_snapshot()) or []
        status.stop.advance(self.clock(), self.groups_of(rule), procs, rule.stop_signal, self.signaller)
        self.call_at(status.stop.deadline)
        self._check_soon = True

    def _advance_stop(self, rule: Rule, status: RuleStatus, procs: list[Proc], now: float) -> bool:
        """Move a stop on; True once it is done and the rule is handed back (restart)."""
        stop = status.stop
        assert stop is not None
        if not stop.advance(now, self.groups_of(rule), procs, rule.stop_signal, self.signaller):
            self.call_at(stop.deadline)
            return False
        status.stop = None
        status.settle_until = 0.0
        if self._removing.get(rule.name) is rule:  # a start asked meanwhile does not keep it
            self._drop(rule, stop.reason)
            return False
        if stop.crashed and not stop.restart:
            # The run had ended; what it left is gone now: the restart policy decides, and a
            # missing rule goes on through this check to be called missing.
            ended = after_end(rule, status.ended_with)
            self.move(rule, status, ended, f"{how_it_ended(status.ended_with)}; what it left is stopped")
            return ended == MISSING
        if stop.restart:
            self.move(rule, status, MISSING, f"stopped to start again: {stop.reason}")
            logger.info("stopped, starting again (%s)%s", stop.reason,
                        ", a planned restart: not a failure" if status.planned else "",
                        extra={"rule": rule.name, "event": "restarted"})
            self.hooks.watchdog_rule_restarted(rule=rule, reason=stop.reason, planned=status.planned)
            return True
        # A stop asked for ends stopped; one that answers a failure (--start-timeout) failed.
        self.move(rule, status, STOPPED if status.planned else FAILED, stop.reason)
        logger.info("stopped (%s); stays down until started", stop.reason,
                    extra={"rule": rule.name, "event": "stopped"})
        self.hooks.watchdog_rule_stopped(rule=rule, reason=stop.reason)
        return False

    # --- signals to services and the final stop ----------------------------------

    def groups_of(self, rule: Rule) -> set[int]:
        """The process groups of ``rule``'s commands: those that run, and those whose
        command is gone but whose members live on (what a stop must reach too)."""
        return self.status[rule.name].children | self.ownership.live_groups(rule)

    def _targets(self, rule: Rule, snapshot: Snapshot) -> Targets:
        return Targets.of(self.groups_of(rule), self.current(rule, snapshot) or [])

    def _forward(self, sig: int) -> None:
        receivers = [rule for rule in self.rules if sig in rule.forward_signals]
        logger.info("forwarding %s to %s", signal.Signals(sig).name,
                    ", ".join(rule.name for rule in receivers) or "no service (--forward-signals)")
        snapshot = self.take_snapshot()
        for rule in receivers:
            self.signaller.send(self._targets(rule, snapshot), sig)

    def _stop(self, reason: str) -> int:
        return Shutdown(self).run(reason)


def line_view(line: LogLine) -> dict[str, Any]:
    """A line of output as the status and the events show it."""
    return {"time": round(line.time, 3), "stream": line.stream,
            "line": line.text.decode("utf-8", "replace")}
