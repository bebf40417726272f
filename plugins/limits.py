"""Checks ``limits``: ``--max-memory NAME=SIZE`` and ``--max-cpu NAME=PERCENT`` of a rule's processes.

Both measure the rule's own process tree, and nothing else in the process
table (``usage.py`` beside this plugin).

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
import re

import click

from watchdog import hookimpl
from watchdog.config import Config
from watchdog.health import add_probe

UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
MAX_SIZE = 1024**5  # 1024T: more than any machine's memory, and far from a float's limits
MAX_PERCENT = 100_000.0  # 1,000 cores
# Compiled at the first use (re caches it): only a run with --max-memory reads a size.
SIZE = r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$"


def parse_size(text: str) -> int | None:
    """``512M`` -> bytes; None for anything without a unit, zero or unreadable."""
    found = re.match(SIZE, text, re.IGNORECASE)
    if found is None or not re.search(r"[kmgtb]\s*$", text, re.IGNORECASE):
        return None
    size = float(found.group(1)) * UNITS[found.group(2).lower()]  # 400 digits make inf
    return int(size) if 0 < size <= MAX_SIZE and int(size) > 0 else None


def parse_percent(text: str) -> float | None:
    try:
        value = float(text.strip().removesuffix("%"))
    except ValueError:
        return None
    return value if math.isfinite(value) and 0 < value <= MAX_PERCENT else None


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
    memory_limits = config.options.get("max_memory") or ()
    cpu_limits = config.options.get("max_cpu") or ()
    if not memory_limits and not cpu_limits:
        return
    # psutil costs PID 1 about 2 MiB for its whole life: only runs with a limit load it.
    from .usage import CpuProbe, MemoryProbe

    for rule, text in config.per_rule("--max-memory", memory_limits):
        size = parse_size(text)
        if size is None:
            raise click.UsageError(f"--max-memory {rule.name}={text}: expected a size such as 512M "
                                   "or 2G (K, M, G, T: powers of 1024), at most 1024T")
        add_probe(rule, MemoryProbe(size))
    for rule, text in config.per_rule("--max-cpu", cpu_limits):
        percent = parse_percent(text)
        if percent is None:
            raise click.UsageError(f"--max-cpu {rule.name}={text}: expected a percentage > 0 "
                                   "(100 = one core), at most 100000")
        add_probe(rule, CpuProbe(percent))
