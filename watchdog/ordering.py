"""Start-up order: ``--after`` dependencies, ``--priority``, ``--autostart`` and ``--init`` tasks.

A rule ``--after`` others is not started (state ``waiting``) until each of
them is ready (``watchdog.readiness``); a dependency that is never ready
keeps it waiting. On the final stop the order is reversed: a rule is sent its
stop signal only once every rule after it has ended (``stop_waves``).
Unknown names and cycles are usage errors before anything starts.

``--priority NAME=N`` is supervisord's order: rules start in ascending
priority (a rule without one counts as 999, supervisord's default), without
waiting for each other's readiness (that is ``--after``), and stop in
reverse: among rules of one ``--after`` wave, the highest priority stops
first. ``--autostart NAME=false`` leaves a rule stopped until it is asked to
start (``watchdogctl start NAME``).

``--init COMMAND`` tasks run before any service, in order, each to
completion (``watchdog.tasks``); in a config file they are a top-level list,
``init = ["cmd1", "cmd2"]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import click

from watchdog.config import Config
from watchdog.rules import Rule, split_command


def options() -> list[click.Option]:
    return [
        click.Option(
            ["--after"], multiple=True, metavar="NAME=OTHER[,OTHER...]",
            help="Start rule NAME only once each OTHER is ready; stop it before them.",
        ),
        click.Option(
            ["--priority"], multiple=True, metavar="NAME=N",
            help="Start rules in ascending priority (default 999), stop them in reverse; "
                 "no waiting for readiness (that is --after).",
        ),
        click.Option(
            ["--autostart"], multiple=True, metavar="NAME=BOOL",
            help="With NAME=false, rule NAME stays stopped until asked (watchdogctl start NAME).",
        ),
        click.Option(
            ["--init"], multiple=True, metavar="COMMAND",
            help="A task to run to completion before any service starts (repeatable, in order).",
        ),
    ]


def configure(config: Config) -> None:
    """Set ``rule.after`` from ``--after``; reject unknown names, self-references and cycles."""
    names = {rule.name for rule in config.rules}
    for rule, text in config.per_rule("--after", config.options.get("after", ()), repeatable=True):
        others = [word.strip() for word in text.split(",")]
        for other in others:
            if not other:
                raise click.UsageError(f"--after {rule.name}={text}: an empty name")
            if other not in names:
                raise click.UsageError(f"--after {rule.name}={text}: no rule is named {other!r} "
                                       f"(rules: {', '.join(sorted(names))})")
            if other == rule.name:
                raise click.UsageError(f"--after {rule.name}={text}: a rule cannot come after itself")
            if other not in rule.after:
                rule.after += (other,)
    cycle = find_cycle(config.rules)
    if cycle:
        raise click.UsageError(f"--after: a dependency cycle: {' -> '.join(cycle)}")
    for rule, text in config.per_rule("--priority", config.options.get("priority", ())):
        try:
            rule.priority = int(text.strip())
        except ValueError:
            raise click.UsageError(f"--priority {rule.name}={text}: not a whole number") from None
    for rule, text in config.per_rule("--autostart", config.options.get("autostart", ())):
        rule.autostart = parse_bool(f"--autostart {rule.name}={text}", text)
    # Rules are checked, so started, in list order: a stable sort keeps the command line's
    # order among equal priorities.
    config.rules.sort(key=priority)


DEFAULT_PRIORITY = 999  # supervisord's


def priority(rule: Rule) -> int:
    return DEFAULT_PRIORITY if rule.priority is None else rule.priority


def parse_bool(flag: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "on", "1"):
        return True
    if lowered in ("false", "no", "off", "0"):
        return False
    raise click.UsageError(f"{flag}: expected true or false")


def init_tasks(commands: Sequence[str], shell: bool) -> list[Rule]:
    """One rule per ``--init`` command. A program that cannot be run is found when it is
    run, and fails the start-up like a task that exits non-zero."""
    tasks = []
    for command in commands:
        try:
            words = split_command(command)
        except click.UsageError as exc:
            raise click.UsageError(f"--init: {exc.message}") from None
        argv = ("/bin/sh", "-c", command) if shell else tuple(words)
        tasks.append(Rule(name="init", command=command, argv=argv, program=words[0]))
    return tasks


def find_cycle(rules: Iterable[Rule]) -> list[str]:
    """A dependency cycle as ``[a, b, ..., a]``, or ``[]`` when there is none."""
    after = {rule.name: rule.after for rule in rules}
    done: set[str] = set()
    path: list[str] = []

    def visit(name: str) -> list[str]:
        if name in path:
            return [*path[path.index(name):], name]
        if name in done:
            return []
        path.append(name)
        for other in after.get(name, ()):
            found = visit(other)
            if found:
                return found
        path.pop()
        done.add(name)
        return []

    for name in after:
        found = visit(name)
        if found:
            return found
    return []


def stop_waves(rules: Sequence[Rule]) -> dict[str, int]:
    """Each rule's place in the final stop: 0 for the first to stop, then upwards.

    A rule's ``--after`` wave is one more than the highest wave of the rules
    after it, so it is stopped only once they are gone (needs an acyclic
    graph); within one such wave, higher ``--priority`` stops first.
    """
    after = after_waves(rules)
    keys = sorted({(after[rule.name], -priority(rule)) for rule in rules})
    rank = {key: number for number, key in enumerate(keys)}
    return {rule.name: rank[(after[rule.name], -priority(rule))] for rule in rules}


def after_waves(rules: Sequence[Rule]) -> dict[str, int]:
    """The waves of ``--after`` alone: 0 for rules nothing comes after."""
    dependents: dict[str, list[str]] = {rule.name: [] for rule in rules}
    for rule in rules:
        for other in rule.after:
            dependents[other].append(rule.name)
    waves: dict[str, int] = {}

    def wave(name: str) -> int:
        if name not in waves:
            waves[name] = 1 + max((wave(d) for d in dependents[name]), default=-1)
        return waves[name]

    for rule in rules:
        wave(rule.name)
    return waves
