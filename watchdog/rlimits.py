"""``--rlimit NAME=RESOURCE=SOFT[:HARD]``: resource limits a rule's processes start with.

RESOURCE is ``ulimit``'s and Docker's name (``nofile``, ``nproc``, ``core``,
``memlock``, ``stack``, ``as``, ``cpu``, ``fsize``, ``data``, ``rss``,
``locks``, ``sigpending``, ``msgqueue``, ``nice``, ``rtprio``, ``rttime``),
in any case, with or without ``RLIMIT_``. A value is a number, optionally
with a K, M or G suffix (powers of 1024), or ``unlimited`` (``infinity``,
systemd's word). One value sets both limits, as with Docker and systemd.
"""

from __future__ import annotations

import os
import resource

import click

RESOURCES = {
    name: getattr(resource, f"RLIMIT_{name.upper()}")
    for name in ("nofile", "nproc", "core", "memlock", "stack", "as", "cpu", "fsize", "data", "rss",
                 "locks", "sigpending", "msgqueue", "nice", "rtprio", "rttime")
    if hasattr(resource, f"RLIMIT_{name.upper()}")
}
UNLIMITED_WORDS = ("unlimited", "infinity")
SUFFIXES = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
# The kernel stores limits as unsigned 64-bit numbers; the largest is RLIM_INFINITY itself.
MAX_VALUE = 2**64 - 2


def parse_rlimit(flag: str, text: str) -> tuple[str, int, int]:
    """``RESOURCE=SOFT[:HARD]`` to ``(resource name, soft, hard)``."""
    name, sep, values = text.partition("=")
    key = name.strip().lower().removeprefix("rlimit_")
    flag = f"{flag}={text.strip()}"  # the whole value: a config file's line is found by it
    if not sep or not values.strip():
        raise click.UsageError(f"{flag}: expected RESOURCE=SOFT[:HARD], e.g. nofile=65536")
    if key not in RESOURCES:
        raise click.UsageError(f"{flag}: {name.strip()!r} is not a resource limit "
                               f"(one of {', '.join(RESOURCES)})")
    soft_text, _, hard_text = values.partition(":")
    soft = parse_value(flag, soft_text)
    hard = parse_value(flag, hard_text) if hard_text.strip() else soft
    if limit_order(soft) > limit_order(hard):
        raise click.UsageError(f"{flag}: the soft limit {soft_text.strip()} is above the hard "
                               f"limit {hard_text.strip()}")
    check_allowed(flag, key, hard)
    return key, soft, hard


def parse_value(flag: str, text: str) -> int:
    word = text.strip().lower()
    if word in UNLIMITED_WORDS:
        return resource.RLIM_INFINITY
    multiplier = SUFFIXES.get(word[-1:], 1)
    digits = word[:-1] if multiplier != 1 else word
    if not digits.isdigit():
        raise click.UsageError(f"{flag}: {text.strip()!r} is not a limit (a number, with K, M or G, "
                               "or unlimited)")
    value = int(digits) * multiplier
    if value > MAX_VALUE:
        raise click.UsageError(f"{flag}: {text.strip()!r} is too large (use unlimited)")
    return value


def limit_order(value: int) -> float:
    """RLIM_INFINITY is -1 in Python: it sorts above every number."""
    return float("inf") if value == resource.RLIM_INFINITY else value


def check_allowed(flag: str, key: str, hard: int) -> None:
    """Only root may raise a hard limit above the watchdog's own: say so at start, not at each start."""
    if os.geteuid() == 0:
        return
    _, own_hard = resource.getrlimit(RESOURCES[key])
    if limit_order(hard) > limit_order(own_hard):
        own = "unlimited" if own_hard == resource.RLIM_INFINITY else str(own_hard)
        raise click.UsageError(f"{flag}: only root can raise the hard limit of {key} above the "
                               f"watchdog's own ({own})")


def apply(limits: dict[int, tuple[int, int]]) -> None:
    """In the child, before it drops root: a raised hard limit takes root's privilege."""
    for which, (soft, hard) in limits.items():
        resource.setrlimit(which, (soft, hard))


def describe(value: int) -> str:
    return "unlimited" if value == resource.RLIM_INFINITY else str(value)
