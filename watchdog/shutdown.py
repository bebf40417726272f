"""The final stop: every service, in dependency order, then every other process of ours.

Called once, when the watchdog is to exit (a stop signal, a give-up, an
essential service's end). Unlike one rule's stop it may wait: nothing else is
left to serve.
"""

from __future__ import annotations

import signal
import time
from typing import TYPE_CHECKING

from watchdog import leftovers, processes
from watchdog.exits import EXIT_KILLED, EXIT_OK
from watchdog.logs import logger
from watchdog.ordering import stop_waves
from watchdog.rules import Rule
from watchdog.snapshot import Proc, Snapshot
from watchdog.stopping import Targets

if TYPE_CHECKING:
    from watchdog.engine import Engine


class Shutdown:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def alive(self, snapshot: Snapshot) -> dict[Rule, list[Proc]]:
        alive = {}
        for rule in self.engine.rules:
            status = self.engine.status[rule.name]
            procs = self.engine.current(rule, snapshot)
            if procs is None:  # a broken matcher: the pids it matched last, if still there
                procs = [p for p in map(snapshot.get, status.pids) if p is not None]
            if procs or self.engine.groups_of(rule):
                alive[rule] = procs
        return alive

    def run(self, reason: str) -> int:
        """Stop signal to every service, then to every other process of ours; KILL at the grace.

        With ``--after`` dependencies the services stop in waves, dependents
        first: a wave is signalled once the waves before it have ended, and
        gets an equal share of what is left of the grace (SIGKILL for its
        leftovers at the end of its share), so the whole stop stays within it.
        A rule with a grace of its own (``--grace NAME=SECONDS``) gets all of
        it from its stop signal on, whatever its wave.

        Then every other process of ours: our descendants that no rule matched
        (a copy a misconfigured rule started, a daemon of another name). As
        PID 1 that is everything in the container, which the kernel would
        otherwise SIGKILL when we exit; as a subreaper, what our services left.
        """
        logger.info("stopping every service (%s), grace %ss", reason, self.engine.grace)
        self.engine.hooks.watchdog_stopping(signal_name=reason)
        began = self.engine.clock()
        deadline = began + self.engine.grace
        own_graces = [rule.grace for rule in self.engine.rules if rule.grace is not None]
        others_deadline = began + max([self.engine.grace, *own_graces])  # for what no rule matches
        waves = stop_waves(self.engine.rules)
        last_wave = max(waves.values(), default=0)
        wave = 0
        wave_deadline = began + self.engine.grace / (last_wave + 1)
        killed: set[str] = set()
        signalled_at: dict[str, float] = {}
        signalled_groups: set[int] = set()
        signalled_pids: set[int] = set()
        code = EXIT_OK
        while True:
            self.engine.reap()
            snapshot = self.engine.take_snapshot(full=True)  # a stray process's death is no event
            alive = self.alive(snapshot)
            now = self.engine.clock()
            if not alive:
                if not self._stop_others(snapshot, signalled_pids, now >= others_deadline):
                    break
                if now >= others_deadline:
                    code = EXIT_KILLED
                    break
                self.engine.waiter.wait(others_deadline - now)
                continue
            if all(rule.name in killed for rule in alive):  # what SIGKILL has not removed yet
                self._stop_others(self.engine.take_snapshot(full=True), signalled_pids, kill=True)
                break
            while wave < last_wave and not any(waves[rule.name] <= wave and rule.name not in killed
                                               for rule in alive):
                wave += 1
                wave_deadline = now + (deadline - now) / (last_wave - wave + 1)
            for rule, procs in alive.items():
                if waves[rule.name] > wave:
                    continue  # a rule after it is still running
                signalled_at.setdefault(rule.name, now)
                targets = Targets.of(self.engine.groups_of(rule), procs)
                targets.groups -= signalled_groups
                targets.pids -= signalled_pids
                if last_wave and (targets.groups or targets.pids):
                    logger.info("stopping", extra={"rule": rule.name, "event": "stopping"})
                self.engine.signaller.stop(targets, rule.stop_signal)
                signalled_groups |= targets.groups
                signalled_pids |= targets.pids
            again = self._stop_requested_again()
            # A rule with a --grace of its own has it from its stop signal on; the others
            # share the default, wave by wave.
            kill_at = {rule.name: wave_deadline if rule.grace is None
                       else signalled_at[rule.name] + rule.grace
                       for rule in alive if rule.name in signalled_at and rule.name not in killed}
            late = {rule: procs for rule, procs in alive.items() if rule.name not in killed
                    and (again or (rule.name in kill_at and now >= kill_at[rule.name]))}
            if late:
                names = ", ".join(rule.name for rule in late)
                logger.warning("still running after the grace, sending SIGKILL: %s", names)
                for rule, procs in late.items():
                    self.engine.signaller.kill(self.engine.groups_of(rule), procs)
                code = EXIT_KILLED
                killed |= {rule.name for rule in late}
                continue
            for procs in alive.values():
                for proc in procs:
                    self.engine.waiter.watch(proc.pid)
            self.engine.waiter.wait(min(kill_at.values(), default=others_deadline) - now)
        self._finish_reaping()
        self.engine.close_output()
        logger.info("stopped in %.2fs", self.engine.clock() - began)
        if self.engine.exit_code is not None:
            code = self.engine.exit_code
        self.engine.hooks.watchdog_stopped(exit_code=code)
        self.engine.waiter.close()
        return code

    def _stop_others(self, snapshot: Snapshot, signalled: set[int], kill: bool) -> bool:
        """SIGTERM (or with ``kill``, SIGKILL) to our descendants no rule matched; False if none."""
        others = leftovers.descendants(snapshot)
        if kill and others:
            logger.warning("still running after the grace, sending SIGKILL: %s",
                           ", ".join(f"{proc.pid} ({proc.name})" for proc in others))
            self.engine.signaller.kill(set(), others)
            return True
        unsignalled = [proc for proc in others if proc.pid not in signalled]
        if unsignalled:
            logger.warning("stopping %d processes that no rule matches: %s", len(unsignalled),
                           ", ".join(f"{proc.pid} ({proc.name})" for proc in unsignalled),
                           extra={"event": "stop-unmatched"})
            self.engine.signaller.stop(Targets(set(), {proc.pid for proc in unsignalled}), signal.SIGTERM)
            signalled.update(proc.pid for proc in unsignalled)
        for proc in others:
            self.engine.waiter.watch(proc.pid)
        return bool(others)

    def _stop_requested_again(self) -> bool:
        return any(sig in (signal.SIGTERM, signal.SIGINT) for sig in self.engine.waiter.take_signals())

    def _finish_reaping(self) -> None:
        """Collect our killed children so nothing is left a zombie (bounded wait)."""
        give_up_at = self.engine.clock() + 1.0
        while self.engine.children and self.engine.clock() < give_up_at:
            if not self.engine.reap():
                self.engine.waiter.wait(give_up_at - self.engine.clock())  # SIGCHLD wakes us

    def kill_known(self) -> None:
        """Last resort when even the stop failed: KILL every process we know of, reap."""
        for status in self.engine.status.values():
            for pgid in status.children:
                processes.signal_group(pgid, signal.SIGKILL)
            for pid in status.pids:
                self.engine.waiter.send_signal(pid, signal.SIGKILL)
        time.sleep(0.1)
        processes.reap()
