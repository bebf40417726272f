"""Restart policy, per rule: ``--restart``, ``--success-exit`` and ``--start-timeout``.

In systemd's words (``Restart=``, ``SuccessExitStatus=``, ``TimeoutStartSec=``)
and Docker's (``--restart always|on-failure|no``):

- ``always`` (the default): a command that ends is started again, with the
  crash-loop backoff.
- ``on-failure``: a command that ends with a success status is done (state
  ``exited``); any other status, or a death by signal, starts it again.
- ``no``: a command that ends is done: ``exited`` with a success status,
  ``failed`` otherwise. Both are final: ``watchdogctl start`` runs it again.

A success status is one of ``--success-exit`` (default 0; a death by signal N
counts as 128+N, so ``0,143`` takes a SIGTERM as success). What ends is the
command the watchdog started; a daemon it adopted (one that forked away, or
was running already) ends with a status only its parent can know, which never
counts as success: under ``no`` it is ``failed``, under ``on-failure`` it is
started again.

``--start-timeout NAME=SECONDS``: a start that is not ready within SECONDS
(``watchdog.readiness``: ``READY=1`` for ``--notify``, a first passing check
with health checks, else its processes found) failed: it is stopped and,
unless ``--restart no`` (then ``failed``), started again as a failure.
The engine acts on these values (``watchdog.rulerun.after_end``); this module
only reads them.
"""

from __future__ import annotations

import click

from watchdog.config import Config
from watchdog.params import Seconds
from watchdog.rules import RESTART_POLICIES, parse_signal


def options() -> list[click.Option]:
    return [
        click.Option(
            ["--restart"], multiple=True, metavar="NAME=always|on-failure|no",
            help="When rule NAME's command ends by itself: start it again always (the default), "
                 "only when it failed, or never (a one-shot).",
        ),
        click.Option(
            ["--success-exit"], multiple=True, metavar="NAME=STATUS[,STATUS...]",
            help="Exit statuses that count as success for rule NAME (default 0; 143 or TERM: "
                 "killed by SIGTERM).",
        ),
        click.Option(
            ["--start-timeout"], multiple=True, metavar="NAME=SECONDS",
            help="A start of rule NAME that is not ready within SECONDS failed (for --notify "
                 "services that never send READY=1).",
        ),
    ]


def configure(config: Config) -> None:
    options = config.options
    for rule, text in config.per_rule("--restart", options.get("restart", ())):
        policy = text.strip().lower()
        if policy not in RESTART_POLICIES:
            raise click.UsageError(f"--restart {rule.name}={text}: expected "
                                   f"{', '.join(RESTART_POLICIES[:-1])} or {RESTART_POLICIES[-1]}")
        rule.restart = policy
    for rule, text in config.per_rule("--success-exit", options.get("success_exit", ())):
        rule.success_exit = parse_statuses(f"--success-exit {rule.name}={text}", text)
    seconds = Seconds(0.001)
    for rule, text in config.per_rule("--start-timeout", options.get("start_timeout", ())):
        try:
            rule.start_timeout = seconds.convert(text, None, None)
        except click.BadParameter as exc:
            raise click.UsageError(f"--start-timeout {rule.name}={text}: {exc.message}") from None


def parse_statuses(flag: str, text: str) -> frozenset[int]:
    """``0,143`` or ``0,TERM``: statuses 0-255, a signal name meaning 128 + its number."""
    statuses = set()
    for word in (word.strip() for word in text.split(",")):
        if word.isdigit() and int(word) <= 255:
            statuses.add(int(word))
        elif word and not word.isdigit():
            statuses.add(128 + parse_signal(flag, word))
        else:
            raise click.UsageError(f"{flag}: {word!r} is not an exit status (0-255) or a signal name")
    return frozenset(statuses)
