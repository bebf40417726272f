"""Check ``health_cmd``: ``--health-cmd NAME=COMMAND``, healthy when COMMAND exits 0.

COMMAND is split like the rule commands (no shell unless ``--shell``) and
runs in a session of its own, stdin from /dev/null, its output kept for the
log (the last line of a failure). The check runs on the loop: the command is
a child whose exit the engine reports (``engine.watch_child``), its output a
pipe the loop reads, ``--health-timeout`` a timer. It runs as the rule's
command does (``--user``, ``--env``, ``--directory``...: ``watchdog.launch``),
as Docker's HEALTHCHECK and Kubernetes' exec probes run inside the container
as its user.

When the check ends (the command exited, timed out, or the rule stopped),
whatever the command left running is killed: its process group, and what left
the group but carries the probe's mark (``watchdog.probetree``). A check does
not leave daemons behind; a command meant to start one belongs in a rule.
The check itself (``cmdcheck.py``) is loaded by a run that has one.
"""

from __future__ import annotations

import click

from watchdog import hookimpl
from watchdog.config import Config
from watchdog.health import add_probe
from watchdog.rules import check_executable, split_command

FLAG = "--health-cmd"


@hookimpl
def watchdog_add_options() -> list[click.Option]:
    return [click.Option([FLAG], multiple=True, metavar="NAME=COMMAND",
                         help="Health check of rule NAME: COMMAND exits 0 (split like the rule "
                              "commands; /bin/sh -c with --shell).")]


@hookimpl
def watchdog_configure(config: Config) -> None:
    given = config.per_rule(FLAG, config.options.get("health_cmd") or ())
    if not given:
        return
    # Here, not at the top: the check's code is loaded by a run that has one, and every start
    # registers this plugin.
    from .cmdcheck import CommandProbe

    shell = bool(config.options.get("shell"))
    for rule, text in given:
        try:
            words = split_command(text)
            if not shell:
                check_executable(words[0], text)
        except click.UsageError as exc:
            raise click.UsageError(f"{FLAG} {rule.name}={text}: {exc.message}") from None
        add_probe(rule, CommandProbe(("/bin/sh", "-c", text) if shell else tuple(words), rule.launch))
