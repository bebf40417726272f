"""The control socket's feed of rule changes (``GET /v1/events``).

Each change of a run state is one line, published from the hook of that
very change (``watchdog_rule_state``) with its own reason, so a follower
sees each step (``stopping``, ``missing``, ``starting``, ``running``) in
order. A change of health, readiness or give-up is one line too: the
plugin calls ``changes`` after every hook that may bring one.
"""

from __future__ import annotations

import json
import time
from typing import Any

from watchdog.api import EngineAPI
from watchdog.rules import Rule
from watchdog.state import RuleStatus
from watchdog.unixhttp import Connection
from watchdog.view import EVENT_FIELDS, rule_view

Mark = tuple[str, str, bool, bool]


def mark(status: RuleStatus) -> Mark:
    return (str(status.state), status.health, status.given_up, status.ready)


class Feed:
    """Each rule's state as last told, and the clients following changes (with the rules they follow)."""

    def __init__(self) -> None:
        self.seen: dict[str, Mark] = {}
        self.followers: dict[Connection, set[str]] = {}

    def start(self, engine: EngineAPI) -> None:
        self.seen = {name: mark(status) for name, status in engine.status.items()}

    def follow(self, engine: EngineAPI, connection: Connection, names: list[str]) -> None:
        """Where each rule stands (event ``current``), then every change until the client leaves."""
        self.followers[connection] = set(names)
        connection.on_close.append(lambda: self.unfollow(connection))
        for rule in engine.rules:
            if not names or rule.name in names:
                connection.send(self.line(engine, rule.name, "current", None, rule=rule))

    def unfollow(self, connection: Connection) -> None:
        self.followers.pop(connection, None)

    def transition(self, engine: EngineAPI, rule: Rule, old: str, new: str, reason: str) -> None:
        """One change of run state, with the reason of that change."""
        status = engine.status.get(rule.name)
        if status is None:
            return
        self.seen[rule.name] = mark(status)
        self.publish(engine, rule.name, "changed", old, {"state": new, "reason": reason})

    def changes(self, engine: EngineAPI) -> None:
        for name, status in engine.status.items():
            now, before = mark(status), self.seen.get(name)
            if before is not None and now != before:
                self.seen[name] = now
                self.publish(engine, name, "changed", before[0])

    def added(self, engine: EngineAPI, rule: Rule) -> None:
        self.seen[rule.name] = mark(engine.status[rule.name])
        self.publish(engine, rule.name, "added", None)

    def removed(self, engine: EngineAPI, rule: Rule) -> None:
        before = self.seen.pop(rule.name, None)
        self.publish(engine, rule.name, "removed", before[0] if before else None)

    def publish(self, engine: EngineAPI, name: str, event: str, previous: str | None,
                override: dict[str, Any] | None = None) -> None:
        if not self.followers:
            return
        data = self.line(engine, name, event, previous, override)
        for connection, names in list(self.followers.items()):
            if not names or name in names:
                connection.send(data)

    def exited(self, rule: Rule, pid: int, returncode: int | None, output: list[dict[str, Any]]) -> None:
        """Event ``exited``: the service (not one worker of it) ended, with its last lines."""
        if not self.followers:
            return
        entry = {"time": time.time(), "event": "exited", "rule": rule.name, "pid": pid,
                 "status": returncode, "last_output": output}
        data = (json.dumps(entry) + "\n").encode()
        for connection, names in list(self.followers.items()):
            if not names or rule.name in names:
                connection.send(data)

    def line(self, engine: EngineAPI, name: str, event: str, previous: str | None,
             override: dict[str, Any] | None = None, rule: Rule | None = None) -> bytes:
        entry: dict[str, Any] = {"time": time.time(), "event": event, "rule": name, "previous": previous}
        status = engine.status.get(name)
        if rule is None:  # follow() knows it: a search per line made a follower of n rules cost n²
            rule = next((rule for rule in engine.rules if rule.name == name), None)
        if status is None or rule is None:  # removed: nothing more to say than its name
            entry["state"] = None
        else:
            view = rule_view(rule, status)
            entry.update((key, view[key]) for key in EVENT_FIELDS)
            entry.update(override or {})
        return (json.dumps(entry) + "\n").encode()
