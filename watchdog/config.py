"""What plugins see of the parsed command line while they configure themselves."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import click

from watchdog.rules import Rule, split_assignment


@dataclass
class Config:
    """The rules and every option value, for ``watchdog_configure``."""

    rules: list[Rule]
    options: Mapping[str, Any]
    strategy_flags: dict[str, str] = field(default_factory=dict)

    def per_rule(self, flag: str, values: Iterable[str]) -> list[tuple[Rule, str]]:
        """Parse ``NAME=VALUE`` values of ``flag``; each NAME must name a rule."""
        by_name = {rule.name: rule for rule in self.rules}
        pairs = []
        for value in values:
            name, rest = split_assignment(flag, value)
            if name not in by_name:
                known = ", ".join(by_name)
                raise click.UsageError(f"{flag} {value!r}: no rule is named {name!r} (rules: {known})")
            pairs.append((by_name[name], rest))
        return pairs

    def use_strategy(self, rule: Rule, strategy: str, flag: str) -> None:
        """Let a per-rule flag choose ``rule``'s matcher; two such flags conflict."""
        earlier = self.strategy_flags.get(rule.name)
        if earlier is not None and earlier != flag:
            raise click.UsageError(
                f"rule {rule.name!r} is given both {earlier} and {flag}: choose one matcher"
            )
        self.strategy_flags[rule.name] = flag
        rule.strategy = strategy

    def apply_default_strategy(self, strategy: str) -> None:
        """``--match``: the strategy of every rule no per-rule flag chose."""
        for rule in self.rules:
            if rule.name not in self.strategy_flags:
                rule.strategy = strategy
