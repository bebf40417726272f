"""The rule-run model: a rule's run states, the changes between them, and the one place they happen.

Every change of a rule's run state goes through ``Transitions.move``: it
checks the change against ``ARROWS``, records when and why, logs it, calls
``watchdog_rule_state(rule, old, new, reason)`` with the reason of that very
change (the events feed publishes each one), then recomputes readiness.

::

    waiting ──deps ready──▶ missing ──start──▶ starting ──found──▶ running
       ▲                     ▲                   │ ◀── gone, its command still runs ──┤
       │                     └── ended: always, or on-failure after a failure ───────┤
       └──── ended as above while what it comes after is not ready ──────────────────┤
              exited (a success) / failed (no, after a failure) ◀── ended ───────────┘

    any state ──engine.stop / engine.restart──▶ stopping ──stop done──▶ stopped
                                                    └──restart done──▶ missing
                      (a --start-timeout stop under --restart no ──▶ failed)

    starting/running ──ended, leaving processes (a dead master's workers, a shell's
    `&` job)──▶ stopping ──they are gone──▶ what "ended" leads to above (missing,
    exited or failed)

A final state (``stopped``, ``exited``, ``failed``) is left only by
``engine.start`` (to ``starting``, or ``missing`` when nothing could run) or
``engine.restart``. ``failed`` is also where a ``--restart no`` rule goes
when it is not ready within its ``--start-timeout``.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Sequence
from typing import Any

from watchdog.logs import logger
from watchdog.readiness import is_ready
from watchdog.rules import ALWAYS, NO, Rule
from watchdog.state import (
    EXITED,
    FAILED,
    MISSING,
    RUNNING,
    STARTING,
    STOPPED,
    STOPPING,
    WAITING,
    RuleStatus,
    RunState,
)

# What a final state may become: a start (failed when nothing could run under --restart no), a stop.
_ANY_START = frozenset({MISSING, STARTING, FAILED, STOPPING})
ARROWS: dict[RunState, frozenset[RunState]] = {
    MISSING: frozenset({STARTING, RUNNING, WAITING, STOPPING, FAILED}),
    WAITING: frozenset({MISSING, STARTING, RUNNING, STOPPING, FAILED}),
    STARTING: frozenset({RUNNING, MISSING, WAITING, STOPPING, EXITED, FAILED}),
    RUNNING: frozenset({STARTING, MISSING, WAITING, STOPPING, EXITED, FAILED}),
    STOPPING: frozenset({STOPPED, MISSING, EXITED, FAILED}),  # EXITED: a clear-up after a success
    STOPPED: _ANY_START,
    EXITED: _ANY_START,
    FAILED: _ANY_START - {FAILED},
}


def shell_status(returncode: int) -> int:
    """A status as a shell says it: 128 + N for a death by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def how_it_ended(returncode: int | None) -> str:
    if returncode is None:
        return "its processes ended (their status cannot be known: not started by the watchdog)"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exited with status {returncode}"


def succeeded(rule: Rule, returncode: int | None) -> bool:
    """The status counts as success (``--success-exit``); an unknown one never does."""
    return returncode is not None and shell_status(returncode) in rule.success_exit


def after_end(rule: Rule, returncode: int | None) -> RunState:
    """What a run becomes once its processes are all gone by themselves (``--restart``).

    ``always``: missing (started again). ``on-failure``: exited on a success
    status, else missing. ``no``: exited or failed. An adopted daemon's status
    cannot be known, so its end is never a success.
    """
    if rule.restart == ALWAYS:
        return MISSING
    if succeeded(rule, returncode):
        return EXITED
    return FAILED if rule.restart == NO else MISSING


def decide(rule: Rule, run: RuleStatus, found: Sequence[int], starting: bool,
           waiting_for: Callable[[], Sequence[str]]) -> tuple[RunState, str]:
    """What one check makes of a rule that is neither stopping nor in a final state, and why.

    ``found``: the pids of its processes; ``starting``: a command of its own
    still runs, or a starter's exit 0 is still settling (its daemon may yet
    appear); ``waiting_for()``: the rules ``--after`` which it is, not ready
    yet (asked only when it matters). A run that was starting or running and
    has nothing left ended: ``after_end`` says into what.
    """
    if found:
        return RUNNING, "found pid " + ",".join(map(str, found[:8]))
    if starting:
        return STARTING, ("its command runs" if run.children
                          else "its starter exited 0: waiting for its daemon")
    ended_now = run.state in (STARTING, RUNNING)
    reason = run.reason
    if ended_now:
        reason = how_it_ended(run.ended_with)
        if rule.restart != ALWAYS:
            reason += f"; --restart {rule.restart}"
        ended = after_end(rule, run.ended_with)
        if ended != MISSING:
            return ended, reason  # final: what it comes after no longer matters
    waits = waiting_for()
    if waits:
        why = f"waiting for {', '.join(waits)}"
        return WAITING, f"{reason}; {why}" if ended_now else why
    if run.state == WAITING:
        reason = "the rules it comes after are ready"
    return MISSING, reason


class Transitions:
    """The one place a rule's run state changes."""

    def __init__(self, hooks: Any, wake: Callable[[], None],
                 wall: Callable[[], float] = time.time) -> None:
        self.hooks = hooks
        self.wake = wake  # a readiness change may let rules --after it start: check soon
        self.wall = wall

    def move(self, rule: Rule, run: RuleStatus, new: RunState, reason: str) -> bool:
        """Change ``run`` to ``new`` because of ``reason``; False when it was there already."""
        old = run.state
        if old == new:
            return False
        if new not in ARROWS[old]:
            # A bug of the engine's: say so, and still follow what the engine saw.
            logger.error("internal: unexpected change of state %s -> %s (%s)", old, new, reason,
                         extra={"rule": rule.name, "event": "internal-error"})
        run.state = new
        run.since = self.wall()
        run.reason = reason
        ready_before = run.ready
        run.ready = is_ready(rule, run)
        level = logging.INFO if new in (EXITED, FAILED) else logging.DEBUG
        logger.log(level, "%s (%s)", new, reason, extra={"rule": rule.name, "event": "state"})
        self.hooks.watchdog_rule_state(rule=rule, old=old, new=new, reason=reason)
        if run.ready != ready_before:
            self.ready_changed(rule, run)
        return True

    def update_ready(self, rule: Rule, run: RuleStatus) -> None:
        """Recompute readiness after something other than the state changed (``READY=1``, a check)."""
        ready = is_ready(rule, run)
        if ready != run.ready:
            run.ready = ready
            self.ready_changed(rule, run)

    def ready_changed(self, rule: Rule, run: RuleStatus) -> None:
        if run.ready:
            logger.info("ready", extra={"rule": rule.name, "event": "ready"})
        self.hooks.watchdog_rule_ready(rule=rule, ready=run.ready)
        self.wake()
