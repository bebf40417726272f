"""Blocking work off the loop: each job runs in a worker thread, its result comes back on the loop.

The loop never waits for a job: when one ends, its future is queued and the
loop is woken (``wake``), and ``run_finished`` calls the job's ``on_done``
on the loop's thread, where plugins may call the engine again. Workers are
daemon threads, so a job that hangs forever cannot keep the watchdog from
exiting; work that may hang must bound itself (a timeout on its socket or
process).

A worker that finishes a job waits for the next one, and ends after
``IDLE_SECONDS`` without one: health probes come every few seconds, and a
thread started for each would cost more than the probe itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from watchdog.hooks import call_contained

if TYPE_CHECKING:
    from concurrent.futures import Future
    from queue import SimpleQueue

T = TypeVar("T")
MAX_JOBS = 64  # running at once; a plugin that starts more waits for one to end
IDLE_SECONDS = 60.0

OnDone = Callable[["Future[Any]"], None] | None
Job = tuple[Callable[[], Any], "Future[Any]", OnDone]


class Background:
    def __init__(self, wake: Callable[[], None],
                 contain: Callable[..., None] = call_contained) -> None:
        self._wake = wake
        self._contain = contain  # calls on_done so that a plugin's bug is logged as its own
        # Made with the first job: most runs hand none off, and import no queue module.
        self._queues: tuple[SimpleQueue[Job], SimpleQueue[tuple[Future[Any], OnDone]]] | None = None
        self._running = 0  # jobs handed to workers and not yet through run_finished (loop only)
        self._waiting: list[Job] = []  # jobs beyond MAX_JOBS, in order
        self._lock = threading.Lock()
        self._idle = 0  # workers waiting for a job that no queued job is meant for (under _lock)

    def submit(self, work: Callable[[], T], on_done: Callable[[Future[T]], None] | None = None) -> Future[T]:
        from concurrent.futures import Future  # here: most runs never need it

        future: Future[T] = Future()
        if self._running < MAX_JOBS:
            self._hand_over((work, future, on_done))
        else:
            self._waiting.append((work, future, on_done))
        return future

    def _hand_over(self, job: Job) -> None:
        if self._queues is None:
            import queue  # here: see __init__

            self._queues = queue.SimpleQueue(), queue.SimpleQueue()
        jobs, finished = self._queues
        self._running += 1
        with self._lock:
            has_idle = self._idle > 0
            if has_idle:
                self._idle -= 1  # that worker's next job is this one
        if not has_idle:
            try:
                threading.Thread(target=self._work, daemon=True, name="watchdog-background").start()
            except RuntimeError as exc:  # no thread to be had now (a pid limit)
                if self._running > 1:  # a busy worker takes it when it is free
                    self._running -= 1
                    self._waiting.insert(0, job)
                else:  # no worker at all: the job fails, as if it had raised
                    _, future, on_done = job
                    if future.set_running_or_notify_cancel():
                        future.set_exception(exc)
                    finished.put((future, on_done))
                    self._wake()
                return
        jobs.put(job)

    def _work(self) -> None:
        import queue  # imported by the _hand_over that started this worker

        assert self._queues is not None
        jobs, finished = self._queues
        while True:
            try:
                work, future, on_done = jobs.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    # Idle and no job queued for it (the others waiting outnumber the queue).
                    if self._idle > 0:
                        self._idle -= 1
                        return
                continue
            try:
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(work())
                    except BaseException as exc:  # delivered to on_done, which decides
                        future.set_exception(exc)
            except Exception:  # a plugin settled the future itself: on_done sees how
                pass
            finally:
                with self._lock:
                    self._idle += 1
                finished.put((future, on_done))
                self._wake()

    def run_finished(self) -> bool:
        """Call ``on_done`` of every job that ended (on the loop); True if there were any."""
        if self._queues is None:
            return False
        finished = self._queues[1]
        any_finished = False
        while not finished.empty():  # the loop alone takes from it: what is there stays
            future, on_done = finished.get_nowait()
            any_finished = True
            self._running -= 1
            if self._waiting:
                self._hand_over(self._waiting.pop(0))
            if on_done is not None:
                self._contain(on_done, future)
        return any_finished
