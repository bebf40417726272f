"""TCP exchanges on the engine's loop, for health checks: look up, connect, ask, read the answer.

Every socket is non-blocking and the loop calls back only when one is ready,
so a probe costs a few system calls and no thread. One timer bounds the whole
exchange, name look-up included.

The C library has no non-blocking ``getaddrinfo``: a numeric address needs
none, and a name is looked up in a background thread, at most one look-up per
host at a time. When the resolver never answers, the probe still ends at its
timeout ("cannot resolve the host: no answer within 5 s") and later rounds
wait on the same look-up rather than start threads that pile up.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from concurrent.futures import Future

    from watchdog.api import EngineAPI
    from watchdog.timers import Timer

Address = tuple[int, Any]  # (family, sockaddr)
Looked = list[Address] | OSError
# (answer, None) once it is complete, or (None, the error)
Finish = Callable[[bytes | None, BaseException | None], None]


def numeric_addresses(host: str, port: int) -> list[Address] | None:
    """The address of a numeric host (``127.0.0.1``, ``::1``), found without a look-up; None for a name."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError):
        return None
    return [(family, sockaddr) for family, _, _, _, sockaddr in found]


def nothing() -> None:
    """What there is to take back of a look-up that is over."""


class Resolver:
    """One host's addresses: at once when numeric, else from one look-up at a time in a thread."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.numeric = numeric_addresses(host, port)
        self._waiting: list[Callable[[Looked], None]] = []
        self._busy = False

    def lookup(self, engine: EngineAPI, then: Callable[[Looked], None]) -> Callable[[], None]:
        """``then(addresses or error)`` on the loop; returns a function that takes the wish back."""
        if self.numeric is not None:
            then(self.numeric)
            return nothing
        self._waiting.append(then)
        if not self._busy:
            self._busy = True
            engine.run_in_background(self._getaddrinfo, self._answered)
        return lambda: self._waiting.remove(then) if then in self._waiting else None

    def _getaddrinfo(self) -> list[Address]:
        found = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        return [(family, sockaddr) for family, _, _, _, sockaddr in found]

    def _answered(self, future: Future[list[Address]]) -> None:
        self._busy = False
        try:
            result: Looked = future.result()
        except OSError as exc:
            result = exc
        except Exception as exc:  # no thread could be started for it
            result = OSError(errno.EAGAIN, f"cannot look it up now: {exc}")
        waiting, self._waiting = self._waiting, []
        for then in waiting:
            then(result)


class Exchange:
    """One connection: send ``request``, read until ``enough(answer)`` or the end; ``finish`` once.

    With ``enough`` None the exchange is the connection itself: it finishes
    with ``b""`` as soon as the connection is open, and closes it.
    """

    __slots__ = ("engine", "resolver", "timeout", "request", "enough", "_finish", "answer", "finished",
                 "sock", "watched", "addresses", "error", "looking_up", "deadline", "timer", "forget_lookup")

    def __init__(self, engine: EngineAPI, resolver: Resolver, timeout: float, request: bytes,
                 enough: Callable[[bytes], bool] | None, finish: Finish) -> None:
        self.engine = engine
        self.resolver = resolver
        self.timeout = timeout
        self.request = request
        self.enough = enough
        self._finish = finish
        self.answer = b""
        self.finished = False
        self.sock: socket.socket | None = None
        self.watched = False  # the socket is registered with the loop
        self.addresses: list[Address] = []
        self.error: OSError | None = None
        self.looking_up = True
        # The timer is set once the exchange has to wait: on loopback most end before that.
        self.deadline = engine.clock() + timeout
        self.timer: Timer | None = None
        self.forget_lookup: Callable[[], None] = nothing
        if resolver.numeric is not None:  # no look-up: connect now (on loopback, done by return)
            self.looking_up = False
            self.addresses = list(resolver.numeric)
            self._connect_next()
            return
        forget = resolver.lookup(engine, self._looked_up)
        if not self.finished:  # an answer the look-up had already may have ended it
            self.forget_lookup = forget
            self._wait()

    def cancel(self) -> None:
        """End it now, without a word to ``finish``."""
        self.finished = True
        self._close()

    def _done(self, answer: bytes | None, error: BaseException | None) -> None:
        if not self.finished:
            self.finished = True
            self._close()
            self._finish(answer, error)

    def _close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.forget_lookup is not nothing:
            self.forget_lookup()
        if self.sock is not None:
            if self.watched:
                self.engine.remove_reader(self.sock.fileno())  # ends a writer as well
                self.watched = False
            self.sock.close()
            self.sock = None

    def _wait(self) -> None:
        """The exchange waits on the loop from now on: its timer bounds the wait."""
        if self.timer is None:
            self.timer = self.engine.call_at(self.deadline, self._timed_out)

    def _timed_out(self) -> None:
        if self.looking_up:
            self._done(None, socket.gaierror(errno.ETIMEDOUT, f"no answer within {self.timeout:g} s"))
        else:
            self._done(None, TimeoutError())

    def _looked_up(self, result: Looked) -> None:
        if self.finished:
            return
        self.looking_up = False
        if isinstance(result, OSError):
            self._done(None, result)
            return
        self.addresses = list(result)
        self._connect_next()

    def _connect_next(self) -> None:
        """Try the next address (as ``socket.create_connection`` tries each in turn)."""
        if self.sock is not None:
            self._close_socket()
        if not self.addresses:
            self._done(None, self.error or OSError(errno.EADDRNOTAVAIL, "no address"))
            return
        family, sockaddr = self.addresses.pop(0)
        try:
            self.sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
            code = self.sock.connect_ex(sockaddr)
        except OSError as exc:
            self.error = exc
            self._connect_next()
            return
        if code == errno.EINPROGRESS:
            # On loopback, the usual case, the handshake is over by now: asking again says
            # how it went (0, refused, or EALREADY while it goes on) in one system call, and
            # saves registering with the loop, a wake-up and unregistering, for every probe.
            code = self.sock.connect_ex(sockaddr)
            if code == errno.EISCONN:
                code = 0
        if code == 0:
            self._connected()
        elif code == errno.EALREADY:
            self._watch(self.engine.add_writer, self._connect_ended)
        else:
            self.error = OSError(code, os.strerror(code))  # ConnectionRefusedError for ECONNREFUSED
            self._connect_next()

    def _close_socket(self) -> None:
        if self.sock is not None:
            self._unwatch()
            self.sock.close()
            self.sock = None

    def _watch(self, add: Callable[[int, Callable[[], None]], None], callback: Callable[[], None]) -> None:
        assert self.sock is not None
        self._unwatch()
        add(self.sock.fileno(), callback)
        self.watched = True
        self._wait()

    def _unwatch(self) -> None:
        if self.watched and self.sock is not None:
            self.engine.remove_reader(self.sock.fileno())
            self.watched = False

    def _connect_ended(self) -> None:
        assert self.sock is not None
        code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self.error = OSError(code, os.strerror(code))
            self._connect_next()
        else:
            self._unwatch()
            self._connected()

    def _connected(self) -> None:
        if self.enough is None:
            self._done(b"", None)
        else:
            self._send()

    def _send(self) -> None:
        assert self.sock is not None
        try:
            sent = self.sock.send(self.request)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._done(None, exc)
            return
        self.request = self.request[sent:]
        if self.request:
            if not self.watched:
                self._watch(self.engine.add_writer, self._send)
            return
        self._watch(self.engine.add_reader, self._receive)

    def _receive(self) -> None:
        assert self.sock is not None and self.enough is not None
        try:
            chunk = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as exc:
            self._done(None, exc)
            return
        self.answer += chunk
        if not chunk or self.enough(self.answer):
            self._done(self.answer, None)

