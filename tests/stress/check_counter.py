"""A watchdog plugin that counts the watchdog's checks and starts (tests/stress/longrun.py, tests).

Loaded with ``-p check_counter:CheckCounter`` (this directory on ``PYTHONPATH``).
The engine calls ``watchdog_checked`` once at the end of every check, and
``watchdog_process_started`` at every start of a command, so the counts are
exact, not estimated from elapsed time. Every ``EVERY`` checks (or every
``STRESS_COUNTS_EVERY``: tests that wait for checks set 1), and at every start,
the plugin writes ``CHECKS STARTS`` to the file named by the environment
variable ``STRESS_COUNTS_FILE``, through a temporary file and a rename so a
reader never sees half a line. It holds two integers and opens a file for a
moment each time: nothing that could grow.
"""

from __future__ import annotations

import os

from watchdog import hookimpl
from watchdog.api import EngineAPI
from watchdog.rules import Rule

EVERY = 100


class CheckCounter:
    def __init__(self) -> None:
        self.path = os.environ.get("STRESS_COUNTS_FILE")
        self.every = int(os.environ.get("STRESS_COUNTS_EVERY", EVERY))  # tests count each check
        self.checks = 0
        self.starts = 0

    def write(self) -> None:
        if self.path is None:
            return
        tmp = f"{self.path}.tmp"
        with open(tmp, "w") as f:
            f.write(f"{self.checks} {self.starts}\n")
        os.replace(tmp, self.path)

    @hookimpl
    def watchdog_checked(self, engine: EngineAPI) -> None:
        self.checks += 1
        if self.checks % self.every == 0:
            self.write()

    @hookimpl
    def watchdog_process_started(self, rule: Rule, pid: int) -> None:
        self.starts += 1
        self.write()

    @hookimpl
    def watchdog_stopped(self, exit_code: int) -> None:
        self.write()
