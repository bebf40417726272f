"""What plugins see of the parsed command line while they configure themselves."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import click

from watchdog.rules import Rule, split_assignment


class Config:
    """The rules and every option value, for ``watchdog_configure``."""

    def __init__(self, rules: list[Rule], options: Mapping[str, Any],
                 reread: Callable[[], Config] | None = None) -> None:
        self.rules = rules
        self.options = options
        # Reads the watchdog's command line, environment and config file again, the
        # way start-up did, and returns the Config they give now, configured by a
        # fresh set of plugin objects (raises click.UsageError): what reload applies.
        self.reread = reread

    def per_rule(self, flag: str, values: Iterable[str], *, repeatable: bool = False
                 ) -> list[tuple[Rule, str]]:
        """Parse ``NAME=VALUE`` values of ``flag``; each NAME must name a rule.

        Unless ``repeatable``, one rule given the flag twice is a usage error
        naming both values (a flag still replaces the config file's value:
        the two are merged before this).
        """
        by_name = {rule.name: rule for rule in self.rules}
        pairs = []
        seen: dict[str, str] = {}
        for value in values:
            name, rest = split_assignment(flag, value)
            if name not in by_name:
                known = ", ".join(by_name)
                raise click.UsageError(f"{flag} {value!r}: no rule is named {name!r} (rules: {known})")
            if not repeatable and name in seen:
                if seen[name] == rest:
                    continue
                raise click.UsageError(
                    f"{flag} is given twice for rule {name!r} ({seen[name]!r} and {rest!r}): give it once"
                )
            seen[name] = rest
            pairs.append((by_name[name], rest))
        return pairs

    def with_default(self, flag: str, values: Iterable[str]) -> tuple[str | None, list[tuple[Rule, str]]]:
        """Values of a flag that takes ``VALUE``, the default for every rule, or ``NAME=VALUE``,
        one rule's: the last bare value (None without one), and the per-rule pairs."""
        values = list(values)
        bare = [value for value in values if "=" not in value]
        pairs = self.per_rule(flag, [value for value in values if "=" in value])
        return (bare[-1] if bare else None), pairs

    def parse_with_default(self, flag: str, param_type: click.ParamType[Any], default: Any
                           ) -> tuple[Any, list[tuple[Rule, Any]]]:
        """``with_default`` of option ``flag``'s values, each converted by ``param_type``;
        ``default`` when no bare value is given. Bad values are usage errors naming the flag."""
        given = self.options.get(flag.lstrip("-").replace("-", "_"), ())
        if not isinstance(given, list | tuple):  # one value, as a program building a Config may pass
            given = (str(given),)
        bare, pairs = self.with_default(flag, given)

        def convert(text: str, rule: Rule | None = None) -> Any:
            try:
                return param_type.convert(text.strip(), None, None)
            except click.BadParameter as exc:
                where = f" (rule {rule.name})" if rule is not None else ""
                raise click.UsageError(f"Invalid value for '{flag}'{where}: {exc.message}") from None

        value = default if bare is None else convert(bare)
        return value, [(rule, convert(text, rule)) for rule, text in pairs]
