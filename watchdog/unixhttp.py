"""A small HTTP/1.1 server on a unix (or TCP) socket, served from the engine's loop without ever blocking it.

Every socket is non-blocking and the loop calls us only when one is ready,
so a client that sends half a request, or stops reading its answer, costs
a file descriptor and a little memory until its deadline, never a wait.
Limits (``Limits``, the control socket's by default): a request is at most
``MAX_REQUEST`` bytes and must arrive within ``REQUEST_TIME``; its answer
must be taken within ``RESPONSE_TIME`` (a handler that will answer later may
lift that: ``Connection.answer_later``); at most ``MAX_CONNECTIONS`` clients
at once. Up to ``MAX_CONNECTIONS`` more are told 503 (once their request is
in, or after ``BUSY_TIME``: an answer sent while a client still writes would
reach it as a reset); beyond those, a connection is closed at once. One
request per connection (``Connection: close``). A streamed answer
(``stream``, chunked) has no deadline, but a client that lets
``MAX_BACKLOG`` bytes pile up unread is dropped.

The peer's credentials (``SO_PEERCRED``) are read at accept; ``authorize``
decides, and anyone it refuses gets 403 with a JSON error. The same server
answers on a listening TCP socket too (the probe endpoints): ``peer_of``
then says who the client is, and ``error_page`` how errors look.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import stat
import struct
from collections.abc import Callable
from typing import Any, Protocol

from watchdog.logs import logger
from watchdog.safefiles import check_directory, directory_mode
from watchdog.timers import Timer

MAX_REQUEST = 64 * 1024
REQUEST_TIME = 10.0
RESPONSE_TIME = 30.0
MAX_CONNECTIONS = 64
BUSY_TIME = 1.0
MAX_BACKLOG = 1024 * 1024
ACCEPT_BATCH = 16  # accepts per wake-up, so a flood of clients cannot hold the loop
RECV_SIZE = 65536
PEERCRED = struct.Struct("3i")  # pid, uid, gid


class Limits:
    """What one server lets a client take: request size and time, answer time, clients at once."""

    __slots__ = ("max_request", "request_time", "response_time", "max_connections")

    def __init__(self, max_request: int = MAX_REQUEST, request_time: float = REQUEST_TIME,
                 response_time: float = RESPONSE_TIME, max_connections: int = MAX_CONNECTIONS) -> None:
        self.max_request = max_request
        self.request_time = request_time
        self.response_time = response_time
        self.max_connections = max_connections


CONTROL_LIMITS = Limits()


class Loop(Protocol):
    """What the server needs of the engine (``watchdog.api.EngineAPI`` has it all)."""

    def add_reader(self, fd: int, on_readable: Callable[[], None]) -> None: ...
    def remove_reader(self, fd: int) -> None: ...
    def add_writer(self, fd: int, on_writable: Callable[[], None]) -> None: ...
    def remove_writer(self, fd: int) -> None: ...
    def call_later(self, delay: float, callback: Callable[[], None] | None = None) -> Timer: ...


class Peer:
    """Who a client is: its process and user, as the kernel says (``SO_PEERCRED``)."""

    __slots__ = ("pid", "uid", "gid")

    def __init__(self, pid: int, uid: int, gid: int) -> None:
        self.pid = pid
        self.uid = uid
        self.gid = gid


class HTTPError(Exception):
    """Answer with ``status`` and ``{"error": message, **extra}``."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


class Request:
    def __init__(self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str],
                 body: bytes, peer: Peer, query_string: str = "") -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.peer = peer
        self.query_string = query_string  # as sent: ``parse_qs`` drops a bare ``?verbose`` from ``query``

    def json(self) -> Any:
        """The body as JSON; an empty body is ``{}``."""
        if not self.body.strip():
            return {}
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise HTTPError(400, f"the body is not JSON: {exc}") from None
        except RecursionError:  # the parser recurses once per [ or {
            raise HTTPError(400, "the body is JSON nested too deeply") from None


