"""Stopping services: whom to signal, and one rule's stop (stop signal, grace, KILL) step by step."""

from __future__ import annotations

import signal

from watchdog import processes
from watchdog.events import Waiter
from watchdog.logs import logger
from watchdog.snapshot import Proc

# After SIGKILL, how long a rule's stop waits for the kernel to remove its
# processes before it reports them and finishes anyway (a process in
# uninterruptible sleep, or one we may not signal).
KILL_WAIT = 2.0


def top_processes(procs: list[Proc]) -> list[Proc]:
    """The processes whose parent is not among ``procs``: a service's main processes."""
    pids = {proc.pid for proc in procs}
    return [proc for proc in procs if proc.ppid not in pids]


class Targets:
    """Process groups of the commands we started, and matched processes outside them.

    Only the top of a matched tree gets the stop signal (apache2's parent, not
    its workers): the service itself passes it on, as it expects to. SIGCONT
    goes to every process (``everyone``) and every group one of them leads
    (``led``): a stopped worker acts on nothing, its master's word included,
    until it is continued.
    """

    def __init__(self, groups: set[int], pids: set[int], everyone: set[int] | None = None,
                 led: set[int] | None = None) -> None:
        self.groups = groups
        self.pids = pids
        self.everyone: set[int] = set() if everyone is None else everyone
        self.led: set[int] = set() if led is None else led  # process groups a matched process leads

    @classmethod
    def of(cls, groups: set[int], procs: list[Proc]) -> Targets:
        """``groups``: those of the rule's commands (its children, and groups they left)."""
        groups = set(groups)
        pids = {proc.pid for proc in top_processes(procs)
                if (proc.pgid or processes.process_group(proc.pid)) not in groups}
        everyone = {proc.pid for proc in procs}
        return cls(groups, pids, everyone, {proc.pgid for proc in procs if proc.pgid in everyone} - groups)


class Signaller:
    """Sends signals to targets, through pidfds where we hold them (a reused pid is never hit)."""

    def __init__(self, waiter: Waiter) -> None:
        self.waiter = waiter

    def send(self, targets: Targets, sig: int) -> int:
        """Signal every target (SIGCONT: every process, and every group one of them
        leads, so that a stopped worker of an adopted daemon is continued too); return
        how many were still there to receive it."""
        every = sig == signal.SIGCONT
        groups = targets.groups | targets.led if every else targets.groups
        sent = sum(processes.signal_group(pgid, sig) for pgid in groups)
        for pid in targets.pids | targets.everyone if every else targets.pids:
            self.waiter.watch(pid)
            sent += self.waiter.send_signal(pid, sig)
        return sent

    def stop(self, targets: Targets, stop_signal: int) -> None:
        """The stop signal, then SIGCONT to every process: a stopped process (state T)
        then acts on it at once, and a stopped worker on its master's word."""
        self.send(targets, stop_signal)
        if stop_signal not in (signal.SIGKILL, signal.SIGCONT):
            self.send(targets, signal.SIGCONT)

    def kill(self, children: set[int], procs: list[Proc]) -> None:
        """SIGKILL to the groups of our commands, to the groups the processes lead, and
        to the processes."""
        for pgid in children | Targets.of(children, procs).led:
            processes.signal_group(pgid, signal.SIGKILL)
        for proc in procs:
            self.waiter.send_signal(proc.pid, signal.SIGKILL)


class RuleStop:
    """One rule's stop in progress; ``advance`` is called at each check until it is done.

    Nothing here waits: the engine's loop wakes on the processes' exits and at
    the deadlines, and the other rules are served meanwhile.
    """

    def __init__(self, rule_name: str, reason: str, restart: bool, deadline: float,
                 crashed: bool = False) -> None:
        self.rule_name = rule_name
        self.reason = reason
        self.restart = restart  # start again once stopped (engine.restart), else stay stopped
        self.deadline = deadline  # SIGKILL for whatever is left then
        # Not asked for: what a dead run left (orphaned workers, a crashed command's
        # jobs) is cleared away, and then the rule is missing, as after any crash.
        self.crashed = crashed
        self.killed = False
        self.signalled_groups: set[int] = set()
        self.signalled_pids: set[int] = set()

    def advance(self, now: float, children: set[int], procs: list[Proc], stop_signal: int,
                signaller: Signaller) -> bool:
        """Signal what is new, KILL at the deadline; True once nothing is left."""
        if not children and not procs:
            return True
        for proc in procs:  # every exit of the rule's processes wakes the loop
            signaller.waiter.watch(proc.pid)
        if not self.killed:
            targets = Targets.of(children, procs)
            targets.groups -= self.signalled_groups
            targets.pids -= self.signalled_pids
            if targets.groups or targets.pids:
                signaller.stop(targets, stop_signal)
                self.signalled_groups |= targets.groups
                self.signalled_pids |= targets.pids
            if now >= self.deadline:
                logger.warning("still running after the grace, sending SIGKILL",
                               extra={"rule": self.rule_name, "event": "kill"})
                signaller.kill(children, procs)
                self.killed = True
                self.deadline = now + KILL_WAIT
            return False
        if now >= self.deadline:
            logger.warning("still there %.0fs after SIGKILL: %s", KILL_WAIT,
                           ", ".join(str(p.pid) for p in procs) or "its process group",
                           extra={"rule": self.rule_name, "event": "kill-failed"})
            return True
        return False
