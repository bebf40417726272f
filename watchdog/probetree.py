"""What a health check's command left behind: found through the process table, to be killed.

A probe command runs in a session and process group of its own, so killing
the group ends it and whatever it forked. A child that made a session of its
own (``setsid``, a daemonizing script) has left the group: once its parent
ends it is re-parented to the watchdog (PID 1 or a subreaper), where its
origin is lost. The probe's processes carry a mark in their environment
(``MARK=token``), unique to one run of one probe, and the watchdog's own
orphans that carry it are the probe's. A process that clears its environment
and leaves the group escapes; one that does neither cannot.
"""

from __future__ import annotations

import os

MARK = "WATCHDOG_PROBE_ID"


def stat_fields(pid: str) -> tuple[int, int] | None:
    """``(ppid, pgrp)`` of a process; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2 :].split(None, 3)
    try:
        return int(fields[1]), int(fields[2])
    except (IndexError, ValueError):
        return None


def carries(pid: int, mark: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return mark in f.read().split(b"\0")
    except OSError:
        return False


def probe_processes(pgid: int, token: str) -> list[int]:
    """Every live process of the probe: its group, our orphans that carry its mark, their descendants."""
    me = os.getpid()
    parents: dict[int, int] = {}
    roots: list[int] = []
    mark = f"{MARK}={token}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = stat_fields(entry)
        if fields is None:
            continue
        pid, (ppid, pgrp) = int(entry), fields
        parents[pid] = ppid
        if pgrp == pgid or (ppid == me and pid != me and carries(pid, mark)):
            roots.append(pid)
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    todo = roots
    while todo:
        pid = todo.pop()
        if pid not in found and pid != me:
            found.add(pid)
            todo.extend(children.get(pid, ()))
    return sorted(found)
