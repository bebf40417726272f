"""A rule's run: what the engine knows of each rule between checks, its run state and counters.

The state changes only through ``watchdog.rulerun.Transitions.move``, which
also says which changes are possible (its ``ARROWS``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
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


@dataclass
class RuleStatus:
    """One rule's run (the rule-run object): its state and what it is made of."""

    state: RunState = MISSING
    pids: tuple[int, ...] = ()  # matched at the last check
    children: set[int] = field(default_factory=set)  # started by us, not yet reaped
    starts: int = 0
    restarts: int = 0  # starts after the first start, or after it was seen running
    seen_running: bool = False
    last_exit: int | None = None
    since: float = field(default_factory=time.time)
    given_up: bool = False
    reason: str = ""  # why the state last changed (Transitions.move)
    planned: bool = False  # the stop in progress or just done was asked for, not a failure
    ended_with: int | None = None  # how its last process ended: a status, or None (not ours)
    health: str = UNKNOWN
    health_detail: str = ""  # the last check's result in words: "HTTP 500", "timed out after 5 s"
    stop: RuleStop | None = None  # the stop in progress, while STOPPING
    left_behind: dict[int, float] = field(default_factory=dict)  # pid -> start time (leftovers.py)
    stand_in_noted: bool = False  # the advice for a service under another name was given
    started_wall: float = 0.0  # time.time() of the last start
    recheck_after: float = 0.0  # while starting: doubles from FIRST_RECHECK up to the interval
    settle_until: float = 0.0  # a starter exited 0: "starting" until then, unless it matches
    # Readiness (watchdog.readiness): whether rules --after this one may start.
    ready: bool = False
    waiting_for: tuple[str, ...] = ()  # while WAITING: the rules it waits for
    ready_reported: bool = False  # a plugin said so (engine.set_ready), since the last start
    passed_check: bool = False  # health was healthy at least once since the last start
    message: str = ""  # what the service says of itself (the notify protocol's STATUS=)
    adopted: dict[int, int] = field(default_factory=dict)  # engine.adopt: pid -> its start ticks
    # The last lines of output of the last run that ended (stderr first): time, stream, line.
    last_output: list[dict[str, Any]] = field(default_factory=list)
