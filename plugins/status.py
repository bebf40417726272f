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
Reading and showing the file is ``watchdog.statusview``'s, which the lean
``watchdog --status`` path (``watchdog.execprobe``) shares.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import click

from watchdog import __version__, hookimpl
from watchdog.config import Config
from watchdog.logs import logger
from watchdog.rules import Rule
from watchdog.safefiles import (
    Identity,
    Untrusted,
    remove_if_ours,
    write_atomically,
)
from watchdog.statusview import default_status_file, live_watchdog, read, show_status
from watchdog.view import rule_view

if TYPE_CHECKING:
    from watchdog.api import EngineAPI

__all__ = ["Status", "StatusFile", "default_status_file"]


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
        import json  # here: the status is first written after the first starts, which need none of it

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
