"""The control socket's server: its endpoints, its feed of changes and reloads (``watchdogctl``).

The ``control`` plugin makes one when a run serves the socket, so a run
without it loads none of this. Endpoints (plugins/control-socket.md):
``GET /v1/status``, ``POST /v1/start``, ``/v1/stop``, ``/v1/restart``,
``/v1/signal``, ``/v1/reload``, ``GET /v1/events`` and ``GET /v1/logs``
(``watchdog.logstream``). Only root and the watchdog's own user may use it
(``SO_PEERCRED``). Everything runs on the engine's loop through
``watchdog.unixhttp``, which never blocks it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import click

from watchdog import __version__, groups
from watchdog.config import Config
from watchdog.feed import Feed
from watchdog.logs import logger
from watchdog.logstream import serve_logs
from watchdog.reload import options_not_applied, plan
from watchdog.rules import parse_signal
from watchdog.state import RUNNING, STARTING, STOPPED, STOPPING
from watchdog.unixhttp import Connection, HTTPError, Peer, Request, Server
from watchdog.view import rule_view

if TYPE_CHECKING:
    from concurrent.futures import Future

    from watchdog.api import EngineAPI

# What ``start`` did when it started nothing, by the state the rule was in.
START_RESULTS = {RUNNING: "already running", STARTING: "already starting",
                 STOPPING: "starts once stopped"}


class ControlServer:
    """The socket's server for one run, the events feed, and a reload in progress."""

    def __init__(self, engine: EngineAPI, sock: socket.socket, options: dict[str, Any],
                 reread: Callable[[], Config] | None, started: float) -> None:
        self.engine = engine
        self.options = options  # the run's, to tell which a reload does not apply
        self.reread = reread
        self.started = started
        self.feed = Feed()
        self.feed.start(engine)
        self.reloading = False
        self.removing: set[str] = set()
        self.server = Server(engine, sock, self.handle, self.authorize)

    def close(self) -> None:
        self.server.close()

    def authorize(self, peer: Peer) -> str | None:
        if peer.uid in (0, os.geteuid()):
            return None
        logger.warning("control: refused a client of uid %d (pid %d): only root and uid %d may "
                       "control this watchdog", peer.uid, peer.pid, os.geteuid(),
                       extra={"event": "control-refused"})
        return f"uid {peer.uid} may not control this watchdog (only root and uid {os.geteuid()})"

    # --- requests -----------------------------------------------------------------------

    def handle(self, request: Request, connection: Connection) -> None:
        routes: dict[str, dict[str, Callable[[Request, Connection], None]]] = {
            "/v1/status": {"GET": self.status},
            "/v1/events": {"GET": self.events},
            "/v1/start": {"POST": partial(self.act, "start")},
            "/v1/stop": {"POST": partial(self.act, "stop")},
            "/v1/restart": {"POST": partial(self.act, "restart")},
            "/v1/signal": {"POST": self.signal},
            "/v1/reload": {"POST": self.reload},
            "/v1/logs": {"GET": self.logs},
        }
        methods = routes.get(request.path.rstrip("/") or "/")
        if methods is None:
            raise HTTPError(404, f"no endpoint {request.path} (endpoints: {', '.join(routes)})")
        action = methods.get(request.method)
        if action is None:
            allowed = ", ".join(methods)
            connection.respond(405, {"error": f"{request.path} takes {allowed}"}, {"Allow": allowed})
            return
        action(request, connection)

    def status(self, request: Request, connection: Connection) -> None:
        engine = self.engine
        names = self.names(request.query.get("rule", []), allow_empty=True)
        rules = [rule_view(rule, engine.status[rule.name]) for rule in engine.rules
                 if not names or rule.name in names]
        connection.respond(200, {"pid": os.getpid(), "started": self.started, "version": __version__,
                                 "rules": rules})

    def act(self, verb: str, request: Request, connection: Connection) -> None:
        engine = self.engine
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("rules"), list):
            raise HTTPError(400, 'expected a body like {"rules": ["NAME", ...]}')
        names = self.names(body["rules"])
        logger.info("%s %s at the request of uid %d (pid %d)", verb, ", ".join(names), request.peer.uid,
                    request.peer.pid, extra={"event": "control"})
        by_name = {rule.name: rule for rule in engine.rules}
        results = []
        for name in names:
            rule = by_name[name]
            before = engine.status[name].state
            pid = None
            if verb == "start":
                pid = engine.start(rule)
                result = "started" if pid is not None else START_RESULTS.get(before, "not started")
            elif verb == "stop":
                engine.stop(rule, f"stopped by uid {request.peer.uid}")
                result = "already stopped" if before == STOPPED else "stopping"
            else:  # an operator's restart is planned: no failure for the backoff
                engine.restart(rule, f"restarted by uid {request.peer.uid}", planned=True)
                result = "restarting"
            status = engine.status[name]
            results.append({"rule": name, "result": result, "state": status.state, "pid": pid})
        self.emit_changes()
        connection.respond(200, {"results": results})

    def signal(self, request: Request, connection: Connection) -> None:
        engine = self.engine
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("rule"), str) \
                or not isinstance(body.get("signal"), str | int):
            raise HTTPError(400, 'expected a body like {"rule": "NAME", "signal": "HUP"}')
        named = self.names([body["rule"]])
        if len(named) != 1:
            raise HTTPError(400, f"signal one rule at a time ({body['rule']} names {len(named)})")
        [name] = named
        try:
            sig = parse_signal("signal", str(body["signal"]))
        except click.UsageError as exc:
            raise HTTPError(400, exc.message) from None
        rule = next(rule for rule in engine.rules if rule.name == name)
        count = engine.signal(rule, sig)
        logger.info("sent %s to %d process(es) at the request of uid %d", sig.name, count,
                    request.peer.uid, extra={"rule": name, "event": "signalled"})
        connection.respond(200, {"rule": name, "signal": sig.name, "processes": count})

    def events(self, request: Request, connection: Connection) -> None:
        engine = self.engine
        names = self.names(request.query.get("rule", []), allow_empty=True)
        connection.stream()
        self.feed.follow(engine, connection, names)

    def logs(self, request: Request, connection: Connection) -> None:
        engine = self.engine
        names = self.names(request.query.get("rule", []), allow_empty=True)
        serve_logs(engine, request, connection, names or [rule.name for rule in engine.rules])

    def reload(self, request: Request, connection: Connection) -> None:
        engine = self.engine
        if self.reread is None:
            raise HTTPError(409, "this watchdog cannot read its configuration again")
        if self.reloading or self.removing:
            raise HTTPError(409, "a reload is still in progress: try again when it is done")
        self.reloading = True
        logger.info("reloading at the request of uid %d", request.peer.uid, extra={"event": "reload"})
        connection.answer_later()  # however long the configuration takes to read, its client hears
        engine.run_in_background(self.reread, partial(self.reloaded, connection))

    def reloaded(self, connection: Connection, future: Future[Config]) -> None:
        self.reloading = False
        engine = self.engine
        try:
            config = future.result()
        except click.ClickException as exc:
            message = exc.format_message()
            logger.warning("reload refused, nothing changed: %s", message, extra={"event": "reload"})
            connection.respond(422, {"error": message})
            return
        except BaseException as exc:  # a plugin's bug while configuring: still nothing changed
            message = f"{type(exc).__name__}: {exc}"
            logger.error("reload failed, nothing changed: %s", message, extra={"event": "reload"})
            connection.respond(500, {"error": f"reload failed, nothing changed: {message}"})
            return
        steps = plan(engine.rules, config.rules)
        for rule in steps.removed:
            self.removing.add(rule.name)
            engine.remove_rule(rule, "removed by reload")
        for old, new in steps.changed:
            self.removing.add(old.name)
            engine.remove_rule(old, "changed by reload")
            engine.add_rule(new)
        for rule in steps.added:
            engine.add_rule(rule)
        summary: dict[str, Any] = steps.summary()
        summary["not_applied"] = options_not_applied(self.options, config.options)
        parts = [f"{what} {', '.join(names)}" for what, names in summary.items()
                 if names and what not in ("unchanged", "not_applied")]
        logger.info("reloaded: %s; %d unchanged", "; ".join(parts) or "no rule changed",
                    len(steps.unchanged), extra={"event": "reload"})
        if summary["not_applied"]:
            logger.warning("reload does not apply changed options %s: restart the watchdog for them",
                           ", ".join(summary["not_applied"]), extra={"event": "reload"})
        engine.reopen_log_files()  # logrotate's create: the next line goes to a new file
        connection.respond(200, summary)

    # --- helpers -------------------------------------------------------------------------

    def names(self, given: list[Any], allow_empty: bool = False) -> list[str]:
        """The rule names asked for, each one known; 404 naming the unknown ones.

        ``GROUP:*``, ``GROUP:NAME`` and ``all`` stand for rules, as in supervisorctl.
        """
        engine = self.engine
        if not given and not allow_empty:
            raise HTTPError(400, "name at least one rule")
        if not all(isinstance(name, str) for name in given):
            raise HTTPError(400, "rule names are strings")
        names, unknown = groups.expand(given, engine.rules)
        if unknown:
            known = [rule.name for rule in engine.rules]
            raise HTTPError(404, f"no rule is named {', '.join(map(repr, unknown))} "
                                 f"(rules: {', '.join(known) or 'none'})", unknown=unknown)
        return names

    def emit_changes(self) -> None:
        self.feed.changes(self.engine)
