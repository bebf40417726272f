"""Reading and showing a running watchdog's status, with the standard library alone.

``watchdog --status`` and ``watchdogctl status`` are what health checks run
every few seconds in every container: this module and ``watchdog.execprobe`` are
their whole path, so they must stay cheap to import. Import nothing here that
pulls in click, pluggy, psutil or the engine (``tests/test_exec_probe.py``
fails when something does). The ``status`` plugin writes the file read here.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

from watchdog.escapes import printable
from watchdog.exits import EXIT_NO_WATCHDOG
from watchdog.safefiles import Untrusted, default_directory, read_trusted
from watchdog.snapshot import DEAD_STATES, Snapshot, is_watchdog_argv, read_stat
from watchdog.view import exit_status, format_table


def default_status_file() -> str:
    """``/run/watchdog/status.json`` for root; a private per-user directory otherwise
    (``watchdog.safefiles.default_directory``)."""
    return os.path.join(default_directory(), "status.json")


def read(path: str) -> dict[str, Any] | None:
    """The status file's content; None when there is none to believe.

    Raises Untrusted when another user could have written it (see
    ``watchdog.safefiles``): a forged file must not pass for a watchdog.
    """
    try:
        data = read_trusted(path)
        if data is None:
            return None
        import json  # here: a run that finds no status file starts its services without it

        content = json.loads(data)
    except (OSError, ValueError, RecursionError) as exc:
        if isinstance(exc, Untrusted):
            raise
        return None
    return content if isinstance(content, dict) else None


def live_watchdog(content: dict[str, Any] | None) -> int | None:
    """The pid of the watchdog that wrote ``content``, if it is still running."""
    if content is None or not isinstance(content.get("pid"), int):
        return None
    pid: int = content["pid"]
    proc = read_stat("/proc", str(pid))
    if proc is None or proc.state in DEAD_STATES:
        return None
    snapshot = Snapshot({pid: proc}, os.getpid())
    try:
        started = float(content.get("started", 0))
    except (TypeError, ValueError):
        return None
    # A reused pid belongs to a process younger than the file's watchdog.
    if is_watchdog_argv(snapshot.cmdline(pid) or []) and snapshot.start_time(proc) <= started + 1:
        return pid
    return None


def show_status(path: str, as_json: bool, out: TextIO | None = None) -> int:
    """``watchdog --status``: print the table (or JSON) and return the exit status."""
    try:
        content = read(path)
    except Untrusted as exc:
        print(f"watchdog: not trusting the status file: {printable(str(exc))}", file=sys.stderr)
        return EXIT_NO_WATCHDOG
    if live_watchdog(content) is None or content is None:
        print(f"no watchdog is running (status file {path})", file=sys.stderr)
        return EXIT_NO_WATCHDOG
    # What a service said of itself (a health check's output, a status message) is
    # shown without the control characters that could drive the terminal.
    rules = printable(content.get("rules", []))
    import json

    print(json.dumps(content, indent=1) if as_json else format_table(rules), file=out or sys.stdout)
    return exit_status(rules)
