"""The commands the engine started: spawning them (output relayed or inherited) and reaping."""

from __future__ import annotations

import os
import sys

from watchdog import processes
from watchdog.events import Waiter
from watchdog.output import Prefixer
from watchdog.rules import Rule


class Children:
    """Every child we started and have not reaped yet, with its rule."""

    def __init__(self, waiter: Waiter, names: list[str], prefix: bool) -> None:
        self._rules: dict[int, Rule] = {}
        self.prefixer = Prefixer(waiter, names, sys.stdout.buffer, sys.stderr.buffer) if prefix else None

    def __bool__(self) -> bool:
        return bool(self._rules)

    def pids(self) -> list[int]:
        return list(self._rules)

    def spawn(self, rule: Rule) -> int:
        """Start ``rule``'s command; raises OSError when it cannot be executed."""
        write_ends: list[int] = []
        try:
            if self.prefixer is not None:
                stdout, stderr, write_ends = self.prefixer.pipes(rule.name)
                pid = processes.spawn(rule.argv, stdout, stderr, rule.env, rule.launch)
            else:
                pid = processes.spawn(rule.argv, env=rule.env, launch=rule.launch)
        finally:
            for fd in write_ends:  # the child holds them now; EOF comes when it is done
                os.close(fd)
        self._rules[pid] = rule
        return pid

    def reap(self) -> list[tuple[int, Rule | None, int]]:
        """``(pid, rule, returncode)`` for each child that ended; rule None for adopted orphans."""
        return [(pid, self._rules.pop(pid, None), code) for pid, code in processes.reap()]

    def drain_output(self) -> None:
        if self.prefixer is not None:
            self.prefixer.drain()
