"""What the control socket says of rules: each rule as JSON, and the feed of their changes.

A change is a new state, health or give-up; the plugin calls ``changes``
after every hook that may bring one, so a follower sees each step
(``stopping``, ``missing``, ``starting``, ``running``) in order.
"""

from __future__ import annotations

import json
import time
from typing import Any

from watchdog.api import EngineAPI
from watchdog.rules import Rule
from watchdog.state import RUNNING, UNHEALTHY, RuleStatus
from watchdog.unixhttp import Connection

# The fields of a rule that an event line carries.
EVENT_FIELDS = ("state", "health", "ready", "given_up", "pids", "restarts", "last_exit", "reason")


def is_ready(status: RuleStatus) -> bool:
    """Running, and no health check says otherwise."""
    return status.state == RUNNING and status.health != UNHEALTHY


def rule_view(rule: Rule, status: RuleStatus) -> dict[str, Any]:
    """One rule as ``GET /v1/status`` shows it: the status file's fields, plus health."""
    return {
        "name": rule.name, "command": rule.command, "matcher": rule.strategy,
        "state": status.state, "given_up": status.given_up, "pids": list(status.pids),
        "restarts": status.restarts, "last_exit": status.last_exit, "since": status.since,
        "reason": status.reason, "health": status.health, "health_detail": status.health_detail,
        "ready": is_ready(status),
    }


def mark(status: RuleStatus) -> tuple[str, str, bool]:
    return (status.state, status.health, status.given_up)


class Feed:
    """Each rule's state as last told, and the clients following changes (with the rules they follow)."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[str, str, bool]] = {}
        self.followers: dict[Connection, set[str]] = {}

    def start(self, engine: EngineAPI) -> None:
        self.seen = {name: mark(status) for name, status in engine.status.items()}

    def follow(self, engine: EngineAPI, connection: Connection, names: list[str]) -> None:
        """Where each rule stands (event ``current``), then every change until the client leaves."""
        self.followers[connection] = set(names)
        connection.on_close.append(lambda: self.unfollow(connection))
        for rule in engine.rules:
            if not names or rule.name in names:
                connection.send(self.line(engine, rule.name, "current", None, rule))

    def unfollow(self, connection: Connection) -> None:
        self.followers.pop(connection, None)

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

    def publish(self, engine: EngineAPI, name: str, event: str, previous: str | None) -> None:
        if not self.followers:
            return
        data = self.line(engine, name, event, previous)
        for connection, names in list(self.followers.items()):
            if not names or name in names:
                connection.send(data)

    def line(self, engine: EngineAPI, name: str, event: str, previous: str | None,
             rule: Rule | None = None) -> bytes:
        entry: dict[str, Any] = {"time": time.time(), "event": event, "rule": name, "previous": previous}
        status = engine.status.get(name)
        if rule is None:  # follow() knows it: a search per line made a follower of n rules cost n²
            rule = next((rule for rule in engine.rules if rule.name == name), None)
        if status is None or rule is None:  # removed: nothing more to say than its name
            entry["state"] = None
        else:
            view = rule_view(rule, status)
            entry.update((key, view[key]) for key in EVENT_FIELDS)
        return (json.dumps(entry) + "\n").encode()