def parse_request(data: bytes, peer: Peer, max_request: int = MAX_REQUEST) -> Request | None:
    """The request in ``data``, None while it is incomplete; HTTPError when it is not HTTP."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        if len(data) > max_request:
            raise HTTPError(431, f"request headers are longer than {max_request} bytes")
        return None
    lines = data[:end].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[0].isalpha():
        raise HTTPError(400, f"not an HTTP/1.x request line: {lines[0][:80]!r}")
    method, target, _ = parts
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise HTTPError(400, f"malformed header line: {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    if "transfer-encoding" in headers:
        raise HTTPError(411, "chunked request bodies are not accepted: send Content-Length")
    length_text = headers.get("content-length", "0")
    if not (length_text.isascii() and length_text.isdigit()):  # "²" is a digit to str.isdigit
        raise HTTPError(400, f"bad Content-Length: {length_text[:20]!r}")
    length = int(length_text)
    if end + 4 + length > max_request:
        raise HTTPError(413, f"requests are limited to {max_request} bytes")
    body = data[end + 4:end + 4 + length]
    if len(body) < length:
        return None
    from urllib.parse import parse_qs, urlsplit  # here: the first request, not start-up

    url = urlsplit(target)
    return Request(method.upper(), url.path, parse_qs(url.query), headers, bytes(body), peer, url.query)


def response_head(status: int, headers: dict[str, str]) -> bytes:
    from http import HTTPStatus  # here: the first answer, not start-up

    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"]
    lines += [f"{name}: {value}" for name, value in {**headers, "Connection": "close"}.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def response(status: int, content_type: str, content: bytes, headers: dict[str, str] | None = None) -> bytes:
    return response_head(status, {"Content-Type": content_type, "Content-Length": str(len(content)),
                                  **(headers or {})}) + content


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> bytes:
    return response(status, "application/json", (json.dumps(body) + "\n").encode(), headers)


def json_error(error: HTTPError) -> bytes:
    """The control socket's errors: ``{"error": "one line", ...}``."""
    return json_response(error.status, {"error": error.message, **error.extra})


def unix_peer(sock: socket.socket) -> Peer:
    return Peer(*PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, PEERCRED.size)))


Handler = Callable[["Request", "Connection"], None]


