"""The watchdog as PID 1 of a PID namespace: reaping, signals, graceful stop, exit status."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from helpers import PROGRAMS, Watchdog, pids, service, wait_for
from namespace import Container, needs_namespace


@pytest.fixture
def container(tmp_path: Path) -> Iterator[Callable[..., Container]]:
    made: list[Container] = []

    def make(*args: str) -> Container:
        box = Container(list(args), tmp_path)
        made.append(box)
        return box

    yield make
    for box in made:
        box.close()


def recorded(path: Path) -> list[tuple[int, str]]:
    if not path.exists():
        return []
    return [(int(pid), what) for pid, what in (line.split() for line in path.read_text().splitlines())]


def reaped(pid: int) -> bool:
    """Gone from the process table: a zombie would still be listed."""
    return not psutil.pid_exists(pid)


def ready(path: Path, count: int = 1) -> list[tuple[int, str]]:
    return wait_for(lambda: [r for r in recorded(path) if r[1] == "READY"][count - 1:] and
                    recorded(path), 10, f"{count} READY in {path.name}")


@needs_namespace
def test_200_orphans_that_exit_leave_no_zombie(tmp_path: Path, container: Callable[..., Container]) -> None:
    box = container(f"{service(tmp_path, 'wd-idle')}")
    box.wait_log("wd-idle: running")
    made = box.run(sys.executable, str(PROGRAMS / "orphans.py"), "200")
    assert made.returncode == 0, made.stderr
    time.sleep(1.0)  # orphans live 0.2 s, then the watchdog must reap them
    assert box.zombies() == []


@needs_namespace
def test_sigterm_stops_children_and_adopted_daemons_then_nothing_survives(
    tmp_path: Path, container: Callable[..., Container]
) -> None:
    child_log, daemon_log = tmp_path / "child", tmp_path / "daemon"
    box = container(str(service(tmp_path, "wd-child", "--record", str(child_log))),
                    str(service(tmp_path, "wd-daemon", "--daemon", "--record", str(daemon_log))))
    ready(child_log)
    ready(daemon_log)
    box.wait_log("wd-daemon: running")
    started = time.monotonic()
    box.signal(signal.SIGTERM)
    assert box.wait() == 0
    assert time.monotonic() - started < 8  # within the default --grace
    assert [what for _, what in recorded(child_log)] == ["READY", "SIGTERM"]
    assert [what for _, what in recorded(daemon_log)] == ["READY", "SIGTERM"]
    assert box.processes() == []


@needs_namespace
def test_a_child_ignoring_sigterm_is_killed_after_the_grace(
    tmp_path: Path, container: Callable[..., Container]
) -> None:
    stubborn = tmp_path / "stubborn"
    box = container(str(service(tmp_path, "wd-stubborn", "--ignore-term", "--record", str(stubborn))),
                    "--grace", "1.5")
    ready(stubborn)
    started = time.monotonic()
    box.signal(signal.SIGTERM)
    assert box.wait() == 4  # services had to be killed
    took = time.monotonic() - started
    assert 1.4 <= took < 3.5, took  # about --grace, not longer
    assert "SIGTERM" in [what for _, what in recorded(stubborn)]
    assert "still running after the grace, sending SIGKILL: wd-stubborn" in box.log()
    assert box.processes() == []


@needs_namespace
def test_a_second_sigterm_skips_the_rest_of_the_grace(
    tmp_path: Path, container: Callable[..., Container]
) -> None:
    stubborn = tmp_path / "stubborn"
    box = container(str(service(tmp_path, "wd-stubborn2", "--ignore-term", "--record", str(stubborn))),
                    "--grace", "30")
    ready(stubborn)
    started = time.monotonic()
    box.signal(signal.SIGTERM)
    box.wait_log("stopping every service")
    box.signal(signal.SIGTERM)
    assert box.wait() == 4
    assert time.monotonic() - started < 5


@needs_namespace
def test_sighup_reaches_every_managed_process_and_stop_signal_is_per_rule(
    tmp_path: Path, container: Callable[..., Container]
) -> None:
    child_log, daemon_log = tmp_path / "child", tmp_path / "daemon"
    box = container(str(service(tmp_path, "wd-hup-child", "--record", str(child_log))),
                    str(service(tmp_path, "wd-hup-daemon", "--daemon", "--record", str(daemon_log))),
                    "--stop-signal", "wd-hup-daemon=QUIT")
    ready(child_log)
    ready(daemon_log)
    box.wait_log("wd-hup-daemon: running")
    box.signal(signal.SIGHUP)
    wait_for(lambda: "SIGHUP" in child_log.read_text() and "SIGHUP" in daemon_log.read_text(),
             what="SIGHUP in both records")
    box.signal(signal.SIGUSR1)
    wait_for(lambda: "SIGUSR1" in child_log.read_text() and "SIGUSR1" in daemon_log.read_text(),
             what="SIGUSR1 in both records")
    assert box.named("wd-hup-child") and box.named("wd-hup-daemon")  # forwarded, not stopped
    box.signal(signal.SIGTERM)
    assert box.wait() == 0
    assert recorded(child_log)[-1][1] == "SIGTERM"
    assert recorded(daemon_log)[-1][1] == "SIGQUIT"


def test_not_pid_1_it_is_a_subreaper_and_reaps_a_double_forked_daemon(tmp_path: Path) -> None:
    wd = Watchdog([str(service(tmp_path, "wd-subreap", "--daemon")), "--interval", "60"], tmp_path)
    try:
        wd.wait_log("registered as child subreaper")
        daemon = wait_for(lambda: pids("wd-subreap"), what="the daemon")
        [pid] = daemon
        assert psutil.Process(pid).ppid() == wd.pid  # the orphan came to us
        os.kill(pid, signal.SIGKILL)
        # Reaped: the pid is gone entirely, not left as a zombie.
        wait_for(lambda: reaped(pid), 5, "the reaping")
        wait_for(lambda: pids("wd-subreap") - daemon, 5, "a new daemon")
    finally:
        wd.stop()


def test_ctrl_c_at_a_terminal_stops_services_cleanly(tmp_path: Path) -> None:
    # A terminal sends SIGINT to its foreground process group: that is the
    # watchdog's group only, since every service runs in a session of its own.
    record = tmp_path / "record"
    wd = Watchdog([str(service(tmp_path, "wd-tty", "--record", str(record)))], tmp_path)
    ready(record)
    os.killpg(wd.pid, signal.SIGINT)
    assert wd.proc.wait(10) == 0
    assert [what for _, what in recorded(record)] == ["READY", "SIGTERM"]
