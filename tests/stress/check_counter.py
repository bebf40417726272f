"""A watchdog plugin for tests/stress/longrun.py: counts the watchdog's checks and starts.

Loaded with ``-p check_counter`` (this directory on ``PYTHONPATH``). The engine
calls ``watchdog_checked`` once at the end of every check, and
``watchdog_process_started`` at every start of a command, so the counts are
exact, not estimated from elapsed time. Every ``EVERY`` checks, and at every
start, the plugin writes ``CHECKS STARTS`` to the file named by the
environment variable ``STRESS_COUNTS_FILE``, through a temporary file and a
rename so a reader never sees half a line. It holds two integers and opens a
file for a moment each time: nothing that could grow.
"""

from __future__ import annotations

import os

from watchdog import hookimpl
from watchdog.engine import Engine
from watchdog.rules import Rule

EVERY = 100
PATH = os.environ.get("STRESS_COUNTS_FILE")
checks = 0
starts = 0


def write() -> None:
    if PATH is None:
        return
    tmp = f"{PATH}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{checks} {starts}\n")
    os.replace(tmp, PATH)


@hookimpl
def watchdog_checked(engine: Engine) -> None:
    global checks
    checks += 1
    if checks % EVERY == 0:
        write()


@hookimpl
def watchdog_process_started(rule: Rule, pid: int) -> None:
    global starts
    starts += 1
    write()


@hookimpl
def watchdog_stopped(exit_code: int) -> None:
    write()
