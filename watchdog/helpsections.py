"""``watchdog --help`` in sections a person reads: options grouped by the task they serve.

A plugin's options go under the heading its name is given here; a plugin the
core has no heading for (a third-party one) gets a section of its own, named
after it, so nothing is ever left out of the help.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import click

RULES = "Rules and matching"
KEEPING_ALIVE = "Keeping services alive"
SERVICE = "User, environment, directory and limits"
HEALTH = "Health checks and limits"
ORDER = "Start-up order and readiness"
CONTROL = "Control and status"
OUTPUT = "Output"
PLUGINS = "Plugins and configuration"

ORDERED = (RULES, KEEPING_ALIVE, SERVICE, HEALTH, ORDER, CONTROL, OUTPUT, PLUGINS)

# The core's own options, by parameter name.
CORE = {
    "rule": RULES, "match": RULES, "shell": RULES, "scope": RULES,
    "interval": KEEPING_ALIVE, "once": KEEPING_ALIVE, "check": KEEPING_ALIVE, "grace": KEEPING_ALIVE,
    "stop_signal": KEEPING_ALIVE, "forward_signals": KEEPING_ALIVE, "no_pidfd": KEEPING_ALIVE,
    "user": SERVICE, "env": SERVICE, "env_file": SERVICE, "directory": SERVICE, "umask": SERVICE,
    "rlimit": SERVICE,
    "restart": KEEPING_ALIVE, "success_exit": KEEPING_ALIVE, "start_timeout": KEEPING_ALIVE,
    "after": ORDER, "init": ORDER, "priority": ORDER, "autostart": ORDER,
    "prefix": OUTPUT, "log_format": OUTPUT, "verbose": OUTPUT, "quiet": OUTPUT,
    "plugins": PLUGINS, "disable": PLUGINS, "config": PLUGINS, "print_config": PLUGINS,
    "list_plugins": PLUGINS, "version": PLUGINS, "help": PLUGINS,
}

# Built-in plugins' options, by the plugin's registered name.
BUILTIN = {
    "basename": RULES, "regex": RULES, "pidfile": RULES, "child": RULES,
    "respawn": KEEPING_ALIVE, "essential": ORDER, "notify": ORDER,
    "health": HEALTH, "health_cmd": HEALTH, "health_http": HEALTH, "health_tcp": HEALTH,
    "limits": HEALTH, "control": CONTROL, "probes": CONTROL, "status": CONTROL, "log": OUTPUT,
    "groups": CONTROL,
}


def plugin_section(plugin_name: str) -> str:
    return BUILTIN.get(plugin_name, f"Plugin {plugin_name}")


def format_sections(ctx: click.Context, formatter: click.HelpFormatter,
                    params: Iterable[click.Parameter], sections: Mapping[str, str]) -> None:
    """Write each section's help records under its heading, the known headings first."""
    records: dict[str, list[tuple[str, str]]] = {}
    for param in params:
        if not isinstance(param, click.Option):
            continue  # COMMAND... is in the usage line
        record = param.get_help_record(ctx)
        if record is not None:
            records.setdefault(sections.get(param.name or "", PLUGINS), []).append(record)
    for heading in [*ORDERED, *sorted(set(records) - set(ORDERED))]:
        if heading in records:
            with formatter.section(heading):
                formatter.write_dl(records[heading])
