"""The exec probe: ``watchdog --status`` and ``watchdogctl status`` without the command tree.

A Docker HEALTHCHECK or a Kubernetes exec probe starts one of these every few
seconds in every container, so they are the commands whose start-up cost
counts. The ``watchdog`` and ``watchdogctl`` programs enter here: a command
line that is exactly a status query (the flags below, nothing else) is
answered with ``watchdog.statusview`` and the standard library; any other goes
to the full command (``watchdog.cli``, ``watchdog.ctl``), which gives the same
answer for these, or the usage error. Import nothing here that pulls in click,
pluggy, psutil or the engine (``tests/test_exec_probe.py`` checks it).

- ``watchdog --status [--json] [--status-file PATH]``, unless ``WATCHDOG_CONFIG``,
  ``WATCHDOG_PLUGIN``, ``WATCHDOG_DISABLE`` or ``WATCHDOG_STATUS_JSON`` is set
  (a file or a plugin could change what the options mean);
- ``watchdogctl [--socket PATH] [--timeout SECONDS] status [--json] [NAME...]``:
  one GET on the control socket. Only an answer with rules, or no one serving
  the socket, or no answer in time, is handled here; anything else (refused,
  an error status, a malformed answer) is asked again by the full command,
  which words every case (a status request changes nothing).
"""

from __future__ import annotations

import gc
import math
import os
import sys
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    import socket
    from collections.abc import Sequence

from watchdog.escapes import printable
from watchdog.exits import EXIT_NO_WATCHDOG
from watchdog.safefiles import owner_words, trusted_uid
from watchdog.statusview import default_status_file, show_status
from watchdog.view import exit_status, format_table

EXIT_BAD_ANSWER = 7  # watchdogctl: no answer in time, or one that makes no sense
CTL_TIMEOUT = 30.0  # watchdogctl --timeout's default
NOT_ANSWERED_HERE = ("WATCHDOG_CONFIG", "WATCHDOG_PLUGIN", "WATCHDOG_DISABLE", "WATCHDOG_STATUS_JSON")
ANSWER_LIMIT = 16 * 1024 * 1024  # a status answer larger than this is not a watchdog's


def status_query(args: Sequence[str]) -> tuple[str, bool] | None:
    """``(status file, as_json)`` when ``args`` is a plain ``watchdog --status``; else None."""
    if any(os.environ.get(name) for name in NOT_ANSWERED_HERE):
        return None
    path, as_json, status = None, False, False
    words = iter(args)
    for word in words:
        if word == "--status":
            status = True
        elif word == "--json":
            as_json = True
        elif word == "--status-file":
            path = next(words, None)
            if path is None:
                return None
        elif word.startswith("--status-file="):
            path = word.partition("=")[2]
        else:
            return None
    if not status or path == "":
        return None
    return path or os.environ.get("WATCHDOG_STATUS_FILE") or default_status_file(), as_json


def watchdog_main() -> NoReturn:
    """The ``watchdog`` program."""
    args = sys.argv[1:]
    query = status_query(args)
    if query is None:
        # No garbage collection while the start builds what lives as long as the run
        # (modules, classes, plugins, options): some 30 collections that free nothing,
        # 5 to 8 ms of a start. Back on once the command line is read (watchdog.cli).
        gc.disable()
        try:
            from watchdog.cli import main

            main(args)
        finally:
            gc.enable()
    sys.exit(show_status(*query))


# --- watchdogctl status ----------------------------------------------------------


def default_socket() -> str:
    """Where the watchdog puts its control socket by default: beside the status file."""
    status_file = os.environ.get("WATCHDOG_STATUS_FILE") or default_status_file()
    return os.path.join(os.path.dirname(status_file), "control.sock")


