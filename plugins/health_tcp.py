"""Check ``health_tcp``: ``--health-tcp NAME=[HOST:]PORT``, healthy when a connection opens.

HOST defaults to 127.0.0.1 (the container's own loopback); an IPv6 address
goes in brackets (``[::1]:5432``). The connection is closed at once. The
probe runs on the loop (``watchdog.netprobe``): a non-blocking connect the
loop waits on, bounded by ``--health-timeout``, name look-up included.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import click

from watchdog import hookimpl
from watchdog.config import Config
from watchdog.health import Cancel, Done, Result, Target, add_probe, failure_words
from watchdog.netprobe import Exchange, Resolver

if TYPE_CHECKING:
    from watchdog.api import EngineAPI

FLAG = "--health-tcp"
DEFAULT_HOST = "127.0.0.1"


class TcpProbe:
    """A connection to ``host:port`` opens (one made for the rule's run: it keeps the resolver)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.resolver = Resolver(host, port)
        self.connected = Result(True, f"connected to {host}:{port}")  # the same every time

    def start(self, target: Target, engine: EngineAPI, done: Done) -> Cancel:
        exchange = Exchange(engine, self.resolver, target.timeout, b"", None,
                            partial(self.finish, target.timeout, done))
        return exchange.cancel

    def finish(self, timeout: float, done: Done, answer: bytes | None, error: BaseException | None) -> None:
        if error is not None:
            done(Result(False, failure_words(error, timeout)))
        else:
            done(self.connected)


def parse_address(text: str, default_host: str = DEFAULT_HOST) -> tuple[str, int] | None:
    """``80``, ``db:5432``, ``[::1]:80`` as (host, port); None when it is none of these."""
    host, sep, port = text.strip().rpartition(":")
    if not sep:
        host = default_host
    elif host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        return None
    return host, int(port)


@hookimpl
def watchdog_add_options() -> list[click.Option]:
    return [click.Option([FLAG], multiple=True, metavar="NAME=[HOST:]PORT",
                         help="Health check of rule NAME: a TCP connection to HOST (default "
                              "127.0.0.1) and PORT opens.")]


@hookimpl
def watchdog_configure(config: Config) -> None:
    for rule, text in config.per_rule(FLAG, config.options.get("health_tcp") or ()):
        address = parse_address(text)
        if address is None:
            raise click.UsageError(f"{FLAG} {rule.name}={text}: expected [HOST:]PORT, PORT 1 to 65535")
        add_probe(rule, TcpProbe(*address))
