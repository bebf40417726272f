"""Check ``health_http``: ``--health-http NAME=URL``, healthy on a 2xx or 3xx answer.

One ``GET`` of the URL, redirects not followed; only the status line is read,
so a large or endless body costs nothing. Every step (name look-up, connect,
TLS, send, read) shares the one ``--health-timeout``. An ``https`` URL is
checked without verifying the certificate: the probe asks whether the
service answers, and a container's services usually have self-signed ones.

A plain ``http`` check runs on the loop (``watchdog.netprobe``): sockets the
loop waits on, no thread. An ``https`` check looks the name up the same way,
then does its TLS exchange in a background thread, every step bounded by what
is left of the timeout. The check itself (``httpcheck.py``) is loaded by a
run that has one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from watchdog import hookimpl
from watchdog.config import Config
from watchdog.health import add_probe

if TYPE_CHECKING:
    from .httpcheck import HttpProbe

FLAG = "--health-http"


def parse_url(text: str) -> HttpProbe | None:
    try:
        import urllib.parse  # here: only a run with an HTTP check parses URLs

        url = urllib.parse.urlsplit(text.strip())
        port = url.port
    except ValueError:
        return None
    if url.scheme not in ("http", "https") or not url.hostname:
        return None
    # Here, not at the top: the check's code is loaded by a run that has one, and every start
    # registers this plugin.
    from .httpcheck import HttpProbe

    tls = url.scheme == "https"
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    if any(c in path for c in " \r\n"):
        return None
    return HttpProbe(text.strip(), tls, url.hostname, port or (443 if tls else 80), path)


@hookimpl
def watchdog_add_options() -> list[click.Option]:
    return [click.Option([FLAG], multiple=True, metavar="NAME=URL",
                         help="Health check of rule NAME: GET URL answers 2xx or 3xx.")]


@hookimpl
def watchdog_configure(config: Config) -> None:
    for rule, text in config.per_rule(FLAG, config.options.get("health_http") or ()):
        probe = parse_url(text)
        if probe is None:
            raise click.UsageError(f"{FLAG} {rule.name}={text}: expected an http:// or https:// URL "
                                   "with a host, e.g. http://127.0.0.1:8080/health")
        add_probe(rule, probe)
