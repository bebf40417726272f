"""Health probes: what a check plugin gives the ``health`` plugin's schedule.

A probe plugin parses its own per-rule flag in ``watchdog_configure`` and
attaches a probe to the rule with ``add_probe``; the built-in ``health``
plugin runs every probe of a running rule once per ``--health-interval``,
off the loop, and turns the results into the rule's health (retries, start
period) and into what unhealthy does. A third-party check is one more probe
added the same way.

A probe is called in a background thread with the rule's processes and the
rule's ``--health-timeout``, and must return within that timeout (bound every
socket, process or read with it); the schedule treats one that has not
answered a second later as timed out.
"""

from __future__ import annotations

import errno
import socket
import sys
from dataclasses import dataclass
from typing import Protocol

from watchdog.readiness import HEALTH_CHECKED
from watchdog.rules import Rule

PROBES = "health.probes"  # rule.settings key: the rule's probes, in the order they run


@dataclass(frozen=True)
class Target:
    """What a probe may look at: the rule's processes when the round began, and its time limit."""

    pids: tuple[int, ...]  # matched processes and commands the engine started, not descendants
    timeout: float


@dataclass(frozen=True)
class Result:
    ok: bool
    detail: str  # in words, for the log and the status: "HTTP 200", "connection refused"


class Probe(Protocol):
    def __call__(self, target: Target) -> Result:
        """Run one check, blocking at most ``target.timeout`` seconds."""


def add_probe(rule: Rule, probe: Probe) -> None:
    """Check ``rule`` with ``probe``; the rule is ready (``--after``) once a check has passed."""
    rule.settings.setdefault(PROBES, []).append(probe)
    rule.settings[HEALTH_CHECKED] = True


def probes(rule: Rule) -> list[Probe]:
    return list(rule.settings.get(PROBES, ()))


def seconds_text(seconds: float) -> str:
    return f"{seconds:g} s"


def failure_words(exc: BaseException, timeout: float) -> str:
    """A network or process error as the log says it: ``timed out after 5 s``, ``connection refused``."""
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"timed out after {seconds_text(timeout)}"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host: {exc.strerror}"
    ssl = sys.modules.get("ssl")  # loaded only once an https check ran
    if ssl is not None and isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, OSError) and exc.errno is not None:
        return (exc.strerror or errno.errorcode.get(exc.errno, str(exc))).lower()
    return f"{type(exc).__name__}: {exc}"
