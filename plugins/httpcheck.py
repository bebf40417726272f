"""The ``health_http`` plugin's check of one URL (not a plugin itself): a GET, its status line judged.

The plugin imports this module once a rule has ``--health-http``.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from watchdog import __version__
from watchdog.health import Cancel, Done, Result, Target, failure_words
from watchdog.netprobe import Address, Exchange, Looked, Resolver, nothing

if TYPE_CHECKING:  # concurrent.futures is imported once background work is
    from concurrent.futures import Future

    from watchdog.api import EngineAPI

STATUS_LINE_LIMIT = 1024  # bytes: an answer without a status line by then is not HTTP


class HttpProbe:
    """One URL's check, made for the rule's run (it keeps the host's resolver)."""

    def __init__(self, url: str, tls: bool, host: str, port: int, path: str) -> None:
        self.url = url
        self.tls = tls
        self.host = host
        self.port = port
        self.path = path
        self.resolver = Resolver(host, port)
        netloc = host if ":" not in host else f"[{host}]"
        self.request = (f"GET {path} HTTP/1.1\r\nHost: {netloc}:{port}\r\n"
                        f"User-Agent: watchdog/{__version__} health check\r\nAccept: */*\r\n"
                        "Connection: close\r\n\r\n").encode("latin-1")

    def start(self, target: Target, engine: EngineAPI, done: Done) -> Cancel:
        if self.tls:
            return TlsCheck(self, target, engine, done).cancel
        exchange = Exchange(engine, self.resolver, target.timeout, self.request, has_status_line,
                            partial(self.finish, target.timeout, done))
        return exchange.cancel

    def finish(self, timeout: float, done: Done, answer: bytes | None, error: BaseException | None) -> None:
        if error is not None or answer is None:
            done(Result(False, failure_words(error or TimeoutError(), timeout)))
        else:
            done(judge(answer.split(b"\n", 1)[0].strip()))

    def tls_status_line(self, addresses: list[Address], deadline: float) -> bytes:
        """Connect to the first address that answers, then GET over TLS (in a thread)."""
        import ssl  # here: ssl costs a plain-HTTP watchdog 5 MiB of resident memory

        error: OSError = OSError("no address")
        for family, sockaddr in addresses:
            sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            try:
                sock.settimeout(remaining(deadline))
                sock.connect(sockaddr)
                break
            except OSError as exc:
                sock.close()
                error = exc
        else:
            raise error
        try:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            sock.settimeout(remaining(deadline))
            sock = context.wrap_socket(sock, server_hostname=self.host)
            sock.settimeout(remaining(deadline))
            sock.sendall(self.request)
            answer = b""
            while not has_status_line(answer):
                sock.settimeout(remaining(deadline))  # a server dripping bytes still ends on time
                chunk = sock.recv(STATUS_LINE_LIMIT)
                if not chunk:
                    break
                answer += chunk
            return answer.split(b"\n", 1)[0].strip()
        finally:
            sock.close()


class TlsCheck:
    """An https check: the look-up on the loop, the TLS exchange in a thread, one timer for both."""

    def __init__(self, probe: HttpProbe, target: Target, engine: EngineAPI, done: Done) -> None:
        self.probe = probe
        self.engine = engine
        self.timeout = target.timeout
        self.deadline = time.monotonic() + target.timeout
        self.done = done
        self.finished = False
        self.timer = engine.call_later(target.timeout, self.timed_out)
        self.forget_lookup: Callable[[], None] = nothing
        forget = probe.resolver.lookup(engine, self.looked_up)  # at once for a numeric host
        if not self.finished:
            self.forget_lookup = forget

    def cancel(self) -> None:
        self.finished = True
        self.timer.cancel()
        self.forget_lookup()

    def end(self, result: Result) -> None:
        if not self.finished:
            self.cancel()
            self.done(result)

    def timed_out(self) -> None:
        self.end(Result(False, failure_words(TimeoutError(), self.timeout)))

    def looked_up(self, result: Looked) -> None:
        if self.finished:
            return
        if isinstance(result, OSError):
            self.end(Result(False, failure_words(result, self.timeout)))
            return
        self.engine.run_in_background(partial(self.probe.tls_status_line, result, self.deadline),
                                      self.answered)

    def answered(self, future: Future[bytes]) -> None:
        try:
            line = future.result()
        except Exception as exc:
            self.end(Result(False, failure_words(exc, self.timeout)))
            return
        self.end(judge(line))


def has_status_line(answer: bytes) -> bool:
    return b"\n" in answer or len(answer) >= STATUS_LINE_LIMIT


def judge(line: bytes) -> Result:
    """The check's verdict on the answer's status line."""
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        shown = line[:60].decode("ascii", "replace")
        return Result(False, f"not an HTTP answer: {shown!r}" if line else "closed without an answer")
    code = int(parts[1])
    return Result(200 <= code < 400, f"HTTP {code}")


def remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left
