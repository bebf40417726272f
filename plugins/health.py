"""Plugin ``health``: run each rule's probes on a schedule, keep its health, act when unhealthy.

The probes come from check plugins (``watchdog.health.add_probe``); this
plugin knows none of them by name. In Docker's words, per rule:

- ``--health-interval`` (10 s): the first round runs one interval after the
  rule is seen running, each next one an interval after the last ended; a
  round due at most a tenth of its interval after a batch of other rounds
  already planned runs with that batch (never later than due), so rules
  checked at the same pace share the loop's wake-ups, as Monit's checks
  share its cycle;
- ``--health-timeout`` (5 s): each probe's limit; a probe that has not
  answered a second after it counts as timed out;
- ``--health-retries`` (3): that many failed rounds in a row make it unhealthy;
- ``--health-start-period`` (0): failures within it of the rule's start do not
  count; the first success ends it;
- ``--on-unhealthy``: ``restart`` (the default: stop signal and SIGCONT,
  ``--grace``, KILL, then respawn starts it and counts a failure for backoff
  and ``--max-restarts``), ``report`` (log it, show it, keep probing) or
  ``exit`` (stop every service and exit with status 7, for an orchestrator).

A rule is probed only while it is running; a round runs the rule's probes
one after another, the first failure deciding. Probes that run on the loop
(``watchdog.health.LoopProbe``: the built-in TCP, HTTP and command checks)
wait on sockets and child exits; blocking ones run in a background thread.
Either way a hanging probe never delays the loop. When the rule stops running
its health goes back to unknown, the round under way is ended (its sockets
closed, its command killed), and a new run starts afresh. This module
declares the flags and hooks; the schedule (``schedule.py``) is loaded by a
run with health checks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from watchdog import hookimpl
from watchdog.config import Config
from watchdog.health import probes
from watchdog.params import MAX_SECONDS, MAX_SECONDS_TEXT
from watchdog.rules import Rule

if TYPE_CHECKING:
    from watchdog.api import EngineAPI

    from .schedule import Scheduler

RESTART, REPORT, EXIT = "restart", "report", "exit"
SETTINGS, STATE = "health", "health"  # rule.settings and rule.state keys


class Schedule:
    """One rule's settings, from the flags (set by name: ``FLAGS`` maps each flag to its attribute)."""

    __slots__ = ("interval", "timeout", "retries", "start_period", "on_unhealthy")

    def __init__(self) -> None:
        self.interval = 10.0
        self.timeout = 5.0
        self.retries = 3
        self.start_period = 0.0
        self.on_unhealthy = RESTART


def parse_seconds(flag: str, name: str, text: str, *, zero: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        raise click.UsageError(f"{flag} {name}={text}: expected a number of seconds "
                               f"{'>= 0' if zero else '> 0'}")
    if value > MAX_SECONDS:
        raise click.UsageError(f"{flag} {name}={text}: at most {MAX_SECONDS_TEXT} seconds")
    return value


def parse_period(flag: str, name: str, text: str) -> float:
    return parse_seconds(flag, name, text, zero=True)


def parse_retries(flag: str, name: str, text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise click.UsageError(f"{flag} {name}={text}: expected a whole number >= 1")
    return int(text)


def parse_action(flag: str, name: str, text: str) -> str:
    if text not in (RESTART, REPORT, EXIT):
        raise click.UsageError(f"{flag} {name}={text}: expected restart, report or exit")
    return text


FLAGS: dict[str, tuple[str, str, Callable[[str, str, str], object]]] = {
    # flag: (Schedule field, metavar, parser)
    "--health-interval": ("interval", "NAME=SECONDS", parse_seconds),
    "--health-timeout": ("timeout", "NAME=SECONDS", parse_seconds),
    "--health-retries": ("retries", "NAME=N", parse_retries),
    "--health-start-period": ("start_period", "NAME=SECONDS", parse_period),
    "--on-unhealthy": ("on_unhealthy", "NAME=ACTION", parse_action),
}
HELP = {
    "--health-interval": "Seconds between health checks of rule NAME. [default: 10]",
    "--health-timeout": "Seconds each health probe of rule NAME may take. [default: 5]",
    "--health-retries": "Failed checks in a row that make rule NAME unhealthy. [default: 3]",
    "--health-start-period": "Seconds after each start of rule NAME in which failed checks do not "
                             "count; the first success ends it. [default: 0]",
    "--on-unhealthy": "What rule NAME being unhealthy does: restart, report (log and show only) or "
                      "exit (stop everything, exit 7). [default: restart]",
}


class Health:
    """One run's health checks: the settings live on the rules, the schedule once a rule has checks."""

    def __init__(self) -> None:
        self.engine: EngineAPI | None = None
        self.scheduler: Scheduler | None = None

    @hookimpl
    def watchdog_add_options(self) -> list[click.Option]:
        return [click.Option([flag], multiple=True, metavar=metavar, help=HELP[flag])
                for flag, (_, metavar, _) in FLAGS.items()]

    @hookimpl(trylast=True)  # after every check plugin has added its probes
    def watchdog_configure(self, config: Config) -> None:
        for rule in config.rules:
            if probes(rule):
                rule.settings[SETTINGS] = Schedule()
        for flag, (attribute, _, parse) in FLAGS.items():
            for rule, text in config.per_rule(flag, config.options.get(flag[2:].replace("-", "_")) or ()):
                schedule = rule.settings.get(SETTINGS)
                if schedule is None:
                    raise click.UsageError(
                        f"{flag} {rule.name}={text}: rule {rule.name!r} has no health check (give it "
                        "--health-cmd, --health-http, --health-tcp, --max-memory or --max-cpu)"
                    )
                setattr(schedule, attribute, parse(flag, rule.name, text))

    @hookimpl
    def watchdog_started(self, engine: EngineAPI) -> None:
        self.engine = engine

    def schedule_of(self, rule: Rule) -> Scheduler | None:
        """The run's schedule when ``rule`` has checks (made for the first such rule); else None."""
        if SETTINGS not in rule.settings or self.engine is None:
            return None
        if self.scheduler is None:
            # Here, not at the top: the schedule is loaded by a run with health checks, and
            # every start registers this plugin.
            from .schedule import Scheduler

            self.scheduler = Scheduler(self.engine)
        return self.scheduler

    @hookimpl
    def watchdog_process_started(self, rule: Rule) -> None:
        scheduler = self.schedule_of(rule)
        if scheduler is not None:
            scheduler.process_started(rule)

    @hookimpl
    def watchdog_rule_found(self, rule: Rule) -> None:
        scheduler = self.schedule_of(rule)
        if scheduler is not None:
            scheduler.found(rule, rule.settings[SETTINGS])

    @hookimpl
    def watchdog_rule_stopping(self, rule: Rule) -> None:
        # Health stays as it is while the stop goes on: it is often the reason for it.
        scheduler = self.schedule_of(rule)
        if scheduler is not None:
            scheduler.stopping(rule)

    @hookimpl
    def watchdog_rule_missing(self, rule: Rule) -> None:
        scheduler = self.schedule_of(rule)
        if scheduler is not None:
            scheduler.not_running(rule)

    @hookimpl
    def watchdog_rule_stopped(self, rule: Rule) -> None:
        scheduler = self.schedule_of(rule)
        if scheduler is not None:
            scheduler.not_running(rule)
