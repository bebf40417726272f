"""Plugin ``probes``: ``/livez``, ``/readyz`` and ``/startupz`` on TCP for kubelets and load balancers.

``--probe-address [HOST:]PORT`` serves them as plain HTTP (off by default),
as kube-apiserver does: a short text body (``ok``, or one ``[+]``/``[-]``
line per check and the verdict), JSON with ``?verbose``.

- ``/livez``: 200 whenever it answers. It is answered by the loop that reaps
  and restarts, so an answer proves that loop alive, whatever the services
  do: restarting them is the watchdog's job, not the kubelet's.
- ``/readyz``: 200 when every rule (or each ``?rule=NAME``) is ready and no
  health check says unhealthy; 503 with the reasons otherwise, and while
  every service is being stopped.
- ``/startupz``: 200 once every rule (or each ``?rule=NAME``) has been ready
  once since the watchdog started; 503 until then.

Only GET; nothing here can change anything. The server is the control
socket's (``watchdog.unixhttp``, on the same loop, never blocking it) with
tighter limits: requests of at most 8 KiB, whole within 5 s, 64 clients.
This module only declares the option and hooks: the server
(``watchdog.probeserver``) is loaded by a run that gives the option.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click

from watchdog import hookimpl
from watchdog.config import Config
from watchdog.logs import logger
from watchdog.rules import Rule

if TYPE_CHECKING:
    from watchdog.api import EngineAPI
    from watchdog.probeserver import ProbeServer


def parse_address(value: str) -> tuple[str, int]:
    """``8080``, ``:8080``, ``127.0.0.1:8080``, ``[::1]:8080`` -> (host, port); host "" is every address."""
    host, sep, port_text = value.rpartition(":")
    if not sep:
        host, port_text = "", value
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise click.BadParameter(f"{value!r}: write an IPv6 address in brackets, as [::1]:8080")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise click.BadParameter(f"{value!r}: the port must be a number from 0 to 65535")
    return host, int(port_text)


def shown(sockname: Any) -> str:
    host, port = sockname[0], sockname[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Probes:
    """One run's probe address, and its server once it listens."""

    def __init__(self) -> None:
        self.address: tuple[str, int] | None = None
        self.server: ProbeServer | None = None

    @hookimpl
    def watchdog_add_options(self) -> list[click.Option]:
        return [click.Option(
            ["--probe-address"], metavar="[HOST:]PORT",
            help="Serve /livez, /readyz and /startupz over HTTP on this TCP address for Kubernetes "
                 "probes (read only; PORT alone: every address).")]

    @hookimpl
    def watchdog_configure(self, config: Config) -> None:
        value = config.options.get("probe_address")
        off = config.options.get("once") or config.options.get("check")
        if value is None or off:
            return
        try:
            self.address = parse_address(str(value))
        except click.BadParameter as exc:
            raise click.UsageError(f"--probe-address {exc.message}") from None

    @hookimpl
    def watchdog_started(self, engine: EngineAPI) -> None:
        if self.address is None:
            return
        # Here, not at the top: the HTTP server is loaded by a run that serves the probes,
        # and every start registers this plugin.
        from watchdog.probeserver import ProbeServer, listen_tcp

        try:
            sock = listen_tcp(*self.address)
        except OSError as exc:  # in use, or an address this host lacks: the services come first
            logger.error("probes: cannot listen on %s: %s; serving no probes", shown(self.address),
                         os.strerror(exc.errno) if exc.errno else exc, extra={"event": "probes-error"})
            return
        self.server = ProbeServer(engine, sock)
        logger.info("probes: serving /livez, /readyz and /startupz on %s", shown(sock.getsockname()),
                    extra={"event": "probes"})

    @hookimpl
    def watchdog_rule_ready(self, rule: Rule, ready: bool) -> None:
        if ready and self.server is not None:
            self.server.been_ready.add(rule.name)

    @hookimpl
    def watchdog_rule_removed(self, rule: Rule) -> None:
        if self.server is not None:
            self.server.been_ready.discard(rule.name)

    @hookimpl
    def watchdog_stopping(self, signal_name: str) -> None:
        if self.server is not None:
            self.server.stopping = signal_name

    @hookimpl
    def watchdog_stopped(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
