"""Every hook the watchdog calls. A plugin implements any subset of them.

Write a hook as a function (or a method of a plugin object) named like the
spec and marked with ``@watchdog.hookimpl``; take only the arguments you
need. Pluggy calls the plugin registered last first, and built-ins are
registered before entry-point and ``-p`` plugins.

Order of a run: ``watchdog_add_options`` and ``watchdog_matchers`` (building
the command line), ``watchdog_configure`` (once the flags are parsed), then
at each check the rule's matcher followed by the event hooks for what changed.

Event hooks (from ``watchdog_started`` on) are called one implementation at
a time: an exception is logged with the plugin's name and the hook, the other
plugins still run, and a plugin that fails 5 times in a row is disabled
(``watchdog.hooks``). Hooks that set up the run (options, matchers,
configure, main) are not contained: their errors stop the start, and
``click.UsageError`` is the way to report bad input (one line, exit 2).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import click

from watchdog import hookspec

if TYPE_CHECKING:
    from watchdog.api import EngineAPI
    from watchdog.config import Config
    from watchdog.matchers import Matcher
    from watchdog.rules import Rule
    from watchdog.snapshot import Proc


# --- setting up -------------------------------------------------------------


@hookspec
def watchdog_add_options() -> list[click.Option]:
    """Return click options to add to the ``watchdog`` command.

    Their values reach ``watchdog_configure`` as ``config.options[param_name]``.
    Per-rule flags take ``NAME=VALUE`` and ``multiple=True`` by convention; a
    metavar starting ``[NAME=]`` (type ``watchdog.params.DefaultOrPerRule``)
    also takes a bare value, the default for every rule
    (``config.parse_with_default``).
    """


@hookspec
def watchdog_matchers() -> list[Matcher]:
    """Return the matchers this plugin provides (``watchdog.matchers.Matcher``).

    Each has a name (a choice of ``--match``), how to match and describe a
    rule, and optionally the per-rule flag that selects it (``--regex
    NAME=PATTERN``), which the core adds to the command line and parses.
    The core calls only the matcher a rule uses.
    """


@hookspec
def watchdog_configure(config: Config) -> None:
    """Read option values and settle per-rule settings before the first check.

    Call ``config.per_rule(flag, values)`` to parse ``NAME=VALUE`` flags.
    Raise ``click.UsageError`` for bad input: the user gets one line and
    exit status 2. Matchers' flags are parsed by the core before this hook.
    """


@hookspec(firstresult=True)
def watchdog_main(options: Mapping[str, Any]) -> int | None:
    """Run a mode of your own instead of supervising, and return its exit status.

    Called once the flags are parsed, before any rule is built (so no
    COMMAND is needed): ``watchdog --status`` is such a mode. Return None to
    let the watchdog run as usual. The first non-None answer wins.
    """


# --- events -----------------------------------------------------------------


@hookspec
def watchdog_started(engine: EngineAPI) -> None:
    """The engine is about to run its first check (not called for ``--check``)."""


@hookspec
def watchdog_checked(engine: EngineAPI) -> None:
    """A check has just ended: ``engine.status`` holds every rule's state.

    Called after every check, so keep it cheap: compare with what you saw
    last time before doing real work.
    """


@hookspec
def watchdog_rule_state(rule: Rule, old: str, new: str, reason: str) -> None:
    """``rule``'s run state changed from ``old`` to ``new`` because of ``reason``.

    Called for every change, from the one place they happen
    (``watchdog.rulerun.Transitions.move``), before the hooks that say more
    about it (``watchdog_rule_found``, ``_stopped``, ``_restarted``...).
    ``old`` and ``new`` are ``watchdog.state.RunState`` values (strings:
    ``"missing"``, ``"starting"``, ``"running"``, ``"stopping"``,
    ``"stopped"``, ``"waiting"``, ``"exited"``, ``"failed"``); ``reason``
    says why this change happened ("started pid 12", "killed by SIGKILL",
    "restarted by uid 0"). The states and their arrows are drawn in
    ``watchdog/rulerun.py``. Keep it cheap: it runs on the loop.
    """


@hookspec
def watchdog_rule_found(rule: Rule, procs: list[Proc]) -> None:
    """``rule`` has matching processes again (or for the first time)."""


@hookspec
def watchdog_rule_missing(rule: Rule, engine: EngineAPI) -> None:
    """``rule`` has no matching process and no command of its is still starting.

    Called at every check while that lasts, so an action can wait (backoff)
    and act later: ask for a later check with ``engine.call_at``. Start the
    command with ``engine.start(rule)``. Not called for a rule in a final state
    (``stopped``, ``exited``, ``failed``), nor for one waiting for rules it
    comes ``--after`` (state ``waiting``).
    """


@hookspec
def watchdog_rule_stopping(rule: Rule, reason: str) -> None:
    """``engine.stop`` or ``engine.restart`` began: the stop signal went to ``rule``'s processes."""


