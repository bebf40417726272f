"""Every hook the watchdog calls. A plugin implements any subset of them.

Write a hook as a plain function named like the spec and marked with
``@watchdog.hookimpl``; take only the arguments you need. Pluggy calls the
plugin registered last first, and built-ins are registered before entry-point
and ``-p`` plugins, so a third-party matcher is asked before the built-in one.

Order of a run: ``watchdog_add_options`` (building the command line),
``watchdog_configure`` (once the flags are parsed), then at each check
``watchdog_match`` per rule followed by the event hooks for what changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import click

from watchdog import hookspec

if TYPE_CHECKING:
    from watchdog.config import Config
    from watchdog.engine import Engine
    from watchdog.rules import Rule
    from watchdog.snapshot import Proc, Snapshot


# --- setting up -------------------------------------------------------------


@hookspec
def watchdog_add_options() -> list[click.Option]:
    """Return click options to add to the ``watchdog`` command.

    Their values reach ``watchdog_configure`` as ``config.options[param_name]``.
    Per-rule flags take ``NAME=VALUE`` and ``multiple=True`` by convention.
    """


@hookspec
def watchdog_strategies() -> list[str]:
    """Return the matcher strategies this plugin implements (names for ``--match``)."""


@hookspec
def watchdog_configure(config: Config) -> None:
    """Read option values and settle per-rule settings before the first check.

    Call ``config.per_rule(flag, values)`` to parse ``NAME=VALUE`` flags and
    ``config.use_strategy(rule, strategy, flag)`` when a per-rule flag picks
    the rule's matcher. Raise ``click.UsageError`` for bad input: the user
    gets one line and exit status 2.
    """


@hookspec(firstresult=True)
def watchdog_main(options: Mapping[str, Any]) -> int | None:
    """Run a mode of your own instead of supervising, and return its exit status.

    Called once the flags are parsed, before any rule is built (so no
    COMMAND is needed): ``watchdog --status`` is such a mode. Return None to
    let the watchdog run as usual. The first non-None answer wins.
    """


# --- matching ---------------------------------------------------------------


@hookspec(firstresult=True)
def watchdog_match(rule: Rule, snapshot: Snapshot) -> list[Proc] | None:
    """Return the processes in ``snapshot`` that are ``rule``'s service.

    Return None when ``rule.strategy`` is not yours, so the next plugin is
    asked; return an empty list when it is yours and nothing matches. The
    first non-None answer wins. Use the snapshot's accessors: they already
    leave out zombies and watchdog processes.
    """


@hookspec(firstresult=True)
def watchdog_describe(rule: Rule) -> str | None:
    """Return what the matcher for ``rule`` looks for, for messages.

    For example ``"a process named 'apache2'"``. Return None when
    ``rule.strategy`` is not yours. The first non-None answer wins.
    """


# --- events -----------------------------------------------------------------


@hookspec
def watchdog_started(engine: Engine) -> None:
    """The engine is about to run its first check (not called for ``--check``)."""


@hookspec
def watchdog_checked(engine: Engine) -> None:
    """A check has just ended: ``engine.status`` holds every rule's state.

    Called after every check, so keep it cheap: compare with what you saw
    last time before doing real work.
    """


@hookspec
def watchdog_rule_found(rule: Rule, procs: list[Proc]) -> None:
    """``rule`` has matching processes again (or for the first time)."""


@hookspec
def watchdog_rule_missing(rule: Rule, engine: Engine) -> None:
    """``rule`` has no matching process and no command of its is still starting.

    Called at every check while that lasts, so an action can wait (backoff)
    and act later: ask for a later check with ``engine.call_at``. Start the
    command with ``engine.start(rule)``.
    """


@hookspec
def watchdog_process_started(rule: Rule, pid: int) -> None:
    """The engine started ``rule``'s command as process ``pid``."""


@hookspec
def watchdog_process_exited(rule: Rule, pid: int, returncode: int | None) -> None:
    """A process of ``rule`` ended.

    ``returncode`` is the exit status of a command the engine started
    (negative: killed by that signal), or None for a matched process the
    engine did not start, whose status only its parent can know.
    """


@hookspec
def watchdog_rule_gave_up(rule: Rule, reason: str) -> None:
    """The engine stopped keeping ``rule`` alive (``engine.give_up``)."""


@hookspec
def watchdog_stopping(signal_name: str) -> None:
    """The engine is stopping every managed process because of ``signal_name``."""


@hookspec
def watchdog_stopped(exit_code: int) -> None:
    """The engine is done and the watchdog exits with ``exit_code``."""
