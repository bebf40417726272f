"""Matcher ``regex``: ``re.search`` over each process's command line.

``--regex NAME=PATTERN`` sets the pattern of rule NAME (and makes it a regex
rule); a rule given ``--match regex`` and no pattern looks for its own command
line, as written, anywhere in a process's command line. The command line is
the arguments joined by single spaces, as ``ps -o args`` shows them.
"""

from __future__ import annotations

import re

import click

from watchdog import hookimpl
from watchdog.config import Config
from watchdog.rules import Rule
from watchdog.snapshot import Proc, Snapshot

STRATEGY = "regex"
FLAG = "--regex"


@hookimpl
def watchdog_add_options() -> list[click.Option]:
    return [
        click.Option(
            [FLAG], multiple=True, metavar="NAME=PATTERN",
            help="Match rule NAME by a Python regex searched in each command line.",
        )
    ]


@hookimpl
def watchdog_strategies() -> list[str]:
    return [STRATEGY]


@hookimpl
def watchdog_configure(config: Config) -> None:
    for rule, pattern in config.per_rule(FLAG, config.options.get("regex", ())):
        try:
            rule.settings[STRATEGY] = re.compile(pattern)
        except re.error as exc:
            raise click.UsageError(f"{FLAG} {rule.name}={pattern}: bad pattern: {exc}") from None
        config.use_strategy(rule, STRATEGY, FLAG)


def pattern_of(rule: Rule) -> re.Pattern[str]:
    if STRATEGY not in rule.settings:
        rule.settings[STRATEGY] = re.compile(re.escape(rule.command))
    pattern: re.Pattern[str] = rule.settings[STRATEGY]
    return pattern


@hookimpl(trylast=True)
def watchdog_match(rule: Rule, snapshot: Snapshot) -> list[Proc] | None:
    if rule.strategy != STRATEGY:
        return None
    search = pattern_of(rule).search
    # Kernel threads have no command line, so they are never a match.
    return [proc for proc, line in snapshot.command_lines() if search(line)]


@hookimpl(trylast=True)
def watchdog_describe(rule: Rule) -> str | None:
    if rule.strategy != STRATEGY:
        return None
    if STRATEGY in rule.settings and rule.settings[STRATEGY].pattern != re.escape(rule.command):
        return f"a command line matching {rule.settings[STRATEGY].pattern!r}"
    return f"a command line containing {rule.command!r}"
