"""What a plugin may do with the engine: the ``engine`` argument of the hooks.

Everything here runs on the engine's loop and returns at once: a stop or a
restart goes on in the loop (state ``stopping``), a timer's callback and a
background job's ``on_done`` are called on the loop later. Nothing a plugin
calls here waits for a process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar

from watchdog.output import Capture
from watchdog.rules import Rule
from watchdog.state import RuleStatus
from watchdog.timers import Timer

if TYPE_CHECKING:  # concurrent.futures is imported once background work is
    from concurrent.futures import Future

T = TypeVar("T")


class EngineAPI(Protocol):
    rules: Sequence[Rule]
    status: Mapping[str, RuleStatus]  # by rule name: state, pids, restarts, last exit...
    clock: Callable[[], float]  # monotonic seconds, the clock of call_at
    # Services' output: ``output.lines(names, ...)`` reads what each rule keeps,
    # ``output.followers`` are called with each chunk of whole lines read.
    output: Capture

    def start(self, rule: Rule) -> int | None:
        """Run the rule's command now; its pid, or None when nothing was started.

        A rule in a final state (stopped, exited, failed) is started again;
        a rule that already runs or is starting is left alone (never two
        copies); a rule that is stopping starts once its stop is done.
        """

    def stop(self, rule: Rule, reason: str = "stop requested") -> None:
        """The rule's stop signal to its processes (and SIGCONT), SIGKILL at its ``--grace``.

        Targets: the process group of each command the watchdog started (for
        as long as it has members, the command itself gone or not) and the top
        of each matched process tree; SIGCONT reaches every process. The rule is ``stopping``, then
        ``stopped``, and no action starts it again until ``start``.
        """

    def restart(self, rule: Rule, reason: str = "restart requested", *, planned: bool = False) -> None:
        """Stop like ``stop``, then the rule is ``missing`` and the actions start it again.

        With the built-in ``respawn`` that is at once. By default a restart
        answers a failure (a check that failed, a ping that did not come) and
        counts for the crash-loop backoff and ``--max-restarts`` like a
        crash. Say ``planned=True`` for a restart that is asked for rather
        than caused (an operator, a schedule, a changed file): it counts for
        neither, and the failures in a row start again from zero.
        """

    def signal(self, rule: Rule, sig: int) -> int:
        """Send ``sig`` to the rule's processes (as a stop would); how many got it."""

    def call_at(self, when: float, callback: Callable[[], None] | None = None) -> Timer:
        """Call ``callback()`` on the loop at ``when`` (``engine.clock``); without one, check again then.

        ``timer.cancel()`` takes it back.
        """

    def call_later(self, delay: float, callback: Callable[[], None] | None = None) -> Timer:
        """``call_at(engine.clock() + delay, callback)``."""

    def run_in_background(
        self, work: Callable[[], T], on_done: Callable[[Future[T]], None] | None = None
    ) -> Future[T]:
        """Run blocking ``work()`` in a thread; ``on_done(future)`` is called on the loop after.

        ``future.result()`` in ``on_done`` returns the result or raises what
        ``work`` raised, or ``RuntimeError`` when no thread could be started for
        it (a pid limit reached). Work that can hang must bound itself (timeouts).
        """

    def watch_child(self, pid: int, on_exit: Callable[[int], None]) -> None:
        """Call ``on_exit(returncode)`` on the loop once ``pid`` has ended and been reaped.

        For a process the plugin started itself (``watchdog.processes.spawn``),
        on the loop, before the loop runs again: the engine reaps every child
        (it is PID 1 or a subreaper), so this is how the plugin learns its
        status. The returncode is negative when a signal killed it.
        """

    def add_reader(self, fd: int, on_readable: Callable[[], None]) -> None:
        """Call ``on_readable()`` on the loop whenever ``fd`` is readable (a socket of yours).

        Read without blocking: the loop serves everything else meanwhile.
        """

    def remove_reader(self, fd: int) -> None:
        """Stop watching ``fd`` (before closing it)."""

    def add_writer(self, fd: int, on_writable: Callable[[], None]) -> None:
        """Call ``on_writable()`` on the loop whenever ``fd`` can be written (a socket of yours).

        For output that did not fit at once: write what fits, keep the rest,
        and remove the writer when it is all out. One fd is either a reader
        or a writer at a time.
        """

    def remove_writer(self, fd: int) -> None:
        """Stop watching ``fd`` for writing."""

    def add_rule(self, rule: Rule) -> None:
        """Keep a new rule alive from the next check on (``watchdog_rule_added``).

        While a rule of the same name is being removed, the new one is added
        once the old one is gone: a changed rule never runs twice.
        """

    def remove_rule(self, rule: Rule, reason: str = "removed") -> None:
        """Stop the rule like ``stop``, then forget it (``watchdog_rule_removed``)."""

    def set_health(self, rule: Rule, health: str, detail: str = "") -> None:
        """Record a check's verdict (``watchdog.state.HEALTHY``/``UNHEALTHY``/``UNKNOWN``).

        ``detail`` says it in words ("HTTP 500"). A change is logged and
        reported to ``watchdog_rule_health``, every call to
        ``watchdog_rule_health_checked``; what to do about it is the
        plugins' choice (``engine.restart`` is the usual one).
        """

    def set_ready(self, rule: Rule, ready: bool = True) -> None:
        """Say that the rule is ready (``READY=1``), or no longer (``RELOADING=1``).

        Counts for rules whose ``settings[watchdog.readiness.READY_REPORTED]``
        is True, until their next start; a change is reported to ``watchdog_rule_ready``.
        """

    def adopt(self, rule: Rule, pid: int) -> bool:
        """Count process ``pid`` among the rule's own while it lives (the notify ``MAINPID=``).

        It is then watched, found running and signalled on stop like a
        matched process. False when no such process is there.
        """

    def give_up(self, rule: Rule, reason: str, exit_code: int | None = None) -> None:
        """Stop acting on the rule; with ``exit_code``, stop everything and exit with it."""

    def reopen_log_files(self) -> None:
        """Close every ``--log-file``; each is opened again (created if gone) at its next line."""

    def describe(self, rule: Rule) -> str:
        """What the rule's matcher looks for, in words: ``"a process named 'sshd'"``."""

    def ways_to_match(self, rule: Rule) -> str:
        """The per-rule flags that would give ``rule`` another matcher, for advice in a
        message: ``"--regex web=PATTERN or --pidfile web=PATH"``; empty when there are none."""
