"""The engine's verbs and loop services, driven by a real plugin (programs/wd_driver.py).

restart, stop, start and signal act on real processes; a stop never blocks
the loop; timers and background work come back on the loop while reaping and
restarts go on.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

from helpers import PROGRAMS, Watchdog, pids, ready_since, service, wait_for

Start = Callable[..., Watchdog]


class Driven:
    """A watchdog with the driver plugin, and the FIFO to tell it what to do."""

    def __init__(self, watchdog: Start, tmp_path: Path, *args: str) -> None:
        self.fifo = tmp_path / "driver.fifo"
        os.mkfifo(self.fifo)
        self.status_file = tmp_path / "status.json"
        env = {"PYTHONPATH": os.pathsep.join([str(PROGRAMS), os.environ.get("PYTHONPATH", "")]),
               "WD_DRIVER_FIFO": str(self.fifo)}
        self.wd = watchdog("-p", "wd_driver:Driver", "--status-file", str(self.status_file),
                           "--interval", "60", *args, env=env)
        self.done = 0

    def tell(self, line: str) -> None:
        """Send one command and wait until the plugin has acted on it."""
        fd = os.open(self.fifo, os.O_WRONLY)
        try:
            os.write(fd, f"{line}\n".encode())
        finally:
            os.close(fd)
        self.done += 1
        out = Path(f"{self.fifo}.out")
        wait_for(lambda: out.exists() and len(out.read_text().splitlines()) >= self.done,
                 what=f"the driver to act on {line!r}")

    def last_note(self) -> str:
        return Path(f"{self.fifo}.out").read_text().splitlines()[-1]

    def state(self, name: str) -> str:
        try:
            rules = json.loads(self.status_file.read_text())["rules"]
        except (OSError, ValueError):
            return ""
        return str(next(rule["state"] for rule in rules if rule["name"] == name))


def one_pid(name: str) -> int:
    found = wait_for(lambda: pids(name), what=f"a process named {name}")
    assert len(found) == 1, f"{len(found)} copies of {name}: {found}"
    return next(iter(found))


def records(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_restart_stops_with_the_stop_signal_then_starts_one_new_copy(
        watchdog: Start, tmp_path: Path) -> None:
    record = tmp_path / "signals"
    svc = service(tmp_path, "wd-act-restart", "--record", str(record))
    driven = Driven(watchdog, tmp_path, str(svc))
    old = one_pid("wd-act-restart")
    wait_for(lambda: driven.state("wd-act-restart") == "running", what="state running")
    driven.tell("restart wd-act-restart")
    new = wait_for(lambda: ready_since(record, {old}), what="a new copy")
    assert f"{old} SIGTERM" in records(record)
    assert len(new) == 1 and pids("wd-act-restart") == set(new)
    log = driven.wd.wait_log("stopped, starting again (asked by the test)")
    assert "restarting (asked by the test)" in log


def test_restart_kills_a_service_that_ignores_its_stop_signal_at_the_grace(
        watchdog: Start, tmp_path: Path) -> None:
    record = tmp_path / "signals"
    svc = service(tmp_path, "wd-act-stubborn", "--ignore-term", "--record", str(record))
    driven = Driven(watchdog, tmp_path, str(svc), "--grace", "1")
    old = one_pid("wd-act-stubborn")
    wait_for(lambda: driven.state("wd-act-stubborn") == "running", what="state running")
    driven.tell("restart wd-act-stubborn")
    assert driven.state("wd-act-stubborn") in ("stopping", "running")
    new = wait_for(lambda: ready_since(record, {old}), timeout=15, what="a new copy")
    assert len(new) == 1 and pids("wd-act-stubborn") == set(new)
    assert "still running after the grace, sending SIGKILL" in driven.wd.log()


def test_stop_keeps_the_service_down_until_start(watchdog: Start, tmp_path: Path) -> None:
    svc = service(tmp_path, "wd-act-stop")
    driven = Driven(watchdog, tmp_path, str(svc))
    old = one_pid("wd-act-stop")
    driven.tell("stop wd-act-stop")
    wait_for(lambda: driven.state("wd-act-stop") == "stopped", what="state stopped")
    assert not pids("wd-act-stop")
    # Another event makes the engine check again: a stopped rule is not respawned.
    driven.tell("timer 0.2 " + str(tmp_path / "tick"))
    wait_for(lambda: (tmp_path / "tick").exists())
    assert driven.state("wd-act-stop") == "stopped" and not pids("wd-act-stop")
    driven.tell("start wd-act-stop")
    new = one_pid("wd-act-stop")
    assert new != old
    wait_for(lambda: driven.state("wd-act-stop") == "running", what="state running")


def test_signal_reaches_the_services_processes(watchdog: Start, tmp_path: Path) -> None:
    record = tmp_path / "signals"
    svc = service(tmp_path, "wd-act-signal", "--record", str(record))
    driven = Driven(watchdog, tmp_path, str(svc))
    pid = one_pid("wd-act-signal")
    driven.tell("signal wd-act-signal USR1")
    assert driven.last_note() == "signalled 1"
    wait_for(lambda: f"{pid} SIGUSR1" in records(record), what="SIGUSR1 recorded")
    assert pids("wd-act-signal") == {pid}


def test_one_rule_stopping_does_not_hold_up_the_others(watchdog: Start, tmp_path: Path) -> None:
    slow = service(tmp_path, "wd-act-slow", "--ignore-term")
    fast = service(tmp_path, "wd-act-fast")
    driven = Driven(watchdog, tmp_path, str(slow), str(fast), "--grace", "20")
    one_pid("wd-act-slow")
    fast_pid = one_pid("wd-act-fast")
    driven.tell("stop wd-act-slow")  # it ignores TERM: stopping for the whole 20 s grace
    os.kill(fast_pid, signal.SIGKILL)
    wait_for(lambda: pids("wd-act-fast") - {fast_pid}, what="the other rule restarted")
    assert driven.state("wd-act-slow") == "stopping" and pids("wd-act-slow")


def test_restarts_count_for_the_crash_loop_policy(watchdog: Start, tmp_path: Path) -> None:
    svc = service(tmp_path, "wd-act-loop")
    driven = Driven(watchdog, tmp_path, str(svc), "--max-restarts", "2", "--stable-after", "600",
                    "--backoff-max", "0.1")
    for _ in range(3):
        old = one_pid("wd-act-loop")
        driven.tell("restart wd-act-loop")
        wait_for(lambda old=old: pids("wd-act-loop") - {old} or "giving up" in driven.wd.log(),
                 what="a restart or a give-up")
    driven.wd.wait_log("giving up: 2 restarts in a row")


def test_background_work_never_delays_a_restart(watchdog: Start, tmp_path: Path) -> None:
    """Plugin work that blocks for seconds runs while a killed service is started again."""
    svc = service(tmp_path, "wd-act-bg")
    driven = Driven(watchdog, tmp_path, str(svc))
    pid = one_pid("wd-act-bg")
    finished = tmp_path / "work-finished"
    driven.tell(f"sleep-in-background 6 {finished}")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: pids("wd-act-bg") - {pid}, what="the killed service started again")
    assert not finished.exists(), "the restart waited for the plugin's work"
    wait_for(lambda: finished.exists(), timeout=15, what="the work's result back on the loop")
    assert finished.read_text() == "6.0\n"


def test_a_timer_calls_back_on_the_loop(watchdog: Start, tmp_path: Path) -> None:
    svc = service(tmp_path, "wd-act-timer")
    driven = Driven(watchdog, tmp_path, str(svc))
    one_pid("wd-act-timer")
    marker = tmp_path / "timer-fired"
    driven.tell(f"timer 0.3 {marker}")
    wait_for(lambda: marker.exists(), what="the timer's callback")


def test_a_per_rule_flag_twice_for_one_rule_is_a_usage_error(watchdog: Start) -> None:
    wd = watchdog("--rule", "web=sleep 100", "--regex", "web=a", "--regex", "web=b")
    assert wd.proc.wait(10) == 2
    assert wd.log() == ("watchdog: --regex is given twice for rule 'web' ('a' and 'b'): "
                        "give it once\n")
