"""Matcher ``child``: the process a rule's command started, and its descendants.

supervisord's model: a program is the process it started, so two copies of
one command (``numprocs``) are told apart, and a process of the same name
that someone else started is never taken for the service. A descendant seen
once stays the rule's while it lives, even re-parented after its parent
died; so does one re-parented to the watchdog that is still in the process
group of the command's start (each command runs in a session of its own), a
worker forked between two checks whose master then died.

When the started process dies and leaves others of its group (php-fpm's or
nginx's workers, still holding the socket a new master needs), the service is
down: the rule is restarted, which stops them first, then starts the command.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from watchdog import hookimpl
from watchdog.logs import logger
from watchdog.matchers import Matcher
from watchdog.processes import process_group
from watchdog.rules import Rule
from watchdog.snapshot import Proc, Snapshot

if TYPE_CHECKING:
    from watchdog.api import EngineAPI

NAME = "child"
GROUP = "child-group"


class Child:
    """Per rule, the processes known to be its own (pid -> start ticks), in ``rule.state``."""

    def __init__(self) -> None:
        self.engine: EngineAPI | None = None
        self.stopping = False
        # The last snapshot, and each of its processes' children (ppid -> children).
        self.indexed: tuple[Snapshot, dict[int, list[Proc]]] | None = None

    @hookimpl
    def watchdog_matchers(self) -> list[Matcher]:
        return [Matcher(NAME, self.match, describe)]

    @hookimpl
    def watchdog_process_started(self, rule: Rule, pid: int) -> None:
        if rule.strategy == NAME:
            rule.state[NAME] = {pid: None}  # a new start: its start ticks are read at the next check
            rule.state[GROUP] = pid  # the command leads its own session and process group

    @hookimpl
    def watchdog_started(self, engine: EngineAPI) -> None:
        self.engine = engine

    @hookimpl
    def watchdog_stopping(self) -> None:
        self.stopping = True

    @hookimpl
    def watchdog_process_exited(self, rule: Rule, pid: int, returncode: int | None) -> None:
        engine = self.engine
        if engine is None or self.stopping or rule.strategy != NAME or rule.state.get(GROUP) != pid:
            return
        status = engine.status.get(rule.name)
        if status is None or status.stop is not None or not group_alive(pid):
            return  # a stop under way, or nothing left behind: the usual way
        logger.warning("main process %d died (status %s) and left others of its process group: "
                       "stopping them to start the service again", pid, returncode,
                       extra={"rule": rule.name, "event": "orphaned-workers"})
        engine.restart(rule, f"main process {pid} died")

    def match(self, rule: Rule, snapshot: Snapshot) -> list[Proc]:
        own: dict[int, int | None] = rule.state.get(NAME, {})
        found: dict[int, Proc] = {}
        for pid, ticks in own.items():
            proc = snapshot.get(pid)
            if proc is not None and ticks in (None, proc.start_ticks):
                found[pid] = proc
        children = self.children(snapshot)
        group = rule.state.get(GROUP)
        if group is not None:
            for proc in children.get(os.getpid(), []):  # orphans come to us: PID 1, or subreaper
                if proc.pid not in found and process_group(proc.pid) == group:
                    found[proc.pid] = proc
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


def group_alive(pgid: int) -> bool:
    """Whether process group ``pgid`` has a process left (signal 0 sends nothing)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def describe(rule: Rule) -> str:
    return f"a process started by rule {rule.name!r}"
