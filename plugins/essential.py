"""``--essential NAME``: when NAME's service ends, stop every service and exit with its status.

As tini does for its one child: the container lives as long as its main
service. A service "ends" when nothing matches it any more after it was
started or seen running, other than by a stop or restart the watchdog asked
for; giving up on it counts too. The exit status is that of the last of the
rule's processes that ended, when the watchdog reaped it: a command it
started, or a daemon re-parented to it (128 + N when killed by signal N, as a
shell says it), else ``EXIT_ESSENTIAL_UNKNOWN`` (a process of the host's
adopted by name: its status goes to its own parent).
In a config file: ``essential = ["app"]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from watchdog import hookimpl
from watchdog.config import Config
from watchdog.exits import EXIT_ESSENTIAL_UNKNOWN
from watchdog.logs import logger
from watchdog.rules import Rule
from watchdog.snapshot import Proc
from watchdog.state import EXITED, FAILED

if TYPE_CHECKING:
    from watchdog.api import EngineAPI

KEY = "essential"


class Memory:
    """What the plugin remembers of an essential rule."""

    def __init__(self) -> None:
        self.up = False  # started or seen running since the last time it ended
        self.asked = False  # the watchdog itself is stopping or restarting it
        self.last_exit: int | None = None  # the last ended process's status; None: adopted
        self.gave_up = False  # given up on, to be acted on after the check
        self.finished = False  # ended for good (--restart no/on-failure), to be acted on after the check
        self.ended = False  # the watchdog is stopping because of it


def exit_status(returncode: int | None) -> int:
    if returncode is None:
        return EXIT_ESSENTIAL_UNKNOWN
    return 128 - returncode if returncode < 0 else returncode


def essential(rule: Rule) -> Memory | None:
    return rule.state.get(KEY)


@hookimpl
def watchdog_add_options() -> list[click.Option]:
    return [click.Option(
        ["--essential"], multiple=True, metavar="NAME",
        help="When rule NAME's service ends, stop every service and exit with its status.",
    )]


@hookimpl
def watchdog_configure(config: Config) -> None:
    by_name = {rule.name: rule for rule in config.rules}
    for name in config.options.get("essential", ()):
        if name not in by_name:
            raise click.UsageError(f"--essential {name}: no rule is named {name!r} "
                                   f"(rules: {', '.join(by_name)})")
        by_name[name].state[KEY] = Memory()


@hookimpl
def watchdog_process_started(rule: Rule) -> None:
    mem = essential(rule)
    if mem is not None:
        mem.up, mem.asked = True, False


@hookimpl
def watchdog_rule_found(rule: Rule, procs: list[Proc]) -> None:
    mem = essential(rule)
    if mem is not None:
        mem.up = True


@hookimpl
def watchdog_process_exited(rule: Rule, returncode: int | None) -> None:
    mem = essential(rule)
    if mem is not None:
        mem.last_exit = returncode


@hookimpl
def watchdog_rule_stopping(rule: Rule) -> None:
    mem = essential(rule)
    if mem is not None:
        mem.asked = True


@hookimpl(tryfirst=True)
def watchdog_rule_missing(rule: Rule, engine: EngineAPI) -> None:
    mem = essential(rule)
    if mem is None or not mem.up or mem.asked or mem.ended:
        return
    mem.up = False
    end(rule, engine, mem, "ended")


@hookimpl
def watchdog_rule_gave_up(rule: Rule, reason: str) -> None:
    mem = essential(rule)
    if mem is not None and not mem.ended:
        mem.gave_up = True


@hookimpl
def watchdog_rule_state(rule: Rule, new: str) -> None:
    # A one-shot that ended is final (exited, failed): no watchdog_rule_missing follows.
    mem = essential(rule)
    if mem is not None and new in (EXITED, FAILED) and not mem.ended:
        mem.finished = True


@hookimpl
def watchdog_checked(engine: EngineAPI) -> None:
    for rule in engine.rules:
        mem = essential(rule)
        if mem is not None and mem.gave_up:
            end(rule, engine, mem, "was given up on")
        elif mem is not None and mem.finished:
            end(rule, engine, mem, engine.status[rule.name].state)


def end(rule: Rule, engine: EngineAPI, mem: Memory, how: str) -> None:
    mem.ended, mem.gave_up = True, False
    code = exit_status(mem.last_exit)
    known = "" if mem.last_exit is not None else " (its status cannot be known: adopted, not reaped here)"
    logger.warning("essential service %s: stopping every service, exit status %d%s", how, code, known,
                   extra={"rule": rule.name, "event": "essential-ended", "status": code})
    engine.give_up(rule, f"essential service {how}", code)
