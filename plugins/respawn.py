"""Action ``respawn``: start a rule's command whenever nothing matches it.

The first restart is immediate. A command that ends within ``--stable-after``
seconds of its start, or exits leaving nothing that matches, is a failure,
and so is a run that ends unhealthy (see the ``health`` plugin) unless its
checks said healthy for ``--stable-after`` seconds first;
each failure in a row doubles the wait before the next start (0.25 s, 0.5 s,
1 s ... up to ``--backoff-max``), and a run that lasts ``--stable-after``
seconds resets the count, provided it got ready (``watchdog.readiness``).
``--max-restarts N`` gives up after N failures in a row; ``--on-give-up
exit`` then stops every service and exits with status 3.

``--stable-after``, ``--backoff-max`` and ``--max-restarts`` take a bare
value, the default for every rule, or ``NAME=VALUE`` for one rule:
``--max-restarts 5 --max-restarts migrate=1``.

A planned restart (``engine.restart(..., planned=True)``: ``watchdogctl
restart``, a plugin's schedule) is no failure: the next start is at once and
the failures in a row start again from zero. A restart that answers a failure
(an unhealthy check, a missed notify ping, ``--start-timeout``) counts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from watchdog import hookimpl
from watchdog.config import Config
from watchdog.exits import EXIT_GAVE_UP
from watchdog.logs import logger
from watchdog.params import DefaultOrPerRule, Seconds
from watchdog.rules import ALWAYS, Rule
from watchdog.snapshot import Proc
from watchdog.state import HEALTHY, MISSING, UNHEALTHY

if TYPE_CHECKING:
    from watchdog.api import EngineAPI

FIRST_BACKOFF = 0.25
POLICY = "respawn.policy"  # rule.settings key: the rule's own Policy, when a flag names it
# 2.0 ** n overflows a float past n = 1023; 64 doublings of FIRST_BACKOFF pass any --backoff-max.
MAX_DOUBLINGS = 64


class Policy:
    """How respawn treats a rule that keeps failing: the run's, or a rule's own."""

    def __init__(self, stable_after: float = 10.0, backoff_max: float = 30.0, max_restarts: int = 0,
                 exit_on_give_up: bool = False) -> None:
        self.stable_after = stable_after
        self.backoff_max = backoff_max
        self.max_restarts = max_restarts  # 0: never give up
        self.exit_on_give_up = exit_on_give_up

    def but(self, setting: str, value: float) -> Policy:
        """A copy with one setting changed: a rule's own, from a ``NAME=VALUE`` flag."""
        policy = Policy(self.stable_after, self.backoff_max, self.max_restarts, self.exit_on_give_up)
        setattr(policy, setting, value)
        return policy

    def delay(self, failures: int) -> float:
        """Seconds to wait before the next start after ``failures`` failures in a row."""
        if failures <= 1:
            return 0.0
        return min(self.backoff_max, FIRST_BACKOFF * 2.0 ** min(failures - 2, MAX_DOUBLINGS))


class Memory:
    """What respawn remembers of one rule."""

    def __init__(self) -> None:
        self.failures = 0
        self.started_at: float | None = None  # when our last start happened (engine clock)
        self.settled = True  # the outcome of the last start has been counted
        self.found = False  # something matched since the last start
        self.ready = False  # it was ready since the last start (watchdog.readiness)
        self.last_exit: int | None = None
        self.not_before = 0.0
        self.warned = False
        self.unhealthy = False  # the run's health checks last said unhealthy
        self.healthy_at: float | None = None  # its last check that said healthy (engine clock)


def memory(rule: Rule) -> Memory:
    mem: Memory | None = rule.state.get("respawn")
    if mem is None:  # made once: health checks ask many times a second
        mem = rule.state["respawn"] = Memory()
    return mem


