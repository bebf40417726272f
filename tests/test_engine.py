"""The loop, run as a real watchdog process against real services."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import psutil
from helpers import Watchdog, pids, program, service, wait_for

Start = Callable[..., Watchdog]


def one_pid(name: str, timeout: float = 10.0, other_than: int | None = None) -> int:
    found = wait_for(lambda: [p for p in pids(name) if p != other_than], timeout, f"{name} running")
    assert len(found) == 1, f"expected one {name}, found {found}"
    return found[0]


def test_a_killed_child_is_started_again_without_waiting_for_the_interval(
    tmp_path: Path, watchdog: Start
) -> None:
    exe = program(tmp_path, "wd-fg")
    wd = watchdog(f"{exe} 1000", "--interval", "60")
    first = one_pid("wd-fg")
    killed_at = time.monotonic()
    os.kill(first, signal.SIGKILL)
    second = one_pid("wd-fg", timeout=5, other_than=first)
    assert time.monotonic() - killed_at < 5  # not the 60 s interval
    assert second != first
    wd.wait_log(f"wd-fg: exited pid={first} status=-9")


def test_a_double_forking_daemon_is_adopted_and_restarted(tmp_path: Path, watchdog: Start) -> None:
    svc = service(tmp_path, "wd-daemon", "--daemon")
    watchdog(str(svc), "--interval", "60")
    first = one_pid("wd-daemon")
    assert psutil.Process(first).ppid() != 0
    os.kill(first, signal.SIGKILL)
    second = one_pid("wd-daemon", timeout=5, other_than=first)
    assert second != first


def test_a_pidfile_daemon_is_restarted_when_it_dies(tmp_path: Path, watchdog: Start) -> None:
    pidfile = tmp_path / "d.pid"
    svc = service(tmp_path, "wd-pidd", "--daemon", "--pidfile", str(pidfile))
    wd = watchdog(str(svc), "--pidfile", f"wd-pidd={pidfile}", "--interval", "60")
    first = one_pid("wd-pidd")
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() == str(first))
    wd.wait_log("wd-pidd: running")
    os.kill(first, signal.SIGKILL)
    second = one_pid("wd-pidd", timeout=5, other_than=first)
    wait_for(lambda: pidfile.read_text().strip() == str(second))


def test_a_command_still_starting_is_not_started_again(tmp_path: Path, watchdog: Start) -> None:
    slow = tmp_path / "wd-slow"
    slow.write_text("#!/bin/sh\nsleep 1.5\n")
    slow.chmod(0o755)
    wd = watchdog(str(slow), "--regex", "wd-slow=never-matches-anything-here", "--interval", "0.05")
    log = wd.wait_log("wd-slow: exited")  # after its 1.5 s, under the checks every 50 ms
    assert log.partition("wd-slow: exited")[0].count("wd-slow: started") == 1


def test_a_command_that_exits_leaving_no_match_is_reported_once_and_backed_off(
    tmp_path: Path, watchdog: Start
) -> None:
    quits = program(tmp_path, "wd-quits", "/bin/true")
    wd = watchdog(str(quits), "--interval", "0.05", "--stable-after", "5")
    time.sleep(6)
    log = wd.log()
    assert log.count("wd-quits' exited with status 0 and left no process named 'wd-quits'") == 1
    assert "--regex wd-quits=PATTERN or --pidfile wd-quits=PATH" in log
    starts = log.count("wd-quits: started")
    # Each start settles 1 s (exit 0: a daemon may still be on its way), then
    # 0, 0.25, 0.5, 1 s of backoff: a handful of starts in 6 s, not a fork loop.
    assert 4 <= starts <= 6, log
    assert "restarting in 1.00s (4 failures in a row)" in log


def test_the_advice_offers_only_the_matchers_the_rule_does_not_use(
    tmp_path: Path, watchdog: Start
) -> None:
    quits = program(tmp_path, "wd-quits-re", "/bin/true")
    wd = watchdog(str(quits), "--regex", "wd-quits-re=no such command line", "--interval", "0.05")
    log = wd.wait_log("exited with status 0 and left no", timeout=20)
    assert "use --pidfile wd-quits-re=PATH" in log
    assert "--regex wd-quits-re=PATTERN" not in log


def test_backoff_resets_after_a_stable_run(tmp_path: Path, watchdog: Start) -> None:
    exe = program(tmp_path, "wd-reset")
    wd = watchdog(f"{exe} 1000", "--stable-after", "1", "--interval", "60")
    for _ in range(3):  # quick deaths: the count grows
        first = one_pid("wd-reset")
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: first not in pids("wd-reset"))  # noqa: B023
    wd.wait_log("(2 failures in a row)")
    first = one_pid("wd-reset", timeout=5)
    time.sleep(1.2)  # longer than --stable-after
    os.kill(first, signal.SIGKILL)
    one_pid("wd-reset", timeout=2, other_than=first)
    tail = wd.log().split(f"pid={first} status=-9", 1)[1]
    assert "failures in a row" not in tail  # restarted at once, count reset


def test_giving_up_with_exit_stops_everything_and_exits_3(tmp_path: Path, watchdog: Start) -> None:
    quits = program(tmp_path, "wd-broken", "/bin/false")
    keeps = program(tmp_path, "wd-healthy")
    wd = watchdog(str(quits), f"{keeps} 1000", "--max-restarts", "2", "--on-give-up", "exit",
                  "--backoff-max", "0.1")
    assert wd.proc.wait(15) == 3
    assert "wd-broken: giving up: 2 restarts in a row" in wd.log()
    assert pids("wd-healthy") == set()


def test_giving_up_with_continue_keeps_the_other_services(tmp_path: Path, watchdog: Start) -> None:
    quits = program(tmp_path, "wd-broken2", "/bin/false")
    keeps = program(tmp_path, "wd-healthy2")
    wd = watchdog(str(quits), f"{keeps} 1000", "--max-restarts", "1", "--backoff-max", "0.1",
                  "--interval", "0.1")
    wd.wait_log("wd-broken2: giving up")
    time.sleep(0.5)
    assert wd.proc.poll() is None
    assert wd.log().count("wd-broken2: started") == 2  # the first start and one restart
    first = one_pid("wd-healthy2")
    os.kill(first, signal.SIGKILL)
    one_pid("wd-healthy2", other_than=first)


def test_a_program_gone_at_respawn_is_logged_and_other_rules_go_on(
    tmp_path: Path, watchdog: Start
) -> None:
    doomed = program(tmp_path, "wd-doomed")
    other = program(tmp_path, "wd-other")
    wd = watchdog(f"{doomed} 1000", f"{other} 1000", "--interval", "60")
    victim = one_pid("wd-doomed")
    doomed.unlink()
    os.kill(victim, signal.SIGKILL)
    wd.wait_log("cannot start")
    survivor = one_pid("wd-other")
    os.kill(survivor, signal.SIGKILL)
    one_pid("wd-other", other_than=survivor)
    assert wd.proc.poll() is None


def test_an_exit_and_a_scan_together_never_start_two_copies(tmp_path: Path, watchdog: Start) -> None:
    exe = program(tmp_path, "wd-single")
    watchdog(f"{exe} 1000", "--interval", "0.01", "--backoff-max", "0")
    most_seen = 0
    for _ in range(30):
        victim = one_pid("wd-single")
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            most_seen = max(most_seen, len(pids("wd-single")))
    assert most_seen == 1


def test_without_pidfd_adopted_exits_are_seen_at_the_interval(tmp_path: Path, watchdog: Start) -> None:
    svc = service(tmp_path, "wd-nopidfd", "--daemon")
    wd = watchdog(str(svc), "--no-pidfd", "--interval", "0.5")
    wd.wait_log("pidfd is unavailable")
    first = one_pid("wd-nopidfd")
    os.kill(first, signal.SIGKILL)
    one_pid("wd-nopidfd", timeout=5, other_than=first)


def test_once_starts_what_is_missing_and_exits_0(tmp_path: Path, watchdog: Start) -> None:
    svc = service(tmp_path, "wd-once", "--daemon")
    wd = watchdog(str(svc), "--once")
    assert wd.proc.wait(10) == 0
    assert len(pids("wd-once")) == 1  # left running, like a one-shot init


def test_once_exits_1_when_a_command_leaves_nothing_running(tmp_path: Path, watchdog: Start) -> None:
    quits = program(tmp_path, "wd-once-quits", "/bin/true")
    wd = watchdog(str(quits), "--once")
    assert wd.proc.wait(10) == 1


def test_check_sees_a_running_service_but_never_itself(tmp_path: Path, watchdog: Start) -> None:
    exe = program(tmp_path, "wd-checked")
    main = watchdog(f"{exe} 1000", "--regex", "wd-checked=wd-checked")
    one_pid("wd-checked")
    check = watchdog(f"{exe} 1000", "--regex", "wd-checked=wd-checked", "--check")
    assert check.proc.wait(10) == 0
    os.kill(main.pid, signal.SIGSTOP)  # freeze the main watchdog: nothing restarts
    try:
        for pid in pids("wd-checked"):
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not pids("wd-checked"))
        # Both watchdogs' command lines contain the pattern; neither counts.
        check = watchdog(f"{exe} 1000", "--regex", "wd-checked=wd-checked", "--check")
        assert check.proc.wait(10) == 1
        assert "missing: wd-checked" in check.log()
    finally:
        os.kill(main.pid, signal.SIGCONT)


def test_sigterm_stops_the_services_it_started(tmp_path: Path, watchdog: Start) -> None:
    record = tmp_path / "signals"
    svc = service(tmp_path, "wd-term", "--record", str(record))
    wd = watchdog(str(svc))
    pid = one_pid("wd-term")
    wait_for(lambda: record.exists() and "READY" in record.read_text())
    assert wd.stop(signal.SIGTERM) == 0
    assert f"{pid} SIGTERM" in record.read_text()
    assert pids("wd-term") == set()


def test_services_inherit_stdout_and_read_nothing_from_stdin(tmp_path: Path, watchdog: Start) -> None:
    talker = tmp_path / "wd-talker"
    talker.write_text("#!/bin/sh\necho hello-from-service; cat; echo stdin-closed; exec sleep 1000\n")
    talker.chmod(0o755)
    wd = watchdog(str(talker))
    wd.wait_log("hello-from-service")
    wd.wait_log("stdin-closed")


def test_a_daemon_that_replaces_its_main_process_is_readopted_not_restarted(
    tmp_path: Path, watchdog: Start
) -> None:
    record = tmp_path / "record"
    svc = service(tmp_path, "wd-upgrade", "--daemon", "--new-master-on-usr2", "--record", str(record))
    wd = watchdog(str(svc), "--interval", "60")
    old = one_pid("wd-upgrade")
    wait_for(lambda: record.exists() and "READY" in record.read_text())  # handlers installed
    wd.wait_log("wd-upgrade: running")
    os.kill(old, signal.SIGUSR2)  # a graceful restart under a new pid
    new = one_pid("wd-upgrade", timeout=5, other_than=old)
    wd.wait_log(f"wd-upgrade: exited pid={old}")  # its pidfd woke the loop
    time.sleep(0.3)
    assert wd.log().count("wd-upgrade: started") == 1  # picked up, not started again
    # The new process is watched too: its death is answered without the interval.
    os.kill(new, signal.SIGKILL)
    one_pid("wd-upgrade", timeout=5, other_than=new)


def test_a_daemon_killed_just_after_its_restart_is_answered_at_once(
    tmp_path: Path, watchdog: Start
) -> None:
    # The starter exits 0 and opens a settling window for its daemon; once the
    # daemon is seen, that window must not delay the answer to its death.
    svc = service(tmp_path, "wd-quickdeath", "--daemon")
    wd = watchdog(str(svc), "--interval", "60", "--stable-after", "0", "--log-format", "json")
    first = one_pid("wd-quickdeath")
    wd.wait_log(f'"message": "running (pid {first})"')
    os.kill(first, signal.SIGKILL)
    second = one_pid("wd-quickdeath", timeout=5, other_than=first)
    wd.wait_log(f'"message": "running (pid {second})"')  # seen, well inside the 1 s window
    killed_at = time.time()
    os.kill(second, signal.SIGKILL)
    one_pid("wd-quickdeath", timeout=5, other_than=second)
    # When the watchdog ran the command again, by its own clock: a slow machine may take
    # long to start the service, but held back, the start would come as the window ends.
    starts = [entry for entry in map(json.loads, wd.log().splitlines()) if entry["event"] == "started"]
    restarted_at = datetime.fromisoformat(starts[-1]["timestamp"]).timestamp()
    assert len(starts) == 3 and restarted_at - killed_at < 0.5


CANCELLING_PLUGIN = '''
import os
from pathlib import Path

from watchdog import hookimpl


class Cancelling:
    """Two timers due at the same moment; the first cancels the second."""

    @hookimpl
    def watchdog_started(self, engine):
        out = Path(os.environ["WD_TIMERS_OUT"])

        def note(word):
            with out.open("a") as file:
                file.write(word + "\\n")

        def first():
            second.cancel()
            note("first")

        when = engine.clock() + 0.2
        engine.call_at(when, first)
        second = engine.call_at(when, lambda: note("second"))
        engine.call_at(when + 0.3, lambda: note("later"))
'''


def test_a_timer_cancelled_by_one_due_with_it_does_not_run(tmp_path: Path, watchdog: Start) -> None:
    # Health checks batch their rounds on shared timers and cancel one when its last round goes.
    (tmp_path / "wd_cancelling.py").write_text(CANCELLING_PLUGIN)
    out = tmp_path / "timers"
    exe = program(tmp_path, "wd-timers")
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    wd = watchdog("-p", "wd_cancelling:Cancelling", f"{exe} 1000",
                  env={"PYTHONPATH": path, "WD_TIMERS_OUT": str(out)})
    wait_for(lambda: out.exists() and "later" in out.read_text(), 30, "the later timer")
    assert out.read_text() == "first\nlater\n"
    assert wd.stop() == 0
