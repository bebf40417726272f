"""``GET /v1/logs``: services' kept lines as JSON lines, then (``follow``) each new one.

Query: ``rule`` (repeatable; default every rule), ``n`` (the last N lines,
default 30, -1 for all kept), ``since`` (Unix time: lines read at or after
it), ``stream`` (``stdout`` or ``stderr``; default both), ``follow`` (``1``:
keep the answer open and send each line as it is read). Each line is
``{"time", "rule", "stream", "run", "pid", "line"}``, in the order the
watchdog read them, several rules interleaved.

The kept lines go out a batch at a time as the client takes them; a follower
that stops reading is dropped once ``MAX_BACKLOG`` bytes wait for it
(``watchdog.unixhttp``), and the services never notice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from watchdog.api import EngineAPI
from watchdog.output import STDERR, STDOUT, Chunk, LogLine, split_lines
from watchdog.unixhttp import MAX_BACKLOG, Connection, HTTPError, Request

DEFAULT_LINES = 30  # as `pebble logs`
BATCH = 256 * 1024  # bytes of kept lines sent at a time: well under MAX_BACKLOG


def query_value(request: Request, key: str) -> str | None:
    values = request.query.get(key)
    return values[-1] if values else None


def parse_query(request: Request) -> tuple[int | None, float, tuple[str, ...], bool]:
    """``(last, since, streams, follow)``; HTTPError 400 for a bad value."""
    text = query_value(request, "n")
    try:
        count = DEFAULT_LINES if text is None else int(text)
    except ValueError:
        raise HTTPError(400, f"n={text!r}: expected a number of lines (-1 for all)") from None
    text = query_value(request, "since")
    try:
        since = 0.0 if text is None else float(text)
    except ValueError:
        raise HTTPError(400, f"since={text!r}: expected a Unix time in seconds") from None
    if since != since:  # NaN
        raise HTTPError(400, "since: expected a Unix time in seconds")
    stream = query_value(request, "stream")
    if stream not in (None, STDOUT, STDERR):
        raise HTTPError(400, f"stream={stream!r}: expected stdout or stderr")
    follow = (query_value(request, "follow") or "").lower() in ("1", "true", "yes")
    return (None if count < 0 else count), since, ((stream,) if stream else (STDOUT, STDERR)), follow


def encode(line: LogLine) -> bytes:
    return (json.dumps(line.as_json()) + "\n").encode()


def serve_logs(engine: EngineAPI, request: Request, connection: Connection, names: Sequence[str]) -> None:
    last, since, streams, follow = parse_query(request)
    kept = engine.output.lines(names, streams, since, last)
    wanted = set(names)

    late: list[Chunk] = []  # read while the kept lines still go out: sent after them

    def on_chunk(chunk: Chunk) -> None:
        if chunk.rule not in wanted or chunk.stream not in streams:
            return
        if pending or late:
            late.append(chunk)
            if sum(len(c.data) for c in late) > MAX_BACKLOG:
                connection.close()  # as a follower that takes nothing is dropped
            return
        send_chunk(chunk)

    def send_chunk(chunk: Chunk) -> None:
        connection.send(b"".join(
            encode(LogLine(chunk.time, chunk.rule, chunk.stream, chunk.run, chunk.pid, text))
            for text in split_lines(chunk.data)))

    def unfollow() -> None:
        if on_chunk in engine.output.followers:
            engine.output.followers.remove(on_chunk)

    pending = list(reversed(kept))  # popped from the end: oldest first

    def send_batch() -> None:
        batch: list[bytes] = []
        size = 0
        while pending and size < BATCH:
            data = encode(pending.pop())
            batch.append(data)
            size += len(data)
        if batch:
            connection.send(b"".join(batch))
        elif late:
            send_chunk(late.pop(0))
        elif not follow:
            connection.on_drained = None
            connection.close()
        else:
            connection.on_drained = None

    connection.stream()
    if follow:
        engine.output.followers.append(on_chunk)
        connection.on_close.append(unfollow)
    connection.on_drained = send_batch
    send_batch()
