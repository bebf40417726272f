"""Reading and showing a running watchdog's status, with the standard library alone.

``watchdog --status`` and ``watchdogctl status`` are what health checks run
every few seconds in every container: this module and ``watchdog.execprobe`` are
their whole path, so they must stay cheap to import. Import nothing here that
pulls in click, pluggy, psutil or the engine (``tests/test_exec_probe.py``
fails when something does). The ``status`` plugin writes the file read here.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, TextIO

from watchdog.exits import EXIT_NO_WATCHDOG
from watchdog.snapshot import DEAD_STATES, Snapshot, is_watchdog_argv, read_stat
from watchdog.view import exit_status, format_table


def default_status_file() -> str:
    """``/run/watchdog/status.json`` for root; a per-user path in the temp dir otherwise."""
    if os.geteuid() == 0:
        return "/run/watchdog/status.json"
    import tempfile  # here: what it imports costs every root probe a few ms

    return os.path.join(tempfile.gettempdir(), f"watchdog-{os.geteuid()}", "status.json")


def read(path: str) -> dict[str, Any] | None:
    """The status file's content; None when it is missing or is not a JSON object."""
    try:
        with open(path) as f:
            content = json.load(f)
    except (OSError, ValueError):
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
    content = read(path)
    if live_watchdog(content) is None or content is None:
        print(f"no watchdog is running (status file {path})", file=sys.stderr)
        return EXIT_NO_WATCHDOG
    rules = content.get("rules", [])
    print(json.dumps(content, indent=1) if as_json else format_table(rules), file=out or sys.stdout)
    return exit_status(rules)
