"""The ``health_tcp`` plugin's check (not a plugin itself): a connection to HOST:PORT opens, on the loop.

The plugin imports this module once a rule has ``--health-tcp``.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from watchdog.health import Cancel, Done, Result, Target, failure_words
from watchdog.netprobe import Exchange, Resolver

if TYPE_CHECKING:
    from watchdog.api import EngineAPI


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
