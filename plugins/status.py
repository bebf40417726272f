"""Plugin ``status``: a status file the running watchdog keeps, and ``watchdog --status``.

The running watchdog writes JSON (per rule: name, state, pids, matcher,
restarts, last exit status, since when) to ``--status-file``, atomically
(a temporary file renamed over it) and only when something changed.
``watchdog --status`` reads it without the original arguments, so
``HEALTHCHECK CMD watchdog --status`` works: exit 0 when every rule is
fine (``watchdog.view``: running and not unhealthy, or a one-shot that
exited with a success status), 1 when one is not, 3 when no watchdog is
running (no file, or the pid in it is not a live watchdog). Each rule is
shown as ``watchdog.view.rule_view`` builds it, as the control socket does.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import Any

import click

from watchdog import __version__, hookimpl
from watchdog.api import EngineAPI
from watchdog.config import Config
from watchdog.exits import EXIT_NO_WATCHDOG
from watchdog.logs import logger
from watchdog.oneline import printable
from watchdog.rules import Rule
from watchdog.safefiles import (
    Identity,
    Untrusted,
    default_directory,
    read_trusted,
    remove_if_ours,
    write_atomically,
)
from watchdog.snapshot import DEAD_STATES, Snapshot, is_watchdog_argv, read_stat
from watchdog.view import exit_status, format_table, rule_view


def default_status_file() -> str:
    """``/run/watchdog/status.json`` for root; a private per-user directory otherwise
    (``watchdog.safefiles.default_directory``)."""
    return os.path.join(default_directory(), "status.json")


class StatusFile:
    """Writes the engine's state when it differs from what was written last."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.started = time.time()
        self._last: dict[str, Any] | None = None  # what the file holds, once written
        self._written: Identity | None = None  # to remove only ours
        self._failing = False
        self.enabled = True

    def write(self, engine: EngineAPI) -> None:
        rules = [rule_view(rule, engine.status[rule.name]) for rule in engine.rules]
        content = {"pid": os.getpid(), "started": self.started, "version": __version__,
                   "rules": rules}
        if content == self._last:
            return
        try:
            # Only in a directory no other user can change, never through a symlink,
            # its mode set on the open file (health checks may run as another user).
            self._written = write_atomically(self.path, json.dumps(content, indent=1).encode())
        except (OSError, Untrusted) as exc:
            # A full disk or a read-only moment passes: what was not written differs
            # from what was, so the next check tries again. Warn once per outage.
            if not self._failing:
                self._failing = True
                logger.warning("cannot write the status file %s: %s (trying again at the next check)",
                               self.path, getattr(exc, "strerror", None) or exc)
            return
        if self._failing:
            self._failing = False
            logger.info("the status file %s is written again", self.path)
        self._last = content

    def remove(self) -> None:
        if self._written is not None:  # only ours: another watchdog may have taken the path since
            remove_if_ours(self.path, self._written)


class Status:
    """One run's status file; ``--status`` reads another run's."""

    def __init__(self) -> None:
        self.path = default_status_file()
        self.file: StatusFile | None = None
        self.engine: EngineAPI | None = None
        self.health_seen: dict[str, tuple[str, str]] = {}  # by rule: the last health result written

    @hookimpl
    def watchdog_add_options(self) -> list[click.Option]:
        return [
            click.Option(["--status", "show_status"], is_flag=True, allow_from_autoenv=False,
                         help="Show the running watchdog's status and exit (0 every rule runs "
                              "and is not unhealthy, or exited with success; 1 one does not; "
                              "3 no watchdog)."),
            click.Option(["--json", "status_json"], is_flag=True, allow_from_autoenv=False,
                         help="With --status: print the status as JSON."),
            click.Option(["--status-file"], metavar="PATH", default=default_status_file(),
                         show_default=True, help="Where the running watchdog keeps its status."),
        ]

    @hookimpl
    def watchdog_main(self, options: Mapping[str, Any]) -> int | None:
        if not options.get("show_status"):
            return None
        return show_status(options["status_file"], as_json=options.get("status_json", False))

    @hookimpl
    def watchdog_configure(self, config: Config) -> None:
        self.path = config.options.get("status_file") or default_status_file()

    @hookimpl
    def watchdog_started(self, engine: EngineAPI) -> None:
        try:
            owner = live_watchdog(read(self.path))
        except Untrusted:
            owner = None  # the first write says why it cannot write there
        if owner is not None and owner != os.getpid():
            logger.warning("the status file %s belongs to the watchdog with pid %d: not writing it "
                           "(give this one its own --status-file)", self.path, owner)
            return
        self.file = StatusFile(self.path)
        self.engine = engine

    @hookimpl
    def watchdog_checked(self, engine: EngineAPI) -> None:
        if self.file is not None and self.file.enabled:
            self.file.write(engine)

    @hookimpl
    def watchdog_rule_health_checked(self, rule: Rule, health: str, detail: str) -> None:
        # Health checks run between the engine's checks: a new result is written at once.
        # Most results repeat the last one, and comparing one rule's is cheaper than the file's.
        if self.engine is not None and self.health_seen.get(rule.name) != (health, detail):
            self.health_seen[rule.name] = (health, detail)
            self.watchdog_checked(self.engine)

    @hookimpl
    def watchdog_stopped(self) -> None:
        if self.file is not None:
            self.file.remove()


def read(path: str) -> dict[str, Any] | None:
    """The status file's content; None when there is none to believe.

    Raises Untrusted when another user could have written it (see
    ``watchdog.safefiles``): a forged file must not pass for a watchdog.
    """
    try:
        data = read_trusted(path)
        content = None if data is None else json.loads(data)
    except (OSError, ValueError, RecursionError) as exc:
        if isinstance(exc, Untrusted):
            raise
        return None
    return content if isinstance(content, dict) else None


def live_watchdog(content: dict[str, Any] | None) -> int | None:
    """The pid of the watchdog that wrote ``content``, if it is still running."""
    if content is None or not isinstance(content.get("pid"), int):
        return None
    pid: int = content["pid"]
    proc = read_stat("/proc", str(pid))
    if proc is None or proc.state in DEAD_STATES:
        return None
    snapshot = Snapshot({pid: proc}, os.getpid())
    try:
        started = float(content.get("started", 0))
    except (TypeError, ValueError):
        return None
    # A reused pid belongs to a process younger than the file's watchdog.
    if is_watchdog_argv(snapshot.cmdline(pid) or []) and snapshot.start_time(proc) <= started + 1:
        return pid
    return None


def show_status(path: str, as_json: bool) -> int:
    try:
        content = read(path)
    except Untrusted as exc:
        click.echo(f"watchdog: not trusting the status file: {printable(str(exc))}", err=True)
        return EXIT_NO_WATCHDOG
    if live_watchdog(content) is None or content is None:
        click.echo(f"no watchdog is running (status file {path})", err=True)
        return EXIT_NO_WATCHDOG
    # What a service said of itself (a health check's output, a status message) is
    # shown without the control characters that could drive the terminal.
    rules = printable(content.get("rules", []))
    if as_json:
        click.echo(json.dumps(content, indent=1))
    else:
        click.echo(format_table(rules))
    return exit_status(rules)