def ctl_status_query(args: Sequence[str]) -> tuple[str, float, list[str], bool] | None:
    """``(socket, timeout, names, as_json)`` for a plain ``watchdogctl status``; else None."""
    path, timeout = os.environ.get("WATCHDOG_CONTROL_SOCKET") or None, CTL_TIMEOUT
    words = list(args)
    while words and words[0] != "status":
        flag, sep, value = words.pop(0).partition("=")
        if flag not in ("--socket", "--timeout"):
            return None
        if not sep:
            if not words:
                return None
            value = words.pop(0)
        if flag == "--socket":
            path = value or None
        else:
            try:
                timeout = float(value)
            except ValueError:
                return None
            if not (math.isfinite(timeout) and timeout >= 0.01):
                return None  # the full command words the usage error
    if not words:
        return None
    names, as_json = [], False
    for word in words[1:]:
        if word == "--json":
            as_json = True
        elif word.startswith("-"):
            return None
        else:
            names.append(word)
    return path or default_socket(), timeout, names, as_json


def connect(path: str, timeout: float | None) -> socket.socket:
    """A connection to the control socket; OSError as ``socket.connect`` raises it."""
    import socket  # here: ``watchdog --status`` reads a file and needs no socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        raise
    return sock


class NotTrusted(Exception):
    """The socket is served by a user who is neither root nor ours."""


def get_status(path: str, timeout: float, names: Sequence[str]) -> dict[str, Any] | None:
    """The answer to ``GET /v1/status``; None for any answer but a 200 with a JSON object.

    Raises OSError when the socket cannot be reached or does not answer in time.
    """
    from urllib.parse import quote

    query = "&".join(f"rule={quote(name, safe='')}" for name in names)
    request = (f"GET /v1/status{'?' + query if query else ''} HTTP/1.1\r\nHost: watchdog\r\n"
               "Connection: close\r\n\r\n")
    with connect(path, timeout) as sock:
        # Whoever serves the socket answers for the watchdog (as watchdogctl checks it).
        import socket
        import struct

        _, uid, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                        struct.calcsize("3i")))
        if not trusted_uid(uid):
            raise NotTrusted(f"not trusting {path}: it is served by {owner_words(uid)}")
        sock.sendall(request.encode())
        answer = bytearray()
        while len(answer) <= ANSWER_LIMIT:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, sep, body = bytes(answer).partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    if not sep or lines[0].split(None, 2)[1:2] != [b"200"]:
        return None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"transfer-encoding":
            return None
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            body = body[: int(value)]
    import json  # here: this module is also the way into every run, which needs none of it

    try:
        content = json.loads(body)
    except ValueError:
        return None
    if not isinstance(content, dict) or not isinstance(content.get("rules"), list):
        return None
    return content


def ctl_status(path: str, timeout: float, names: Sequence[str], as_json: bool) -> int | None:
    """``watchdogctl status``'s exit status; None to leave the answer to the full command."""
    try:
        content = get_status(path, timeout, names)
    except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
        print(f"watchdogctl: no watchdog is running (no one serves {path})", file=sys.stderr)
        return EXIT_NO_WATCHDOG
    except TimeoutError:
        print(f"watchdogctl: no answer from {path} within {timeout:g}s", file=sys.stderr)
        return EXIT_BAD_ANSWER
    except NotTrusted as exc:
        print(f"watchdogctl: {exc}", file=sys.stderr)
        return EXIT_NO_WATCHDOG
    except OSError:
        return None
    if content is None:
        return None
    rules = printable(content["rules"])  # what services said, without terminal escapes
    import json

    try:
        shown = json.dumps(content, indent=1) if as_json else format_table(rules)
    except (KeyError, TypeError, AttributeError):
        return None  # not the rules a watchdog sends: the full command says so
    print(shown)
    return exit_status(rules)


def watchdogctl_main() -> NoReturn:
    """The ``watchdogctl`` program."""
    args = sys.argv[1:]
    query = ctl_status_query(args)
    code = None if query is None else ctl_status(*query)
    if code is None:
        from watchdog.ctl import main

        main(args)
    sys.exit(code)
