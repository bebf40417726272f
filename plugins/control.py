"""Plugin ``control``: the control socket, HTTP with JSON over a unix socket (``watchdogctl``).

Endpoints (plugins/control-socket.md): ``GET /v1/status``, ``POST /v1/start``,
``/v1/stop``, ``/v1/restart``, ``/v1/signal``, ``/v1/reload``,
``GET /v1/events`` and ``GET /v1/logs`` (``watchdog.logstream``). Only root and
the watchdog's own user may use it (``SO_PEERCRED``); the socket is 0600 in a
directory no one else can change. Everything runs on the engine's loop through
``watchdog.unixhttp``, which never blocks it. This module only declares the
options and hooks: the server (``watchdog.controlserver``) is loaded by a run
that serves the socket.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from watchdog import hookimpl
from watchdog.config import Config
from watchdog.logs import logger
from watchdog.rules import Rule

from .status import default_status_file

if TYPE_CHECKING:
    from watchdog.api import EngineAPI
    from watchdog.controlserver import ControlServer

SOCKET_NAME = "control.sock"


def default_socket(status_file: str | None) -> str:
    """Next to the status file: ``/run/watchdog/control.sock`` for root."""
    return os.path.join(os.path.dirname(status_file or default_status_file()), SOCKET_NAME)


class Control:
    """One run's control socket: where it is, and its server once it listens."""

    def __init__(self) -> None:
        self.path: str | None = None
        self.options: dict[str, Any] = {}
        self.reread: Callable[[], Config] | None = None
        self.server: ControlServer | None = None
        self.inode: tuple[int, int] | None = None
        self.started = time.time()

    # --- setting up -------------------------------------------------------------------

    @hookimpl
    def watchdog_add_options(self) -> list[click.Option]:
        return [
            click.Option(["--control-socket"], metavar="PATH",
                         help="Where to serve the control socket (watchdogctl). "
                              "[default: control.sock beside the status file]"),
            click.Option(["--no-control-socket"], is_flag=True,
                         help="Serve no control socket."),
        ]

    @hookimpl
    def watchdog_configure(self, config: Config) -> None:
        options = config.options
        self.options = dict(options)
        self.reread = config.reread
        off = options.get("no_control_socket") or options.get("once") or options.get("check")
        self.path = None if off else (options.get("control_socket")
                                      or default_socket(options.get("status_file")))

    def serve(self, engine: EngineAPI) -> None:
        """Listen on the socket; a path that cannot be served is warned of once, and left."""
        assert self.path is not None
        # Here, not at the top: the HTTP server, the feed and reloading are loaded by a run
        # that serves the socket, and every start registers this plugin.
        from watchdog.controlserver import ControlServer
        from watchdog.unixhttp import listen

        try:
            sock = listen(self.path)
        except (OSError, ValueError) as exc:
            logger.warning("no control socket: %s", getattr(exc, "strerror", None) or exc,
                           extra={"event": "control-error"})
            self.path = None
            return
        info = os.stat(self.path)
        self.inode = (info.st_dev, info.st_ino)
        self.server = ControlServer(engine, sock, self.options, self.reread, self.started)
        logger.info("control socket at %s", self.path, extra={"event": "control"})

    @hookimpl
    def watchdog_stopped(self) -> None:
        if self.server is None or self.path is None:
            return
        self.server.close()
        self.server = None
        try:  # only our own socket: another watchdog may have taken the path since
            info = os.lstat(self.path)
            if (info.st_dev, info.st_ino) == self.inode:
                os.unlink(self.path)
        except OSError:
            pass

    # --- events: told to the clients following them -------------------------------------

    @hookimpl
    def watchdog_rule_state(self, rule: Rule, old: str, new: str, reason: str) -> None:
        if self.server is not None:
            self.server.feed.transition(self.server.engine, rule, old, new, reason)

    @hookimpl
    def watchdog_checked(self, engine: EngineAPI) -> None:
        if self.server is not None:
            self.server.emit_changes()
        elif self.path is not None:
            # Served once the first check has started the services, not before: loading and
            # binding the server would delay every first start, and no client can be
            # following changes before the socket exists.
            self.serve(engine)

    @hookimpl
    def watchdog_process_exited(self, rule: Rule, pid: int, returncode: int | None,
                                engine: EngineAPI) -> None:
        status = engine.status[rule.name]
        if self.server is not None and not status.pids:  # the service ended, not one worker of it
            self.server.feed.exited(rule, pid, returncode, status.last_output)

    @hookimpl
    def watchdog_rule_health(self) -> None:
        if self.server is not None:
            self.server.emit_changes()

    @hookimpl
    def watchdog_rule_ready(self) -> None:
        if self.server is not None:
            self.server.emit_changes()

    @hookimpl
    def watchdog_rule_gave_up(self) -> None:
        if self.server is not None:
            self.server.emit_changes()

    @hookimpl
    def watchdog_rule_added(self, rule: Rule, engine: EngineAPI) -> None:
        if self.server is not None:
            self.server.feed.added(engine, rule)

    @hookimpl
    def watchdog_rule_removed(self, rule: Rule) -> None:
        if self.server is not None:
            self.server.removing.discard(rule.name)
            self.server.feed.removed(self.server.engine, rule)