@hookspec
def watchdog_rule_stopped(rule: Rule, reason: str) -> None:
    """``rule``'s processes are gone after ``engine.stop``; it stays down until started."""


@hookspec
def watchdog_rule_restarted(rule: Rule, reason: str, planned: bool) -> None:
    """``rule``'s processes are gone after ``engine.restart``; it is missing now, to be started.

    ``planned`` is True when the restart was asked for (``engine.restart(...,
    planned=True)``: ``watchdogctl restart``, a plugin's schedule), False when
    it answers a failure (a health check, a missed notify ping): only the
    latter counts for the crash-loop backoff and ``--max-restarts``.
    ``watchdog_rule_missing`` follows in the same check.
    """


@hookspec
def watchdog_rule_health(rule: Rule, health: str, detail: str) -> None:
    """``rule``'s health changed (``engine.set_health``): ``"healthy"``, ``"unhealthy"`` or ``"unknown"``."""


@hookspec
def watchdog_rule_ready(rule: Rule, ready: bool) -> None:
    """``rule`` became ready (True) or is no longer (False): see ``watchdog.readiness``.

    Rules ``--after`` it start once it is ready. A plugin that will report a
    rule's readiness (``engine.set_ready``) or health (``engine.set_health``)
    marks the rule in ``watchdog_configure`` with
    ``rule.settings[watchdog.readiness.READY_REPORTED]`` or ``[HEALTH_CHECKED]``
    set to True, so that readiness waits for its word instead of the first match.
    """


@hookspec
def watchdog_rule_health_checked(rule: Rule, health: str, detail: str) -> None:
    """``engine.set_health`` was called for ``rule``, changed or not: ``detail`` is the last check's result.

    Called after ``watchdog_rule_health`` when the health changed. Called at
    every health check of every rule, so keep it cheap.
    """


@hookspec
def watchdog_process_started(rule: Rule, pid: int) -> None:
    """The engine started ``rule``'s command as process ``pid``."""


@hookspec
def watchdog_process_exited(rule: Rule, pid: int, returncode: int | None, engine: EngineAPI) -> None:
    """A process of ``rule`` ended.

    ``returncode`` is the exit status of a process the engine reaped: a
    command it started, or a daemon re-parented to it (negative: killed by
    that signal); None for a matched process it did not reap, whose status
    only its own parent can know.
    ``engine.status[rule.name].pids`` are the rule's processes still running
    (none: the service ended), and ``.last_output`` the last lines its run
    wrote (stderr first) when the service ended.
    """


@hookspec
def watchdog_rule_gave_up(rule: Rule, reason: str) -> None:
    """The engine stopped keeping ``rule`` alive (``engine.give_up``)."""


@hookspec
def watchdog_rule_added(rule: Rule, engine: EngineAPI) -> None:
    """``rule`` joined the running watchdog (``engine.add_rule``, as a reload does).

    A plugin that sets rules up in ``watchdog_started`` does the same here.
    Its per-rule flags were parsed by ``watchdog_configure`` of a fresh set
    of plugin objects, into ``rule.settings``.
    """


@hookspec
def watchdog_rule_removed(rule: Rule, reason: str) -> None:
    """``rule`` was stopped and left the running watchdog (``engine.remove_rule``): forget it."""


@hookspec
def watchdog_stopping(signal_name: str) -> None:
    """The engine is stopping every managed process because of ``signal_name``."""


@hookspec
def watchdog_stopped(exit_code: int) -> None:
    """The engine is done and the watchdog exits with ``exit_code``."""
