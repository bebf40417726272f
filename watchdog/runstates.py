"""The words of a rule's run: its run states and its health, as every output shows them.

Apart from ``watchdog.state`` (a rule's run) so that ``watchdog --status``,
which only compares words, imports the words alone.
"""

from __future__ import annotations

from enum import StrEnum


class RunState(StrEnum):
    """Run states, as the status file, ``--status``, the events and the hooks show them.

    A ``StrEnum``: each compares equal to (and prints as) its word, ``"running"``.
    """

    WAITING = "waiting"  # not started: a rule it comes --after is not ready (``waiting_for``)
    STARTING = "starting"  # a command of its own still runs, or a starter just exited 0
    RUNNING = "running"  # its matcher finds its processes
    MISSING = "missing"  # nothing matches and nothing is starting: actions start it
    STOPPING = "stopping"  # stop signal sent; KILL at the grace (engine.stop, engine.restart)
    STOPPED = "stopped"  # stopped on request; stays down until engine.start
    EXITED = "exited"  # --restart no/on-failure: its command ended with a success status
    FAILED = "failed"  # --restart no: it ended otherwise, or was not ready by --start-timeout


STARTING = RunState.STARTING
RUNNING = RunState.RUNNING
MISSING = RunState.MISSING
STOPPING = RunState.STOPPING
STOPPED = RunState.STOPPED
WAITING = RunState.WAITING
EXITED = RunState.EXITED
FAILED = RunState.FAILED
STATES = tuple(RunState)
# States no check moves a rule out of: only engine.start (or a restart) does.
FINAL = (STOPPED, EXITED, FAILED)

# Health, as checks report it (engine.set_health); a rule without checks stays unknown.
UNKNOWN = "unknown"
HEALTHY = "healthy"
UNHEALTHY = "unhealthy"
