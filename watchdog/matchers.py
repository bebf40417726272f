"""Matchers by name: how a rule's processes are recognised in the process table.

A plugin registers matchers through ``watchdog_matchers``; the core builds
``--match`` and each matcher's per-rule flag from them, settles which
matcher each rule uses, and calls that one alone when it checks the rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import click
import pluggy

from watchdog.config import Config
from watchdog.rules import Rule
from watchdog.snapshot import Proc, Snapshot


class Matcher:
    """One way to find a rule's processes.

    ``match(rule, snapshot)`` returns the rule's processes (use the snapshot's
    accessors: they leave out zombies and watchdog processes);
    ``describe(rule)`` says what it looks for ("a process named 'sshd'").

    A matcher with a ``flag`` (``"--regex"``) gets a per-rule option
    ``FLAG NAME=VALUE``: ``parse(VALUE)`` becomes ``rule.settings[name]`` and
    the flag makes the rule use this matcher. ``default(rule)`` gives that
    setting to a rule ``--match NAME`` selects without the flag; when it is
    None, such a rule is a usage error. ``parse`` raises ValueError with a
    message for bad input.
    """

    def __init__(self, name: str, match: Callable[[Rule, Snapshot], list[Proc]],
                 describe: Callable[[Rule], str], flag: str | None = None, metavar: str = "NAME=VALUE",
                 help: str = "", parse: Callable[[str], Any] = str,
                 default: Callable[[Rule], Any] | None = None, proves_ownership: bool = False) -> None:
        self.name = name
        self.match = match
        self.describe = describe
        self.flag = flag
        self.metavar = metavar
        self.help = help
        self.parse = parse
        self.default = default
        # True when a match is evidence of ownership in itself (a pidfile that only root
        # or the process's owner can write). Otherwise a process of another uid than the
        # rule's is the rule's only if it descends from what the rule started.
        self.proves_ownership = proves_ownership

    @property
    def param_name(self) -> str:
        return (self.flag or "").lstrip("-").replace("-", "_")

    @property
    def value_name(self) -> str:
        """What the flag's value is called: PATTERN in ``NAME=PATTERN``."""
        return self.metavar.partition("=")[2] or "VALUE"

    def flag_for(self, rule_name: str) -> str:
        """The per-rule flag as a user writes it for ``rule_name``: ``--regex web=PATTERN``."""
        return f"{self.flag} {rule_name}={self.value_name}"


class Matchers:
    """Every registered matcher, by name, in the order their plugins registered."""

    def __init__(self, matchers: Iterable[Matcher]) -> None:
        self.by_name: dict[str, Matcher] = {}
        for matcher in matchers:
            if matcher.name in self.by_name:
                raise click.UsageError(f"two plugins register a matcher named {matcher.name!r}")
            self.by_name[matcher.name] = matcher

    @classmethod
    def of(cls, pm: pluggy.PluginManager) -> Matchers:
        """The matchers ``pm``'s plugins register (pluggy answers last-registered first)."""
        return cls(matcher for found in reversed(pm.hook.watchdog_matchers()) for matcher in found)

    def options(self) -> list[click.Option]:
        return [
            click.Option([m.flag], multiple=True, metavar=m.metavar, help=m.help)
            for m in self.by_name.values() if m.flag
        ]

    def configure(self, config: Config, default_name: str) -> None:
        """Give each rule its matcher: a per-rule flag's, else ``default_name``'s."""
        chosen: dict[str, str] = {}  # rule name -> the flag that chose its matcher
        for matcher in self.by_name.values():
            if not matcher.flag:
                continue
            for rule, text in config.per_rule(matcher.flag, config.options.get(matcher.param_name, ())):
                earlier = chosen.get(rule.name)
                if earlier is not None:
                    raise click.UsageError(
                        f"rule {rule.name!r} is given both {earlier} and {matcher.flag}: choose one matcher"
                    )
                try:
                    rule.settings[matcher.name] = matcher.parse(text)
                except ValueError as exc:
                    raise click.UsageError(f"{matcher.flag} {rule.name}={text}: {exc}") from None
                chosen[rule.name] = matcher.flag
                rule.strategy = matcher.name
        default = self.by_name[default_name]
        for rule in config.rules:
            if rule.name in chosen:
                continue
            rule.strategy = default.name
            if default.flag and default.default is None:
                raise click.UsageError(
                    f"--match {default.name}: rule {rule.name!r} needs {default.flag_for(rule.name)}"
                )
            if default.default is not None:
                rule.settings[default.name] = default.default(rule)

    def match(self, rule: Rule, snapshot: Snapshot) -> list[Proc]:
        return list(self.by_name[rule.strategy].match(rule, snapshot))

    def describe(self, rule: Rule) -> str:
        return self.by_name[rule.strategy].describe(rule)

    def proves_ownership(self, rule: Rule) -> bool:
        return self.by_name[rule.strategy].proves_ownership

    def with_flags(self) -> list[Matcher]:
        """The matchers a per-rule flag selects."""
        return [matcher for matcher in self.by_name.values() if matcher.flag]

    def ways_to_match(self, rule: Rule) -> str:
        """The flags that would give ``rule`` another matcher, as advice:
        ``--regex web=PATTERN or --pidfile web=PATH`` (empty when no other has one)."""
        return " or ".join(matcher.flag_for(rule.name) for matcher in self.with_flags()
                           if matcher.name != rule.strategy)
