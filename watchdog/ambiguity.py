"""Rules whose matchers cannot tell their processes apart: a usage error, before anything starts.

``--rule web="python3 server.py" --rule worker="python3 worker.py"`` under the
default matcher makes two rules that both look for a process named python3:
each would take the other's process for its own, so one service would never
start, or both would be signalled for either. Two rules of one strategy whose
matchers describe the same search are such a pair.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from watchdog.matchers import Matchers
from watchdog.rules import Rule


def check_distinguishable(rules: Sequence[Rule], matchers: Matchers) -> None:
    """Raise ``click.UsageError`` naming the first two rules that look for the same processes."""
    seen: dict[tuple[str, str], Rule] = {}
    for rule in rules:
        looks_for: str | None = matchers.describe(rule)
        if looks_for is None:  # a third-party matcher that cannot say: nothing to compare
            continue
        first = seen.setdefault((rule.strategy, looks_for), rule)
        if first is not rule:
            ways = ", or ".join(f"{matcher.flag_for(first.name)} and {matcher.flag_for(rule.name)}"
                                for matcher in matchers.with_flags())
            raise click.UsageError(
                f"rules {first.name!r} and {rule.name!r} both look for {looks_for}, so neither "
                f"could tell its processes from the other's"
                + (f": tell them apart with {ways}" if ways else "")
            )
