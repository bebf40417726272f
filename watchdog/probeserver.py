"""The probe endpoints' server: ``/livez``, ``/readyz`` and ``/startupz`` answered on the loop.

The ``probes`` plugin makes one when a run gives ``--probe-address``, so a
run without it loads none of this. The server is the control socket's
(``watchdog.unixhttp``, on the same loop, never blocking it) with tighter
limits: requests of at most 8 KiB, whole within 5 s, 64 clients.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from watchdog.readiness import how
from watchdog.rules import Rule
from watchdog.state import RUNNING, STOPPED, STOPPING, UNHEALTHY, RuleStatus
from watchdog.unixhttp import MAX_CONNECTIONS, Connection, HTTPError, Limits, Peer, Request, Server, response

if TYPE_CHECKING:
    from watchdog.api import EngineAPI

LIMITS = Limits(max_request=8 * 1024, request_time=5.0, response_time=5.0, max_connections=MAX_CONNECTIONS)
TEXT = "text/plain; charset=utf-8"
HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
TCP_PEER = Peer(pid=0, uid=-1, gid=-1)  # a TCP client has no credentials to read


class Check(NamedTuple):
    """One line of an answer: ``[+]rule/web ok`` or ``[-]rule/web failed: missing``."""

    name: str
    ok: bool
    reason: str = ""


def readiness(rule: Rule, status: RuleStatus) -> str | None:
    """Why ``rule`` should get no traffic now, in words; None when it is ready.

    The one place the probes read a rule's state: ready as ``watchdog.readiness``
    says (running, not unhealthy and, since its start, READY=1 or a passing
    check when it reports them; or a one-shot that exited with success).
    """
    if status.given_up:
        return "given up"
    if status.ready:  # the one meaning of ready; it includes a one-shot that exited with success
        return None
    if status.state != RUNNING:
        words = str(status.state)
        if status.waiting_for:
            words += f" for {', '.join(status.waiting_for)}"
        elif status.state in (STOPPING, STOPPED) and status.reason:  # the reason of the stop under way
            words += f" ({status.reason})"
        return words
    if status.health == UNHEALTHY:
        return f"unhealthy: {status.health_detail}" if status.health_detail else "unhealthy"
    if not status.ready:
        return f"running, waiting for {how(rule)}"
    return None


def listen_tcp(host: str, port: int) -> socket.socket:
    """A listening TCP socket; with no host, every IPv6 and IPv4 address (IPv4 only without IPv6)."""
    if host:
        return socket.create_server((host, port), backlog=LIMITS.max_connections)
    if socket.has_dualstack_ipv6():
        try:
            return socket.create_server(("::", port), family=socket.AF_INET6, dualstack_ipv6=True,
                                        backlog=LIMITS.max_connections)
        except OSError:  # IPv6 switched off in this network namespace
            pass
    return socket.create_server(("0.0.0.0", port), backlog=LIMITS.max_connections)


def text_error(error: HTTPError) -> bytes:
    return response(error.status, TEXT, f"{error.message}\n".encode(), HEADERS)


class ProbeServer:
    """One run's probe server: which rules have been ready once, whether every service is stopping."""

    def __init__(self, engine: EngineAPI, sock: socket.socket) -> None:
        self.engine = engine
        self.been_ready: set[str] = set()
        self.stopping: str | None = None  # why every service is being stopped
        self.server = Server(engine, sock, self.handle, lambda peer: None, name="probes", limits=LIMITS,
                             peer_of=lambda client: TCP_PEER, error_page=text_error)

    def close(self) -> None:
        self.server.close()

    def handle(self, request: Request, connection: Connection) -> None:
        endpoints: dict[str, Callable[[Request], list[Check]]] = {
            "/livez": self.livez, "/readyz": self.readyz, "/startupz": self.startupz,
        }
        path = request.path.rstrip("/") or "/"
        endpoint = endpoints.get(path)
        if endpoint is None:
            raise HTTPError(404, f"no endpoint {request.path} (endpoints: {', '.join(endpoints)})")
        if request.method != "GET":
            error = f"{path} takes GET only: nothing here can change anything\n"
            connection.answer(response(405, TEXT, error.encode(), {**HEADERS, "Allow": "GET"}))
            return
        checks = endpoint(request)
        ok = all(check.ok for check in checks)
        verbose = "verbose" in request.query or "verbose" in request.query_string.split("&")
        status = 200 if ok else 503
        if verbose:
            body = {"status": "ok" if ok else "failed", "checks": [check._asdict() for check in checks]}
            content = (json.dumps(body) + "\n").encode()
            connection.answer(response(status, "application/json", content, HEADERS))
            return
        if ok:
            text = "ok\n"
        else:
            lines = [f"[+]{check.name} ok" if check.ok else f"[-]{check.name} failed: {check.reason}"
                     for check in checks]
            text = "\n".join([*lines, f"{path[1:]} check failed"]) + "\n"
        connection.answer(response(status, TEXT, text.encode(), HEADERS))

    def livez(self, request: Request) -> list[Check]:
        if request.query.get("rule"):
            raise HTTPError(400, "/livez takes no ?rule=: it says whether the watchdog itself answers")
        return [Check("ping", True)]

    def readyz(self, request: Request) -> list[Check]:
        engine = self.engine
        checks = [Check("shutdown", self.stopping is None,
                        f"stopping every service ({self.stopping})" if self.stopping else "")]
        for rule in self.rules(request):
            reason = readiness(rule, engine.status[rule.name])
            checks.append(Check(f"rule/{rule.name}", reason is None, reason or ""))
        return checks

    def startupz(self, request: Request) -> list[Check]:
        return [Check(f"rule/{rule.name}", rule.name in self.been_ready,
                      "" if rule.name in self.been_ready else "not ready yet since the watchdog started")
                for rule in self.rules(request)]

    def rules(self, request: Request) -> list[Rule]:
        """The rules ``?rule=NAME`` names (every rule without one); 404 naming the unknown ones."""
        engine = self.engine
        names = request.query.get("rule", [])
        known = [rule.name for rule in engine.rules]
        unknown = [name for name in names if name not in known]
        if unknown:
            raise HTTPError(404, f"no rule is named {', '.join(map(repr, unknown))} "
                                 f"(rules: {', '.join(known) or 'none'})")
        return [rule for rule in engine.rules if not names or rule.name in names]