class Respawn:
    """One run's policy, from its flags; per-rule memory lives on the rules."""

    def __init__(self) -> None:
        self.policy = Policy()
        self.engine: EngineAPI | None = None

    @hookimpl
    def watchdog_add_options(self) -> list[click.Option]:
        defaults = Policy()
        return [
            click.Option(
                ["--stable-after"], multiple=True, metavar="[NAME=]SECONDS", type=DefaultOrPerRule(Seconds()),
                help="A run this long resets the crash-loop backoff; NAME=SECONDS for one rule. "
                     f"[default: {defaults.stable_after:g}]",
            ),
            click.Option(
                ["--backoff-max"], multiple=True, metavar="[NAME=]SECONDS", type=DefaultOrPerRule(Seconds()),
                help="Longest wait between restarts of a crash-looping command (0: no backoff); "
                     f"NAME=SECONDS for one rule. [default: {defaults.backoff_max:g}]",
            ),
            click.Option(
                ["--max-restarts"], multiple=True, metavar="[NAME=]N",
                type=DefaultOrPerRule(click.IntRange(min=0)),
                help="Give up on a rule after N failed restarts in a row (0: never); NAME=N for one "
                     f"rule. [default: {defaults.max_restarts}]",
            ),
            click.Option(
                ["--on-give-up"], type=click.Choice(["continue", "exit"]), default="continue",
                show_default=True,
                help="After giving up on a rule: keep the others running, or stop all and exit 3.",
            ),
        ]

    @hookimpl
    def watchdog_configure(self, config: Config) -> None:
        defaults = Policy()
        stable_after, stable_afters = config.parse_with_default("--stable-after", Seconds(),
                                                                defaults.stable_after)
        backoff_max, backoff_maxes = config.parse_with_default("--backoff-max", Seconds(),
                                                               defaults.backoff_max)
        max_restarts, max_restartses = config.parse_with_default(
            "--max-restarts", click.IntRange(min=0), defaults.max_restarts)
        self.policy = Policy(stable_after, backoff_max, max_restarts,
                             exit_on_give_up=config.options.get("on_give_up") == "exit")
        for field_name, pairs in (("stable_after", stable_afters), ("backoff_max", backoff_maxes),
                                  ("max_restarts", max_restartses)):
            for rule, value in pairs:
                own = rule.settings.get(POLICY, self.policy)
                rule.settings[POLICY] = own.but(field_name, value)

    def policy_of(self, rule: Rule) -> Policy:
        """The rule's own policy where a flag names it, else the run's."""
        own: Policy = rule.settings.get(POLICY, self.policy)
        return own

    @hookimpl
    def watchdog_started(self, engine: EngineAPI) -> None:
        self.engine = engine

    @hookimpl
    def watchdog_process_started(self, rule: Rule) -> None:
        mem = memory(rule)
        if self.engine is not None:  # whoever called engine.start
            mem.started_at = self.engine.clock()
        mem.settled = False
        mem.found = False
        mem.ready = False
        mem.last_exit = None
        mem.unhealthy = False
        mem.healthy_at = None

    @hookimpl
    def watchdog_process_exited(self, rule: Rule, returncode: int | None) -> None:
        if returncode is not None:
            memory(rule).last_exit = returncode

    @hookimpl
    def watchdog_rule_health_checked(self, rule: Rule, health: str) -> None:
        mem = memory(rule)
        if health in (HEALTHY, UNHEALTHY):  # "unknown" only means it is not running now
            mem.unhealthy = health == UNHEALTHY
        if health == HEALTHY and self.engine is not None:
            mem.healthy_at = self.engine.clock()

    @hookimpl
    def watchdog_rule_ready(self, rule: Rule, ready: bool) -> None:
        if ready:
            memory(rule).ready = True

    @hookimpl
    def watchdog_rule_found(self, rule: Rule, procs: list[Proc]) -> None:
        mem = memory(rule)
        mem.found = True
        mem.warned = False

    @hookimpl
    def watchdog_rule_missing(self, rule: Rule, engine: EngineAPI) -> None:
        mem = memory(rule)
        policy = self.policy_of(rule)
        now = engine.clock()
        if not mem.settled:
            self.settle(rule, mem, engine, now)
            if self.gave_up(rule, mem, engine, f"ended within {policy.stable_after}s"):
                return
        if now < mem.not_before:
            engine.call_at(mem.not_before)
            return
        mem.started_at = now
        if engine.start(rule) is None and engine.status[rule.name].state == MISSING:
            mem.failures += 1  # could not even be executed: a failure too
            if self.gave_up(rule, mem, engine, "failed (the last could not start)"):
                return
            mem.not_before = now + max(policy.delay(mem.failures), FIRST_BACKOFF)
            engine.call_at(mem.not_before)

    def gave_up(self, rule: Rule, mem: Memory, engine: EngineAPI, how: str) -> bool:
        """Give up on ``rule`` once its failures in a row pass ``--max-restarts``."""
        policy = self.policy_of(rule)
        if not policy.max_restarts or mem.failures <= policy.max_restarts:
            return False
        reason = f"{policy.max_restarts} restarts in a row {how}"
        engine.give_up(rule, reason, EXIT_GAVE_UP if policy.exit_on_give_up else None)
        return True

    def settle(self, rule: Rule, mem: Memory, engine: EngineAPI, now: float) -> None:
        """Count how the last start ended, and set when the next one may happen."""
        policy = self.policy_of(rule)
        mem.settled = True
        if engine.status[rule.name].planned:
            mem.failures = 0
            mem.not_before = now
            return
        started = mem.started_at if mem.started_at is not None else now
        # A run that ended unhealthy was stable only while its checks said healthy.
        ended = (mem.healthy_at or started) if mem.unhealthy else now
        lasted = ended - started
        # A run that never got ready (no READY=1, a --start-timeout) was never stable.
        if mem.found and mem.ready and lasted >= policy.stable_after:
            mem.failures = 0
        else:
            mem.failures += 1
        # A command killed before it was seen says nothing about matching; one that
        # exited by itself and left nothing to match is a configuration problem, if
        # it happens again (once may be a daemon killed before it could be seen).
        # A command meant to end (--restart on-failure) says nothing about matching either.
        exited_unmatched = not mem.found and mem.last_exit is not None and mem.last_exit >= 0 \
            and rule.restart == ALWAYS
        if exited_unmatched and mem.failures >= 2 and not mem.warned:
            mem.warned = True
            ways = engine.ways_to_match(rule)
            logger.warning(
                "%r exited with status %s and left no %s%s",
                rule.command, mem.last_exit, engine.describe(rule).removeprefix("a "),
                f"; if the command starts a program of another name, use {ways}" if ways else "",
                extra={"rule": rule.name, "event": "no-match"},
            )
        delay = policy.delay(mem.failures)
        mem.not_before = now + delay
        if delay:
            logger.info(
                "restarting in %.2fs (%d failures in a row)", delay, mem.failures,
                extra={"rule": rule.name, "event": "backoff"},
            )
