"""Check ``health_http``: ``--health-http NAME=URL``, healthy on a 2xx or 3xx answer.

One ``GET`` of the URL, redirects not followed; only the status line is read,
so a large or endless body costs nothing. Every step (connect, TLS, send,
read) shares the one ``--health-timeout``. An ``https`` URL is checked
without verifying the certificate: the probe asks whether the service
answers, and a container's services usually have self-signed ones.
"""

from __future__ import annotations

import socket
import time
import urllib.parse
from dataclasses import dataclass

import click

from watchdog import __version__, hookimpl
from watchdog.config import Config
from watchdog.health import Result, Target, add_probe, failure_words

FLAG = "--health-http"
STATUS_LINE_LIMIT = 1024  # bytes: an answer without a status line by then is not HTTP


@dataclass(frozen=True)
class HttpProbe:
    url: str
    tls: bool
    host: str
    port: int
    path: str

    def __call__(self, target: Target) -> Result:
        deadline = time.monotonic() + target.timeout
        try:
            line = self.status_line(deadline, target.timeout)
        except OSError as exc:
            return Result(False, failure_words(exc, target.timeout))
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            shown = line[:60].decode("ascii", "replace")
            return Result(False, f"not an HTTP answer: {shown!r}" if line else "closed without an answer")
        code = int(parts[1])
        return Result(200 <= code < 400, f"HTTP {code}")

    def status_line(self, deadline: float, timeout: float) -> bytes:
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        try:
            if self.tls:
                import ssl  # here: ssl costs a plain-HTTP watchdog 5 MiB of resident memory

                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                sock.settimeout(remaining(deadline))
                sock = context.wrap_socket(sock, server_hostname=self.host)
            netloc = self.host if ":" not in self.host else f"[{self.host}]"
            request = (f"GET {self.path} HTTP/1.1\r\nHost: {netloc}:{self.port}\r\n"
                       f"User-Agent: watchdog/{__version__} health check\r\nAccept: */*\r\n"
                       "Connection: close\r\n\r\n")
            sock.settimeout(remaining(deadline))
            sock.sendall(request.encode("latin-1"))
            answer = b""
            while b"\n" not in answer and len(answer) < STATUS_LINE_LIMIT:
                sock.settimeout(remaining(deadline))  # a server dripping bytes still ends on time
                chunk = sock.recv(STATUS_LINE_LIMIT)
                if not chunk:
                    break
                answer += chunk
            return answer.split(b"\n", 1)[0].strip()
        finally:
            sock.close()


def remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


def parse_url(text: str) -> HttpProbe | None:
    try:
        url = urllib.parse.urlsplit(text.strip())
        port = url.port
    except ValueError:
        return None
    if url.scheme not in ("http", "https") or not url.hostname:
        return None
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
