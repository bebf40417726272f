"""The commands the engine started: spawning them with their output captured, and reaping.

Every command gets pipes for stdout and stderr (``watchdog.output``): this is
the one place where a start is given them.
"""

from __future__ import annotations

import os

from watchdog import processes
from watchdog.output import SETTINGS_KEY, Capture
from watchdog.rules import Rule


class Children:
    """Every child we started and have not reaped yet, with its rule."""

    def __init__(self, capture: Capture) -> None:
        self._rules: dict[int, Rule] = {}
        self.capture = capture

    def __bool__(self) -> bool:
        return bool(self._rules)

    def pids(self) -> list[int]:
        return list(self._rules)

    def spawn(self, rule: Rule) -> int:
        """Start ``rule``'s command; raises OSError when it cannot be executed."""
        stdout, stderr, write_ends, run = self.capture.pipes(rule.name, rule.settings.get(SETTINGS_KEY))
        try:
            pid = processes.spawn(rule.argv, stdout, stderr, rule.env, rule.launch)
        finally:
            for fd in write_ends:  # the child holds them now; EOF comes when it is done
                os.close(fd)
        self.capture.started(rule.name, run, pid)
        self._rules[pid] = rule
        return pid

    def reap(self) -> list[tuple[int, Rule | None, int]]:
        """``(pid, rule, returncode)`` for each child that ended; rule None for adopted orphans."""
        return [(pid, self._rules.pop(pid, None), code) for pid, code in processes.reap()]

    def drain_output(self) -> None:
        self.capture.drain()
