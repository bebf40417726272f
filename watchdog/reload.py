"""What a reload changes: the running rules against the ones the config gives now."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from watchdog.rules import Rule

# Options a reload applies through the rules they shape (a matcher, a shell).
SHAPE_RULES = {"match", "shell"}


def definition(rule: Rule) -> tuple[Any, ...]:
    """Everything that says how a rule runs and is matched; its run-time memory is not in it."""
    return (rule.command, rule.argv, rule.program, rule.strategy, rule.stop_signal, rule.settings,
            rule.launch, rule.grace, rule.restart, rule.success_exit, rule.start_timeout)


def same(old: Rule, new: Rule) -> bool:
    try:
        return bool(definition(old) == definition(new))
    except Exception:  # a plugin's setting that cannot be compared: take it as changed
        return False


class Plan:
    def __init__(self) -> None:
        self.added: list[Rule] = []
        self.removed: list[Rule] = []
        self.changed: list[tuple[Rule, Rule]] = []  # (running, new)
        self.unchanged: list[Rule] = []

    def summary(self) -> dict[str, list[str]]:
        return {
            "added": [rule.name for rule in self.added],
            "removed": [rule.name for rule in self.removed],
            "changed": [new.name for _, new in self.changed],
            "unchanged": [rule.name for rule in self.unchanged],
        }


def plan(running: Iterable[Rule], wanted: Iterable[Rule]) -> Plan:
    now = {rule.name: rule for rule in running}
    result = Plan()
    for rule in wanted:
        old = now.pop(rule.name, None)
        if old is None:
            result.added.append(rule)
        elif same(old, rule):
            result.unchanged.append(old)
        else:
            result.changed.append((old, rule))
    result.removed = list(now.values())
    return result


def options_not_applied(running: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """Options whose value changed in a way only a restart of the watchdog applies.

    Per-rule values (``NAME=VALUE``) and the commands are what the rules are
    made of, and the plan applies those; what is left of a repeatable option,
    its bare values, takes a restart: ``--grace 8`` (the default for every
    rule), an ``--init`` task, a plugin.
    """
    changed = []
    for name, value in wanted.items():
        if name in SHAPE_RULES or name == "commands":
            continue
        old = running.get(name)
        if isinstance(value, list | tuple):
            value, old = bare(value), bare(old if isinstance(old, list | tuple) else ())
        if old != value:
            changed.append(name.replace("_", "-"))
    return sorted(changed)


def bare(values: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(value for value in values if not (isinstance(value, str) and "=" in value))
