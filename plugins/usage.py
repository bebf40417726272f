"""What a rule's process tree uses, for the ``limits`` plugin (not a plugin itself): memory and CPU.

The tree is the processes a rule's matcher found, the commands the watchdog
started for it, and all their descendants: from the kernel's
``/proc/PID/task/TID/children`` lists where it keeps them, else through
psutil from the top processes only. Nothing else in the table is read.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import psutil

from watchdog.health import Result, Target

MiB = 1024**2


def format_size(size: float) -> str:
    if size >= 1024 * MiB:
        return f"{size / (1024 * MiB):.1f} GiB"
    return f"{size / MiB:.0f} MiB" if size >= 10 * MiB else f"{size / MiB:.1f} MiB"


def kernel_children(pid: int) -> list[int] | None:
    """Direct children from /proc (Linux 3.5+ with CONFIG_PROC_CHILDREN); None where absent."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found.extend(int(word) for word in f.read().split())
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}"):
                return found
            return None
        except OSError:
            continue
    return found


def process_tree(pids: tuple[int, ...]) -> Iterator[psutil.Process]:
    """The processes ``pids`` and all their descendants, each once."""
    seen: set[int] = set()
    todo = sorted(pids, reverse=True)  # lowest first: usually a tree's top
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            proc = psutil.Process(pid)
        except psutil.Error:
            continue
        yield proc
        children = kernel_children(pid)
        if children is not None:
            todo.extend(children)
            continue
        try:  # no kernel lists: psutil finds every descendant at once
            descendants = proc.children(recursive=True)
        except psutil.Error:
            continue
        for child in descendants:
            if child.pid not in seen:
                seen.add(child.pid)
                yield child


class MemoryProbe:
    def __init__(self, limit: int) -> None:
        self.limit = limit  # bytes

    def __call__(self, target: Target) -> Result:
        rss = 0
        for proc in process_tree(target.pids):
            try:
                rss += proc.memory_info().rss
            except psutil.Error:
                continue
        if rss > self.limit:
            return Result(False, f"rss {format_size(rss)} > {format_size(self.limit)}")
        return Result(True, f"rss {format_size(rss)}")


class CpuProbe:
    """Keeps, between checks, each process's CPU seconds so far (by pid and start time)."""

    def __init__(self, limit: float) -> None:
        self.limit = limit  # percent of one core
        self.seen: dict[tuple[int, float], float] = {}
        self.last: float | None = None

    def __call__(self, target: Target) -> Result:
        now = time.time()
        used, oldest = 0.0, now
        current: dict[tuple[int, float], float] = {}
        for proc in process_tree(target.pids):
            try:
                with proc.oneshot():
                    key = (proc.pid, proc.create_time())
                    times = proc.cpu_times()
            except psutil.Error:
                continue
            total = times.user + times.system + times.children_user + times.children_system
            current[key] = total
            used += max(0.0, total - self.seen.get(key, 0.0))
            oldest = min(oldest, key[1])
        window = now - (self.last if self.last is not None else oldest)
        self.seen, self.last = current, now
        percent = 100.0 * used / window if window > 0 else 0.0
        if percent > self.limit:
            return Result(False, f"cpu {percent:.0f}% > {self.limit:g}%")
        return Result(True, f"cpu {percent:.0f}%")
