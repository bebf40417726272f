"""Matcher ``child``: the process a rule's command started, and its descendants.

supervisord's model: a program is the process it started, so two copies of
one command (``numprocs``) are told apart, and a process of the same name
that someone else started is never taken for the service. A descendant seen
once stays the rule's while it lives, even re-parented after its parent
died: the orphaned workers of a dead master are then found, and the service
is started again.
"""

from __future__ import annotations

from watchdog import hookimpl
from watchdog.matchers import Matcher
from watchdog.rules import Rule
from watchdog.snapshot import Proc, Snapshot

NAME = "child"


class Child:
    """Per rule, the processes known to be its own (pid -> start ticks), in ``rule.state``."""

    def __init__(self) -> None:
        # The last snapshot, and each of its processes' children (ppid -> children).
        self.indexed: tuple[Snapshot, dict[int, list[Proc]]] | None = None

    @hookimpl
    def watchdog_matchers(self) -> list[Matcher]:
        return [Matcher(NAME, self.match, describe)]

    @hookimpl
    def watchdog_process_started(self, rule: Rule, pid: int) -> None:
        if rule.strategy == NAME:
            rule.state[NAME] = {pid: None}  # a new start: its start ticks are read at the next check

    def match(self, rule: Rule, snapshot: Snapshot) -> list[Proc]:
        own: dict[int, int | None] = rule.state.get(NAME, {})
        found: dict[int, Proc] = {}
        for pid, ticks in own.items():
            proc = snapshot.get(pid)
            if proc is not None and ticks in (None, proc.start_ticks):
                found[pid] = proc
        children = self.children(snapshot)
        pending = list(found.values())
        while pending:
            for child in children.get(pending.pop().pid, ()):
                if child.pid not in found:
                    found[child.pid] = child
                    pending.append(child)
        rule.state[NAME] = {pid: proc.start_ticks for pid, proc in found.items()}
        return list(found.values())

    def children(self, snapshot: Snapshot) -> dict[int, list[Proc]]:
        """Each process's children in ``snapshot``, worked out once per snapshot for every rule."""
        if self.indexed is None or self.indexed[0] is not snapshot:
            index: dict[int, list[Proc]] = {}
            for proc in snapshot.processes():
                index.setdefault(proc.ppid, []).append(proc)
            self.indexed = (snapshot, index)
        return self.indexed[1]


def describe(rule: Rule) -> str:
    return f"a process started by rule {rule.name!r}"
