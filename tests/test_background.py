"""Blocking work off the loop (watchdog/background.py), with real threads."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import Future

import pytest
from helpers import wait_for

from watchdog import background
from watchdog.background import MAX_JOBS, Background


class Loop:
    """What the engine's loop does for its background jobs: on a wake, run what finished."""

    def __init__(self) -> None:
        self.woken = threading.Event()
        self.jobs = Background(self.woken.set)
        self.done: list[Future[object]] = []

    def finished(self, count: int) -> list[Future[object]]:
        """Wait until ``count`` jobs have been answered on this thread."""

        def enough() -> bool:
            self.woken.clear()
            self.jobs.run_finished()
            return len(self.done) >= count

        wait_for(enough, what=f"{count} jobs answered")
        return self.done


def test_one_job_after_another_reuses_one_worker() -> None:
    loop = Loop()
    for number in range(1, 101):
        loop.jobs.submit(threading.current_thread, loop.done.append)
        loop.finished(number)
    workers = {future.result() for future in loop.done}
    assert len(workers) == 1 and threading.current_thread() not in workers


def test_at_most_max_jobs_run_at_once_and_the_rest_follow_in_order() -> None:
    loop = Loop()
    release = threading.Semaphore(0)
    started: list[int] = []

    def job(number: int) -> int:
        started.append(number)
        release.acquire()
        return number

    extra = 6
    futures = [loop.jobs.submit(lambda n=number: job(n), loop.done.append)
               for number in range(MAX_JOBS + extra)]
    wait_for(lambda: len(started) == MAX_JOBS, what=f"{MAX_JOBS} jobs running")
    assert not any(future.running() or future.done() for future in futures[MAX_JOBS:])
    release.release()
    loop.finished(1)
    wait_for(lambda: len(started) == MAX_JOBS + 1, what="the first waiting job started")
    assert started[-1] == MAX_JOBS
    for _ in range(MAX_JOBS + extra - 1):
        release.release()
    assert sorted(future.result() for future in loop.finished(MAX_JOBS + extra)) == list(
        range(MAX_JOBS + extra))


def test_an_idle_worker_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(background, "IDLE_SECONDS", 0.05)
    loop = Loop()
    loop.jobs.submit(threading.current_thread, loop.done.append)
    [future] = loop.finished(1)
    worker = future.result()
    wait_for(lambda: not worker.is_alive(), what="the idle worker to end")
    # A job after that starts a worker again.
    loop.jobs.submit(threading.current_thread, loop.done.append)
    assert loop.finished(2)[1].result() not in (worker, threading.current_thread())


def test_no_job_is_stranded_while_idle_workers_end(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(background, "IDLE_SECONDS", 0.0005)
    loop = Loop()
    for number in range(1, 2001):
        loop.jobs.submit(lambda: None, loop.done.append)
        if number % 7 == 0:
            time.sleep(0.001)  # a pause in which idle workers time out, as new jobs come
        loop.jobs.run_finished()
    loop.finished(2000)


def test_a_failing_job_hands_its_exception_to_on_done() -> None:
    loop = Loop()

    def fails() -> None:
        raise RuntimeError("probe broke")

    loop.jobs.submit(fails, loop.done.append)
    [future] = loop.finished(1)
    with pytest.raises(RuntimeError, match="probe broke"):
        future.result()


# Run as nobody, whose processes and threads RLIMIT_NPROC counts (root's it does not).
WITHOUT_THREADS = """
import resource, threading
from watchdog.background import Background

woken, done = threading.Event(), []
jobs = Background(woken.set)
soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)
resource.setrlimit(resource.RLIMIT_NPROC, (1, hard))  # no thread can start
jobs.submit(lambda: "ran", done.append)
jobs.run_finished()
print("first:", repr(done[0].exception()))
resource.setrlimit(resource.RLIMIT_NPROC, (soft, hard))
woken.clear()
jobs.submit(lambda: "ran", done.append)
woken.wait(10)
jobs.run_finished()
print("then:", done[1].result())
"""


def test_a_job_that_gets_no_thread_fails_to_its_on_done_and_the_next_one_runs() -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run as a user a process limit applies to (CI runs as root)")
    nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable]
    if subprocess.run([*nobody, "-c", "import watchdog.background"]).returncode != 0:
        pytest.skip("user nobody cannot run this Python and import watchdog")
    ran = subprocess.run([*nobody, "-c", WITHOUT_THREADS], capture_output=True, text=True, timeout=30)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == ["first: RuntimeError(\"can't start new thread\")", "then: ran"]
