"""Checks ``limits``: ``--max-memory NAME=SIZE`` and ``--max-cpu NAME=PERCENT`` of a rule's processes.

Both measure the rule's own process tree: the processes its matcher found,
the commands the watchdog started for it, and all their descendants (from
the kernel's ``/proc/PID/task/TID/children`` lists where it keeps them, else
through psutil from the top processes of the rule only). Nothing else in
the process table is measured.

- memory: the resident memory (RSS) of the tree, summed; SIZE in powers of
  1024 (``512M``, ``2G``, ``1.5G``; K, M, G, T, with or without ``iB``/``B``);
- CPU: user and system time of the tree (with the reaped children's) per
  second of wall time since the last check, in percent of one core (``150``
  is one and a half cores). The first check averages over the processes'
  lives so far.

Over the limit is a failed check; ``--health-retries`` of them in a row make
the rule unhealthy (see the ``health`` plugin).
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import click
import psutil

from watchdog import hookimpl
from watchdog.config import Config
from watchdog.health import Result, Target, add_probe

UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
MiB = 1024**2


def parse_size(text: str) -> int | None:
    """``512M`` -> bytes; None for anything without a unit, zero or unreadable."""
    found = SIZE.match(text)
    if found is None or not re.search(r"[kmgtb]\s*$", text, re.IGNORECASE):
        return None
    size = int(float(found.group(1)) * UNITS[found.group(2).lower()])
    return size if size > 0 else None


def parse_percent(text: str) -> float | None:
    try:
        value = float(text.strip().removesuffix("%"))
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


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


@dataclass(frozen=True)
class MemoryProbe:
    limit: int  # bytes

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


@hookimpl
def watchdog_add_options() -> list[click.Option]:
    return [
        click.Option(["--max-memory"], multiple=True, metavar="NAME=SIZE",
                     help="Resident memory rule NAME's processes may use together (512M, 2G); "
                          "over it for --health-retries checks: unhealthy."),
        click.Option(["--max-cpu"], multiple=True, metavar="NAME=PERCENT",
                     help="CPU rule NAME's processes may use together, 100 = one core, averaged "
                          "over one --health-interval; over it for --health-retries checks: unhealthy."),
    ]


@hookimpl
def watchdog_configure(config: Config) -> None:
    for rule, text in config.per_rule("--max-memory", config.options.get("max_memory") or ()):
        size = parse_size(text)
        if size is None:
            raise click.UsageError(f"--max-memory {rule.name}={text}: expected a size such as 512M "
                                   "or 2G (K, M, G, T: powers of 1024)")
        add_probe(rule, MemoryProbe(size))
    for rule, text in config.per_rule("--max-cpu", config.options.get("max_cpu") or ()):
        percent = parse_percent(text)
        if percent is None:
            raise click.UsageError(f"--max-cpu {rule.name}={text}: expected a percentage > 0 "
                                   "(100 = one core)")
        add_probe(rule, CpuProbe(percent))
