"""Check ``health_tcp``: ``--health-tcp NAME=[HOST:]PORT``, healthy when a connection opens.

HOST defaults to 127.0.0.1 (the container's own loopback); an IPv6 address
goes in brackets (``[::1]:5432``). The connection is closed at once. The
probe runs on the loop (``watchdog.netprobe``): a non-blocking connect the
loop waits on, bounded by ``--health-timeout``, name look-up included. The
check itself (``tcpcheck.py``) is loaded by a run that has one.
"""

from __future__ import annotations

import click

from watchdog import hookimpl
from watchdog.config import Config
from watchdog.health import add_probe

FLAG = "--health-tcp"
DEFAULT_HOST = "127.0.0.1"


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
    given = config.per_rule(FLAG, config.options.get("health_tcp") or ())
    if not given:
        return
    # Here, not at the top: the check's code is loaded by a run that has one, and every start
    # registers this plugin.
    from .tcpcheck import TcpProbe

    for rule, text in given:
        address = parse_address(text)
        if address is None:
            raise click.UsageError(f"{FLAG} {rule.name}={text}: expected [HOST:]PORT, PORT 1 to 65535")
        add_probe(rule, TcpProbe(*address))
