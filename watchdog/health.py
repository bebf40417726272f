"""Health probes: what a check plugin gives the ``health`` plugin's schedule.

A probe plugin parses its own per-rule flag in ``watchdog_configure`` and
attaches a probe to the rule with ``add_probe``; the built-in ``health``
plugin runs every probe of a running rule once per ``--health-interval``
and turns the results into the rule's health (retries, start period) and
into what unhealthy does. A third-party check is one more probe added the
same way. A probe is one of two kinds:

- a ``LoopProbe`` runs on the engine's loop: it opens non-blocking sockets
  the loop waits on (``engine.add_reader``/``add_writer``), starts processes
  whose exit the loop reports (``engine.watch_child``), bounds itself with a
  timer (``engine.call_later``) and calls ``done`` once. No thread, and a
  probe costs the loop only the moments its sockets are ready. The built-in
  TCP, plain-HTTP and command checks are such probes.
- a blocking ``Probe`` (a plain callable) is called in a background thread
  and must return within the timeout (bound every socket, process or read
  with it). Checks that block in a library (TLS) are written so.

Either way the schedule treats a probe that has not answered a second after
its timeout as timed out, and ends a loop probe then (``cancel``).
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple, Protocol

from watchdog.readiness import HEALTH_CHECKED
from watchdog.rules import Rule

if TYPE_CHECKING:
    from watchdog.api import EngineAPI

PROBES = "health.probes"  # rule.settings key: the rule's probes, in the order they run


# Values a probe gets and gives, compared and never changed: named tuples (cheap to define).
class Target(NamedTuple):
    """What a probe may look at: the rule's processes when the round began, and its time limit."""

    pids: tuple[int, ...]  # matched processes and commands the engine started, not descendants
    timeout: float


class Result(NamedTuple):
    """What one check said."""

    ok: bool
    detail: str  # in words, for the log and the status: "HTTP 200", "connection refused"


class Probe(Protocol):
    def __call__(self, target: Target) -> Result:
        """Run one check, blocking at most ``target.timeout`` seconds."""


Done = Callable[[Result], None]
Cancel = Callable[[], None]


class LoopProbe(Protocol):
    def start(self, target: Target, engine: EngineAPI, done: Done) -> Cancel:
        """Begin one check on the loop and return at once; ``done(result)`` follows, once.

        ``done`` may be called before ``start`` returns (a refused connection).
        The probe bounds itself by ``target.timeout``. The returned function
        ends the check early (the rule stopped, or the schedule gave up on it):
        it closes what the check opened and ``done`` is not called after it.
        """


AnyProbe = Probe | LoopProbe


def add_probe(rule: Rule, probe: AnyProbe) -> None:
    """Check ``rule`` with ``probe``; the rule is ready (``--after``) once a check has passed."""
    rule.settings.setdefault(PROBES, []).append(probe)
    rule.settings[HEALTH_CHECKED] = True


def probes(rule: Rule) -> list[AnyProbe]:
    return list(rule.settings.get(PROBES, ()))


def seconds_text(seconds: float) -> str:
    return f"{seconds:g} s"


def failure_words(exc: BaseException, timeout: float) -> str:
    """A network or process error as the log says it: ``timed out after 5 s``, ``connection refused``."""
    if isinstance(exc, TimeoutError):  # socket.timeout too: the same class since Python 3.10
        return f"timed out after {seconds_text(timeout)}"
    socket = sys.modules.get("socket")  # loaded by any check that resolves a host
    if socket is not None and isinstance(exc, socket.gaierror):
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
