"""Start-up order: ``--after NAME=OTHER[,OTHER...]`` dependencies and ``--init`` tasks.

A rule ``--after`` others is not started (state ``waiting``) until each of
them is ready (``watchdog.readiness``); a dependency that is never ready
keeps it waiting. On the final stop the order is reversed: a rule is sent its
stop signal only once every rule after it has ended (``stop_waves``).
Unknown names and cycles are usage errors before anything starts.

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
    """Each rule's place in the final stop: 0 for rules nothing comes after, then upwards.

    A rule's wave is one more than the highest wave of the rules after it, so
    it is stopped only once they are gone. Needs an acyclic graph.
    """
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
