"""A plugin's bug costs that plugin, never the services; a core bug stops them cleanly.

programs/wd_faulty.py raises in the hook a test names; programs/wd_driver.py
makes the engine restart, stop and start a rule so that every event hook runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import PROGRAMS, Watchdog, pids, program, service, wait_for
from namespace import Container, needs_namespace

Start = Callable[..., Watchdog]

EVENT_HOOKS = [
    "watchdog_started", "watchdog_checked", "watchdog_rule_found", "watchdog_rule_missing",
    "watchdog_rule_stopping", "watchdog_rule_stopped", "watchdog_rule_restarted",
    "watchdog_process_started", "watchdog_process_exited", "watchdog_rule_gave_up",
    "watchdog_stopping", "watchdog_stopped",
]


def plugin_env(tmp_path: Path, hook: str) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([str(PROGRAMS), os.environ.get("PYTHONPATH", "")]),
            "WD_FAULTY_HOOK": hook, "WD_DRIVER_FIFO": str(tmp_path / "driver.fifo")}


def tell(tmp_path: Path, line: str, count: int) -> None:
    fd = os.open(tmp_path / "driver.fifo", os.O_WRONLY)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)
    out = tmp_path / "driver.fifo.out"
    wait_for(lambda: out.exists() and len(out.read_text().splitlines()) >= count,
             what=f"the driver to act on {line!r}")


@pytest.mark.parametrize("hook", EVENT_HOOKS)
def test_a_plugin_raising_in_any_event_hook_never_stops_the_services(
        watchdog: Start, tmp_path: Path, hook: str) -> None:
    os.mkfifo(tmp_path / "driver.fifo")
    svc = service(tmp_path, "wd-fault-svc")
    flop = program(tmp_path, "wd-fault-flop", "/bin/false")  # given up on: watchdog_rule_gave_up
    wd = watchdog("-p", "wd_driver:Driver", "-p", "wd_faulty:Faulty", "--interval", "60",
                  "--max-restarts", "5", "--backoff-max", "0.1", str(svc), str(flop),
                  env=plugin_env(tmp_path, hook))
    first = wait_for(lambda: pids("wd-fault-svc"), what="the service")
    # Every rule event: a restart, a stop, a start, then a crash.
    tell(tmp_path, "restart wd-fault-svc", 1)
    second = wait_for(lambda: pids("wd-fault-svc") - first, what="the restarted service")
    tell(tmp_path, "stop wd-fault-svc", 2)
    wait_for(lambda: not pids("wd-fault-svc"), what="the stopped service gone")
    wd.wait_log("stays down until started")
    tell(tmp_path, "start wd-fault-svc", 3)
    third = wait_for(lambda: pids("wd-fault-svc") - second, what="the service started again")
    os.kill(next(iter(third)), signal.SIGKILL)
    wait_for(lambda: pids("wd-fault-svc") - third, what="the killed service back")
    wd.wait_log("wd-fault-flop: giving up")
    assert wd.stop() == 0
    assert not pids("wd-fault-svc")
    log = wd.log()
    assert f"plugin wd_faulty:Faulty failed in {hook}: RuntimeError: a bug in {hook}" in log
    assert "Traceback" not in log  # one line each; the traceback comes with -v


def test_a_plugin_failing_again_and_again_is_disabled_with_one_line(
        watchdog: Start, tmp_path: Path) -> None:
    svc = service(tmp_path, "wd-fault-often")
    wd = watchdog("-p", "wd_faulty:Faulty", "--interval", "0.05", "-v", str(svc),
                  env=plugin_env(tmp_path, "watchdog_checked"))
    wd.wait_log("plugin wd_faulty:Faulty failed 5 times in a row in watchdog_checked: disabled")
    assert "Traceback (most recent call last)" in wd.log()  # -v: the traceback too
    pid = next(iter(wait_for(lambda: pids("wd-fault-often"))))
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: pids("wd-fault-often") - {pid}, what="the service back")
    assert wd.stop() == 0
    after_disabling = wd.log().partition("disabled for the rest of this run")[2]
    assert "wd-fault-often: started" in after_disabling  # checks went on...
    assert "failed in watchdog_checked" not in after_disabling  # ...without the plugin


def test_one_hook_that_always_fails_disables_the_plugin_though_its_others_succeed(
        watchdog: Start, tmp_path: Path) -> None:
    svc = service(tmp_path, "wd-fault-found")
    # watchdog_checked succeeds every 50 ms; only watchdog_rule_found fails, once per crash.
    wd = watchdog("-p", "wd_faulty:Faulty", "--interval", "0.05", str(svc),
                  env=plugin_env(tmp_path, "watchdog_rule_found"))
    seen: set[int] = set()
    for _ in range(5):
        pid = next(iter(wait_for(lambda: pids("wd-fault-found") - seen, what="a new copy")))
        seen.add(pid)
        wait_for(lambda: wd.log().count("failed in watchdog_rule_found") >= len(seen),
                 what="the hook's failure for this copy")
        os.kill(pid, signal.SIGKILL)
    wd.wait_log("plugin wd_faulty:Faulty failed 5 times in a row in watchdog_rule_found: disabled")
    assert wd.stop() == 0


@needs_namespace
def test_as_pid_1_a_faulty_plugin_leaves_the_container_running(tmp_path: Path) -> None:
    svc = service(tmp_path, "wd-fault-ns")
    env_before = dict(os.environ)
    os.environ.update(plugin_env(tmp_path, "all"))
    try:
        box = Container(["-p", "wd_faulty:Faulty", "--interval", "60", str(svc)], tmp_path)
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    try:
        first = wait_for(lambda: box.named("wd-fault-ns"), what="the service in the namespace")
        first[0].kill()
        wait_for(lambda: {p.pid for p in box.named("wd-fault-ns")} - {first[0].pid},
                 what="the service back after the fault")
        box.signal(signal.SIGTERM)
        assert box.wait() == 0
        assert box.processes() == []
        assert "plugin wd_faulty:Faulty failed in watchdog_process_started" in box.log()
    finally:
        box.close()


CORE_BUG = textwrap.dedent("""
    import sys
    from watchdog.cli import main
    from watchdog.tracker import Tracker

    real = Tracker.take
    calls = 0

    def failing_once(self, full=False):
        # The engine's own code fails once, after the service is up: a core bug.
        global calls
        calls += 1
        if calls == 6:
            raise ZeroDivisionError("a bug in the core")
        return real(self, full)

    Tracker.take = failing_once
    main(sys.argv[1:])
""")


def test_a_core_error_stops_every_service_and_exits_70(tmp_path: Path) -> None:
    """A failure of the engine itself, injected where no plugin can reach: a fault
    that cannot be produced from outside without a real bug."""
    record = tmp_path / "signals"
    svc = service(tmp_path, "wd-fault-core", "--record", str(record))
    script = tmp_path / "core_bug.py"
    script.write_text(CORE_BUG)
    log = tmp_path / "core.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, str(script), "--interval", "0.05",
                                 "--status-file", str(tmp_path / "s.json"), str(svc)],
                                stdout=out, stderr=subprocess.STDOUT)
        try:
            assert proc.wait(30) == 70
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log.read_text()
    assert "internal error: ZeroDivisionError: a bug in the core; stopping every service" in text
    assert not pids("wd-fault-core")
    assert any(line.endswith("SIGTERM") for line in record.read_text().splitlines())
