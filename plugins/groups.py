"""Plugin ``groups``: ``--group NAME=GROUP``, so ``watchdogctl stop GROUP:*`` acts on all its rules.

supervisord's ``[group:x]`` and ``numprocs`` copies become such groups.
"""

from __future__ import annotations

import click

from watchdog import hookimpl
from watchdog.config import Config
from watchdog.groups import GROUP


@hookimpl
def watchdog_add_options() -> list[click.Option]:
    return [click.Option(
        ["--group"], multiple=True, metavar="NAME=GROUP",
        help="Put rule NAME in GROUP: watchdogctl then accepts GROUP:* for all of its rules.",
    )]


@hookimpl
def watchdog_configure(config: Config) -> None:
    for rule, text in config.per_rule("--group", config.options.get("group", ())):
        group = text.strip()
        if not group or any(char in group for char in " :/*"):
            raise click.UsageError(f"--group {rule.name}={text}: a group name has no spaces, "
                                   "colons, slashes or stars")
        rule.settings[GROUP] = group
