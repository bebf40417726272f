"""Blocking work off the loop: each job runs in a thread, its result comes back on the loop.

The loop never waits for a job: when one ends, its future is queued and the
loop is woken (``wake``), and ``run_finished`` calls the job's ``on_done``
on the loop's thread, where plugins may call the engine again. Threads are
daemons, so a job that hangs forever cannot keep the watchdog from exiting;
work that may hang must bound itself (a timeout on its socket or process).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from watchdog.hooks import call_contained

T = TypeVar("T")
MAX_JOBS = 64  # running at once; a plugin that starts more waits for one to end


class Background:
    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        self._finished: queue.SimpleQueue[tuple[Future[Any], Callable[[Future[Any]], None] | None]] = (
            queue.SimpleQueue()
        )
        self._slots = threading.BoundedSemaphore(MAX_JOBS)
        self._waiting: list[tuple[Callable[[], Any], Future[Any], Callable[[Future[Any]], None] | None]] = []

    def submit(self, work: Callable[[], T], on_done: Callable[[Future[T]], None] | None = None) -> Future[T]:
        future: Future[T] = Future()
        if self._slots.acquire(blocking=False):
            self._launch(work, future, on_done)
        else:
            self._waiting.append((work, future, on_done))
        return future

    def _launch(self, work: Callable[[], Any], future: Future[Any],
                on_done: Callable[[Future[Any]], None] | None) -> None:
        threading.Thread(target=self._run, args=(work, future, on_done), daemon=True,
                         name="watchdog-background").start()

    def _run(self, work: Callable[[], Any], future: Future[Any],
             on_done: Callable[[Future[Any]], None] | None) -> None:
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(work())
            except BaseException as exc:  # delivered to on_done, which decides
                future.set_exception(exc)
        self._finished.put((future, on_done))
        self._wake()

    def run_finished(self) -> bool:
        """Call ``on_done`` of every job that ended (on the loop); True if there were any."""
        any_finished = False
        while True:
            try:
                future, on_done = self._finished.get_nowait()
            except queue.Empty:
                return any_finished
            any_finished = True
            self._slots.release()
            if self._waiting:
                self._slots.acquire()
                self._launch(*self._waiting.pop(0))
            if on_done is not None:
                call_contained(on_done, future)
