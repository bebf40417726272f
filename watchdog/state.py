"""A rule's run: what the engine knows of each rule between checks, its run state and counters.

The state changes only through ``watchdog.rulerun.Transitions.move``, which
also says which changes are possible (its ``ARROWS``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from watchdog.runstates import (
    EXITED,
    FAILED,
    FINAL,
    HEALTHY,
    MISSING,
    RUNNING,
    STARTING,
    STATES,
    STOPPED,
    STOPPING,
    UNHEALTHY,
    UNKNOWN,
    WAITING,
    RunState,
)

if TYPE_CHECKING:
    from watchdog.stopping import RuleStop


# The words live in watchdog.runstates; plugins and the core import them from here too.
__all__ = [
    "RunState", "STARTING", "RUNNING", "MISSING", "STOPPING", "STOPPED", "WAITING", "EXITED", "FAILED",
    "STATES", "FINAL", "UNKNOWN", "HEALTHY", "UNHEALTHY", "RuleStatus",
]


class RuleStatus:
    """One rule's run (the rule-run object): its state and what it is made of."""

    def __init__(
        self, state: RunState = MISSING, pids: tuple[int, ...] = (), children: set[int] | None = None,
        starts: int = 0, restarts: int = 0, seen_running: bool = False, last_exit: int | None = None,
        since: float | None = None, given_up: bool = False, reason: str = "", planned: bool = False,
        ended_with: int | None = None, health: str = UNKNOWN, health_detail: str = "",
        stop: RuleStop | None = None, left_behind: dict[int, float] | None = None,
        stand_in_noted: bool = False, started_wall: float = 0.0, recheck_after: float = 0.0,
        settle_until: float = 0.0, ready: bool = False, waiting_for: tuple[str, ...] = (),
        ready_reported: bool = False, passed_check: bool = False, message: str = "",
        adopted: dict[int, int] | None = None, last_output: list[dict[str, Any]] | None = None,
    ) -> None:
        self.state = state
        self.pids = pids  # matched at the last check
        self.children: set[int] = set() if children is None else children  # started by us, not yet reaped
        self.starts = starts
        self.restarts = restarts  # starts after the first start, or after it was seen running
        self.seen_running = seen_running
        self.last_exit = last_exit
        self.since = time.time() if since is None else since
        self.given_up = given_up
        self.reason = reason  # why the state last changed (Transitions.move)
        self.planned = planned  # the stop in progress or just done was asked for, not a failure
        self.ended_with = ended_with  # how its last process ended: a status, or None (not ours)
        self.health = health
        # The last check's result in words: "HTTP 500", "timed out after 5 s".
        self.health_detail = health_detail
        self.stop = stop  # the stop in progress, while STOPPING
        # Processes left behind: pid -> start time (leftovers.py).
        self.left_behind: dict[int, float] = {} if left_behind is None else left_behind
        self.stand_in_noted = stand_in_noted  # the advice for a service under another name was given
        self.started_wall = started_wall  # time.time() of the last start
        self.recheck_after = recheck_after  # while starting: doubles from FIRST_RECHECK up to the interval
        self.settle_until = settle_until  # a starter exited 0: "starting" until then, unless it matches
        # Readiness (watchdog.readiness): whether rules --after this one may start.
        self.ready = ready
        self.waiting_for = waiting_for  # while WAITING: the rules it waits for
        self.ready_reported = ready_reported  # a plugin said so (engine.set_ready), since the last start
        self.passed_check = passed_check  # health was healthy at least once since the last start
        self.message = message  # what the service says of itself (the notify protocol's STATUS=)
        # engine.adopt: pid -> its start ticks.
        self.adopted: dict[int, int] = {} if adopted is None else adopted
        # The last lines of output of the last run that ended (stderr first): time, stream, line.
        self.last_output: list[dict[str, Any]] = [] if last_output is None else last_output
