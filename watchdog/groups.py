"""Groups of rules, and the names ``watchdogctl`` accepts for them (supervisorctl's habits).

A rule is in the group ``--group NAME=GROUP`` gives it, and always in a group
of its own name, as every supervisord program is. ``GROUP:*`` names every rule
of a group, ``GROUP:NAME`` one of them, and ``all`` every rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for the type checker alone: watchdog.view, on the exec probe's path, uses this
    from watchdog.rules import Rule

GROUP = "group"  # rule.settings key


def group_of(rule: Rule) -> str:
    return str(rule.settings.get(GROUP) or rule.name)


def expand(names: Iterable[str], rules: Sequence[Rule]) -> tuple[list[str], list[str]]:
    """The rule names ``names`` stand for, in order without repeats, and the names that name nothing."""
    found: list[str] = []
    unknown: list[str] = []
    known = {rule.name for rule in rules}
    for name in names:
        if name in known:
            found.append(name)
            continue
        if name == "all":
            found.extend(rule.name for rule in rules)
            continue
        group, sep, member = name.partition(":")
        members = [rule.name for rule in rules if sep and group_of(rule) == group
                   and member in ("*", rule.name)]
        if members:
            found.extend(members)
        else:
            unknown.append(name)
    return list(dict.fromkeys(found)), unknown
