"""``--init`` tasks: one-shot commands run in order, each to completion, before any service.

They run on the engine's selector, so the loop keeps serving signals while
a task runs: a stop signal stops the task (its stop signal, ``--grace``,
SIGKILL) and the watchdog exits without starting anything; forwarded signals
reach the task. A task that cannot be run or exits non-zero ends the start-up
with ``EXIT_INIT_FAILED``. Their output goes where the services' goes
(labelled ``init`` with ``--prefix``).
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Collection, Sequence

from watchdog import processes
from watchdog.children import Children
from watchdog.events import Waiter
from watchdog.exits import EXIT_INIT_FAILED, EXIT_KILLED, EXIT_OK
from watchdog.logs import logger
from watchdog.rules import Rule


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exited with status {returncode}"


class InitTasks:
    """Runs the tasks; ``run`` returns None when all passed, else the watchdog's exit status."""

    def __init__(self, tasks: Sequence[Rule], children: Children, waiter: Waiter, *, grace: float,
                 clock: Callable[[], float], stop_signals: Collection[int],
                 forwarded_signals: Collection[int]) -> None:
        self.tasks = tasks
        self.children = children
        self.waiter = waiter
        self.grace = grace
        self.clock = clock
        self.stop_signals = stop_signals
        self.forwarded_signals = forwarded_signals

    def run(self) -> int | None:
        for index, task in enumerate(self.tasks, 1):
            label = f"init task {index}/{len(self.tasks)} {task.command!r}"
            extra = {"rule": task.name, "event": "init"}
            logger.info("%s: running", label, extra=extra)
            try:
                pid = self.children.spawn(task)
            except OSError as exc:
                logger.error("%s cannot run: %s; starting nothing", label, exc.strerror or exc,
                             extra={**extra, "event": "init-failed"})
                return EXIT_INIT_FAILED
            returncode, stopped_by = self._wait(pid, task)
            if stopped_by is not None:
                logger.info("%s stopped (%s); starting nothing", label, stopped_by, extra=extra)
                return EXIT_KILLED if returncode == -signal.SIGKILL else EXIT_OK
            if returncode != 0:
                logger.error("%s failed: %s; starting nothing", label, describe_exit(returncode),
                             extra={**extra, "event": "init-failed", "pid": pid, "status": returncode})
                return EXIT_INIT_FAILED
            logger.info("%s: done", label, extra={**extra, "pid": pid, "status": 0})
        return None

    def _wait(self, pid: int, task: Rule) -> tuple[int, str | None]:
        """The task's return code, and the stop signal's name if one stopped it."""
        stopped_by: str | None = None
        kill_at: float | None = None
        while True:
            for reaped, _, returncode in self.children.reap():
                if reaped == pid:
                    return returncode, stopped_by
            for signum in self.waiter.take_signals():
                if signum in self.stop_signals and stopped_by is None:
                    stopped_by = signal.Signals(signum).name
                    processes.signal_group(pid, task.stop_signal)
                    processes.signal_group(pid, signal.SIGCONT)
                    kill_at = self.clock() + self.grace
                elif signum in self.stop_signals:  # asked twice: no more waiting
                    kill_at = self.clock()
                elif signum in self.forwarded_signals:
                    processes.signal_group(pid, signum)
            if kill_at is not None and self.clock() >= kill_at:
                logger.warning("init task still running after the grace, sending SIGKILL",
                               extra={"rule": task.name, "event": "kill"})
                processes.signal_group(pid, signal.SIGKILL)
                kill_at = None
            self.waiter.wait(None if kill_at is None else kill_at - self.clock())  # SIGCHLD wakes it