class Connection:
    """One client: reading its request, then answering (at once, later, or as a stream)."""

    def __init__(self, server: Server, sock: socket.socket, peer: Peer, *, refusal: str | None = None,
                 refusal_status: int = 403) -> None:
        self.server = server
        self.sock = sock
        self.peer = peer
        self.fd = sock.fileno()
        self.data = bytearray()
        self.out = bytearray()
        self.phase = "reading"  # reading, handling, answering, streaming, closed
        self.watching = ""  # "r", "w" or "": how the loop watches our fd now
        self.on_close: list[Callable[[], None]] = []
        self.on_drained: Callable[[], None] | None = None  # a stream's backlog went out: send more
        self.refusal = refusal  # why this peer may not be served
        self.refusal_status = refusal_status  # 503 for a client beyond the limit
        busy = refusal_status == 503
        self.deadline: Timer | None = server.loop.call_later(
            BUSY_TIME if busy else server.limits.request_time, self._timed_out)
        self._watch("r")

    @property
    def closed(self) -> bool:
        return self.phase == "closed"

    # --- the answer ---------------------------------------------------------------

    def respond(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        """Send a JSON answer and close; a no-op once the client is gone."""
        self.answer(json_response(status, body, headers))

    def answer(self, data: bytes) -> None:
        """Send a whole answer (status line, headers, body) and close; a no-op once the client is gone."""
        if self.phase in ("closed", "answering", "streaming"):
            return
        self.phase = "answering"
        self.out += data
        self._flush()

    def fail(self, error: HTTPError) -> None:
        self.answer(self.server.error_page(error))

    def answer_later(self) -> None:
        """No deadline for this answer: the handler answers when its work ends (a reload),
        however long that takes. The client may give up meanwhile; it costs a descriptor."""
        if self.phase == "handling":
            self._cancel_deadline()

    def stream(self, content_type: str = "application/x-ndjson") -> None:
        """Start a chunked answer with no deadline; ``send`` adds to it, ``close`` ends it."""
        if self.phase != "handling":
            return
        self.phase = "streaming"
        self._cancel_deadline()
        self.out += response_head(200, {"Content-Type": content_type, "Cache-Control": "no-cache",
                                        "Transfer-Encoding": "chunked"})
        self._flush()

    def send(self, data: bytes) -> None:
        """One chunk of a stream; a client that lets too much pile up is dropped."""
        if self.phase != "streaming" or not data:
            return
        self.out += b"%x\r\n%s\r\n" % (len(data), data)
        if len(self.out) > MAX_BACKLOG:
            logger.warning("%s: a client of pid %d took none of its last %d bytes: dropped",
                           self.server.name, self.peer.pid, len(self.out),
                           extra={"event": f"{self.server.name}-dropped"})
            self.close()
            return
        self._flush()

    def close(self) -> None:
        if self.phase == "closed":
            return
        if self.phase == "streaming" and not self.out:
            try:  # the end of the chunked answer, if it fits; it is a courtesy
                self.sock.send(b"0\r\n\r\n")
            except OSError:
                pass
        self.phase = "closed"
        self._watch("")
        self._cancel_deadline()
        self.sock.close()
        self.server.connections.discard(self)
        self.server.turned_away.discard(self)
        self.out = bytearray()  # a dropped client's backlog goes now, not when the last reference does
        for callback in self.on_close:
            callback()
        self.on_close.clear()

    # --- the loop's callbacks ---------------------------------------------------------

    def _readable(self) -> None:
        try:
            data = self.sock.recv(RECV_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the client is gone (or shut its side before a whole request)
            self.close()
            return
        if self.phase != "reading":
            return  # a streaming client may say more; it is ignored
        self.data += data
        try:
            request = parse_request(bytes(self.data), self.peer, self.server.limits.max_request)
        except HTTPError as exc:
            self.begin_answer()
            self.fail(exc)
            return
        if request is not None:
            self.begin_answer()
            self.server.dispatch(request, self)

    def begin_answer(self) -> None:
        self.phase = "handling"
        self._watch("")
        self._cancel_deadline()
        self.deadline = self.server.loop.call_later(self.server.limits.response_time, self._timed_out)

    def _flush(self) -> None:
        while self.out:
            try:
                sent = self.sock.send(self.out)
            except BlockingIOError:
                self._watch("w")
                return
            except OSError:
                self.close()
                return
            del self.out[:sent]
        if self.phase == "answering":
            self.close()
        elif self.phase == "streaming":
            self._watch("r")  # to see the client leave while nothing is to be sent
            if self.on_drained is not None:
                self.on_drained()

    def _timed_out(self) -> None:
        self.deadline = None
        if self.phase == "reading":
            self.begin_answer()
            if self.refusal_status == 503:  # a busy answer need not wait for the request
                self.fail(HTTPError(503, self.refusal or "busy"))
            else:
                self.fail(HTTPError(408, f"no whole request within {self.server.limits.request_time:g}s"))
            if not self.closed:
                self.close()  # no more waiting for a client that does not read either
        else:
            self.close()

    def _watch(self, how: str) -> None:
        if how == self.watching:
            return
        if self.watching:
            self.server.loop.remove_reader(self.fd)  # ends a writer as well
        self.watching = how
        if how == "r":
            self.server.loop.add_reader(self.fd, self._readable)
        elif how == "w":
            self.server.loop.add_writer(self.fd, self._flush)

    def _cancel_deadline(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None


class Server:
    """Accepts clients on a listening socket and hands each request to ``handler``.

    ``handler(request, connection)`` answers with ``connection.respond`` (now
    or later), ``connection.stream``, or raises HTTPError.
    """

    def __init__(self, loop: Loop, sock: socket.socket, handler: Handler,
                 authorize: Callable[[Peer], str | None], *, name: str = "control",
                 limits: Limits = CONTROL_LIMITS, peer_of: Callable[[socket.socket], Peer] = unix_peer,
                 error_page: Callable[[HTTPError], bytes] = json_error) -> None:
        self.loop = loop
        self.sock = sock
        self.handler = handler
        self.authorize = authorize  # None: allowed; else why not
        self.name = name  # in log lines and their events
        self.limits = limits
        self.peer_of = peer_of
        self.error_page = error_page
        self.connections: set[Connection] = set()
        self.turned_away: set[Connection] = set()  # beyond the limit, to be told 503
        self._paused = False
        sock.setblocking(False)
        loop.add_reader(sock.fileno(), self._accept)

    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                client, _ = self.sock.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._pause(exc)
                return
            client.setblocking(False)
            peer = self.peer_of(client)
            # A refused client still sends its request before it gets the 403 (or the
            # 503): an answer sent before it is done writing would reach it as a reset.
            limit = self.limits.max_connections
            if len(self.connections) < limit:
                self.connections.add(Connection(self, client, peer, refusal=self.authorize(peer)))
            elif len(self.turned_away) < limit:
                self.turned_away.add(Connection(self, client, peer, refusal_status=503, refusal=(
                    f"busy: {limit} clients already; try again later")))
            else:
                client.close()

    def _pause(self, exc: OSError) -> None:
        """Out of descriptors: a level-triggered reader would fire at once again, so wait a second."""
        logger.warning("%s: cannot accept a client: %s; trying again in 1s", self.name, exc.strerror,
                       extra={"event": f"{self.name}-error"})
        self.loop.remove_reader(self.sock.fileno())
        self._paused = True
        self.loop.call_later(1.0, self._resume)

    def _resume(self) -> None:
        if self._paused and self.sock.fileno() >= 0:
            self._paused = False
            self.loop.add_reader(self.sock.fileno(), self._accept)

    def dispatch(self, request: Request, connection: Connection) -> None:
        if connection.refusal is not None:
            connection.fail(HTTPError(connection.refusal_status, connection.refusal))
            return
        try:
            self.handler(request, connection)
        except HTTPError as exc:
            connection.fail(exc)
        except BaseException as exc:  # a handler that calls sys.exit is a bug like any other
            logger.error("%s: %s %s failed: %s: %s", self.name, request.method, request.path,
                         type(exc).__name__, exc, extra={"event": f"{self.name}-error"})
            connection.fail(HTTPError(500, f"internal error: {type(exc).__name__}: {exc}"))

    def close(self) -> None:
        for connection in [*self.connections, *self.turned_away]:
            connection.close()
        if not self._paused:
            self.loop.remove_reader(self.sock.fileno())
        self._paused = False
        self.sock.close()


# --- the listening socket ------------------------------------------------------------------


def listen(path: str) -> socket.socket:
    """A listening socket at ``path``, mode 0600, in a directory only root or we can change.

    The directory is made if missing (0755 for root, as ``/run/watchdog``; 0700
    otherwise). A socket left by a dead watchdog is replaced; one a live
    process answers on, or any other file, is not. Raises OSError or
    ValueError saying why.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=directory_mode(), exist_ok=True)
    check_directory(directory)
    try:
        existing = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(existing.st_mode):
            raise ValueError(f"{path} exists and is not a socket")
        if answers(path):
            raise ValueError(f"another process serves {path}")
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # created 0600: never a moment when others may connect
    try:
        sock.bind(path)
    except OSError:
        sock.close()
        raise
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    # Room for the clients served, those told 503 and a burst waiting to be accepted
    # (16 a wake-up): a full queue makes a unix socket's connect fail with EAGAIN.
    sock.listen(4 * MAX_CONNECTIONS)
    return sock


def answers(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except OSError:
        return False
    finally:
        probe.close()
    return True
