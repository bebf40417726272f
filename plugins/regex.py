"""Matcher ``regex``: ``re.search`` over each process's command line.

``--regex NAME=PATTERN`` sets the pattern of rule NAME (and makes it a regex
rule); a rule given ``--match regex`` and no pattern looks for its own command
line, as written, anywhere in a process's command line. The command line is
the arguments joined by single spaces, as ``ps -o args`` shows them.
"""

from __future__ import annotations

import re

from watchdog import hookimpl
from watchdog.matchers import Matcher
from watchdog.rules import Rule
from watchdog.snapshot import Proc, Snapshot

NAME = "regex"


def parse(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"bad pattern: {exc}") from None


def own_command(rule: Rule) -> re.Pattern[str]:
    """``--match regex`` without a pattern: the rule's command line, as written."""
    return re.compile(re.escape(rule.command))


def match(rule: Rule, snapshot: Snapshot) -> list[Proc]:
    search = rule.settings[NAME].search
    # Kernel threads have no command line, so they are never a match.
    return [proc for proc, line in snapshot.command_lines() if search(line)]


def describe(rule: Rule) -> str:
    pattern = rule.settings[NAME].pattern
    if pattern == re.escape(rule.command):
        return f"a command line containing {rule.command!r}"
    return f"a command line matching {pattern!r}"


@hookimpl
def watchdog_matchers() -> list[Matcher]:
    return [Matcher(NAME, match, describe, flag="--regex", metavar="NAME=PATTERN",
                    help="Match rule NAME by a Python regex searched in each command line.",
                    parse=parse, default=own_command)]
