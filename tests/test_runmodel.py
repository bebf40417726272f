"""The rule-run model on real processes: one meaning of ready, one exit status, planned
restarts, the reason of each change, and the restart policies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import CheckCounts, Watchdog, pids, program, wait_for
from test_control import ctl, follow_events, socket_of
from test_ordering import notifier, status_of

from watchdog.cli import reread

Start = Callable[..., Watchdog]
TAG = f"{os.getpid() % 1000:03d}"  # process names of this run of the suite: no other run has them


def unique(name: str) -> str:
    return f"{name}{TAG}"


def control_socket(wd: Watchdog) -> Path:
    return wait_for(lambda: socket_of(wd).exists() and socket_of(wd), what="the control socket")


def script(tmp_path: Path, name: str, body: str) -> Path:
    """A shell script called ``name`` (its process's name while it runs)."""
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def watchdog_status(wd: Watchdog, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "watchdog", "--status", "--status-file",
                           str(wd.log_path.with_suffix(".status")), *args],
                          capture_output=True, text=True, timeout=60)


# --- ready, one meaning -------------------------------------------------------------------


def test_wait_for_ready_waits_for_a_late_ready_1_and_times_out_without_one(
    tmp_path: Path, watchdog: Start
) -> None:
    late, never = unique("rm-late"), unique("rm-never")
    wd = watchdog("--rule", f"late={notifier(tmp_path, late, '--ready-after', '2')}",
                  "--rule", f"never={notifier(tmp_path, never, '--ready-after', '1000')}",
                  "--notify", "late", "--notify", "never")
    sock = control_socket(wd)
    waited = ctl(sock, "wait", "late", "--state", "ready", "--timeout", "30")
    assert waited.returncode == 0, waited.stderr
    assert "late: ready" in wd.log()  # the watchdog had its READY=1 before the wait returned
    wd.wait_log("never: running", 30)
    gave_up = ctl(sock, "wait", "never", "--state", "ready", "--timeout", "2")
    assert gave_up.returncode == 1
    assert "timed out after 2s waiting for ready: never is running" in gave_up.stderr
    shown = json.loads(ctl(sock, "status", "--json").stdout)["rules"]
    assert {rule["name"]: rule["ready"] for rule in shown} == {"late": True, "never": False}
    in_file = wait_for(lambda: (s := status_of(wd, "never")) and s["state"] == "running" and s)
    assert in_file["ready"] is False  # the status file says what the socket says


def test_restart_wait_returns_once_the_new_process_says_ready(tmp_path: Path, watchdog: Start) -> None:
    name = unique("rm-rewait")
    wd = watchdog("--rule", f"svc={notifier(tmp_path, name, '--ready-after', '1.5')}", "--notify", "svc")
    sock = control_socket(wd)
    assert ctl(sock, "wait", "svc", "--timeout", "30").returncode == 0
    [old] = pids(name)
    restarted = ctl(sock, "restart", "svc", "--wait", "30")
    assert restarted.returncode == 0, restarted.stderr
    assert wd.log().count("svc: ready") == 2  # the new run's READY=1 came before the wait ended
    [new] = pids(name)
    assert new != old


# --- one exit status --------------------------------------------------------------------


def test_status_exit_codes_agree_for_unhealthy_and_healthy(tmp_path: Path, watchdog: Start) -> None:
    flag = tmp_path / "healthy"
    name = unique("rm-health")
    exe = program(tmp_path, name)
    wd = watchdog("--rule", f"svc={exe} 1000", "--health-cmd", f"svc=test -e {flag}",
                  "--health-interval", "svc=0.2", "--health-retries", "svc=1",
                  "--on-unhealthy", "svc=report")
    sock = control_socket(wd)
    wd.wait_log("svc: unhealthy", 30)
    for shown in (ctl(sock, "status"), watchdog_status(wd)):
        assert shown.returncode == 1, shown.stdout + shown.stderr
        assert "unhealthy" in shown.stdout
    as_json = json.loads(ctl(sock, "status", "--json").stdout)["rules"][0]
    assert as_json["state"] == "running" and as_json["ready"] is False
    flag.touch()
    assert ctl(sock, "wait", "svc", "--state", "healthy", "--timeout", "30").returncode == 0
    wait_for(lambda: (s := status_of(wd, "svc")) and s["health"] == "healthy", what="the file")
    assert ctl(sock, "status").returncode == 0 and watchdog_status(wd).returncode == 0


# --- planned restarts, and the reason of each change ------------------------------------------


def test_a_planned_restart_is_no_failure_in_the_log(tmp_path: Path, watchdog: Start) -> None:
    name = unique("rm-planned")
    wd = watchdog("--rule", f"web={program(tmp_path, name)} 1000", "--stable-after", "60")
    sock = control_socket(wd)
    wd.wait_log("web: running")
    for count in range(1, 4):  # young runs, well within --stable-after
        assert ctl(sock, "restart", "web", "--wait", "30").returncode == 0
        wait_for(lambda n=count: wd.log().count("a planned restart: not a failure") >= n)  # type: ignore[misc]
    log = wd.log()
    assert "failures in a row" not in log and "restarting in" not in log


def test_each_event_carries_the_reason_of_its_own_change(tmp_path: Path, watchdog: Start) -> None:
    name = unique("rm-reason")
    wd = watchdog("--rule", f"svc={program(tmp_path, name)} 1000", "--grace", "2")
    sock = control_socket(wd)
    wd.wait_log("svc: running")
    follower = follow_events(sock)
    try:
        assert follower.stdout is not None
        assert json.loads(follower.stdout.readline())["event"] == "current"
        assert ctl(sock, "stop", "svc", "--wait", "30").returncode == 0
        assert ctl(sock, "start", "svc", "--wait", "30").returncode == 0
        [pid] = wait_for(lambda: pids(name))
        os.kill(pid, signal.SIGHUP)
        lines: list[dict] = []
        while sum(line["state"] == "running" for line in lines) < 2:  # after the start, after the death
            line = json.loads(follower.stdout.readline())
            if line["event"] == "exited":  # the service's end with its last lines: no state change
                continue
            if line["previous"] != line["state"]:
                lines.append(line)
    finally:
        follower.send_signal(signal.SIGINT)
        follower.wait(10)
    steps = [(line["previous"], line["state"], line["reason"]) for line in lines]
    assert steps[0] == ("running", "stopping", "stopped by uid 0")
    assert steps[1] == ("stopping", "stopped", "stopped by uid 0")
    assert steps[2][:2] == ("stopped", "starting") and steps[2][2].startswith("started pid ")
    died = next(step for step in steps[3:] if step[0] == "running")
    assert died[2] == "killed by SIGHUP"  # not the stop's reason of earlier


# --- restart policies -----------------------------------------------------------------------


def test_restart_no_leaves_a_one_shot_exited_or_failed_and_start_runs_it_again(
    tmp_path: Path, watchdog: Start
) -> None:
    runs = tmp_path / "runs"
    good = script(tmp_path, unique("rm-good"), f"echo run >> {runs}; sleep 0.3; exit 0")
    bad = script(tmp_path, unique("rm-bad"), "sleep 0.3; exit 3")
    counts = CheckCounts(tmp_path)
    wd = watchdog("--rule", f"good={good}", "--rule", f"bad={bad}", "--restart", "good=no",
                  "--restart", "bad=no", "--interval", "0.2", *counts.args, env=counts.env())
    wait_for(lambda: (s := status_of(wd, "good")) and s["state"] == "exited", 30, "good exited")
    bad_status = wait_for(lambda: (s := status_of(wd, "bad")) and s["state"] == "failed" and s, 30)
    assert bad_status["last_exit"] == 3 and bad_status["reason"] == "exited with status 3; --restart no"
    assert "good: exited (exited with status 0; --restart no)" in wd.log()
    counts.wait(3)  # full checks go by: a final state is not started again
    assert runs.read_text().count("run") == 1
    shown = watchdog_status(wd)
    assert shown.returncode == 1 and "failed" in shown.stdout  # the failed one is not fine
    sock = control_socket(wd)
    assert ctl(sock, "status", "good").returncode == 0  # an exited one is
    assert ctl(sock, "status").returncode == 1
    assert ctl(sock, "start", "bad").returncode == 0
    failing = ctl(sock, "wait", "bad", "--state", "exited", "--timeout", "60")  # failed is final
    assert failing.returncode == 1
    assert "watchdogctl: bad failed before exited: exited with status 3; --restart no" in failing.stderr
    again = ctl(sock, "start", "good")
    assert again.returncode == 0 and "good: started (pid" in again.stdout
    wait_for(lambda: runs.read_text().count("run") == 2, what="a second run")
    assert ctl(sock, "wait", "good", "--state", "exited", "--timeout", "30").returncode == 0


def test_on_failure_restarts_failures_with_backoff_until_a_success(tmp_path: Path, watchdog: Start) -> None:
    count = tmp_path / "count"
    flaky = script(tmp_path, unique("rm-flaky"),
                   f"n=$(cat {count} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {count}\n"
                   "sleep 0.2; [ $n -ge 3 ] && exit 0; exit 1")
    wd = watchdog("--rule", f"job={flaky}", "--restart", "job=on-failure")
    final = wait_for(lambda: (s := status_of(wd, "job")) and s["state"] == "exited" and s, 30)
    assert count.read_text().strip() == "3" and final["last_exit"] == 0
    log = wd.log()
    assert log.count("job: started") == 3 and "job: restarting in 0.25s (2 failures in a row)" in log
    assert "left no process" not in log  # a command meant to end needs no matching advice


def test_on_failure_with_success_exit_143_takes_a_sigterm_as_success(
    tmp_path: Path, watchdog: Start
) -> None:
    name = unique("rm-term")
    wd = watchdog("--rule", f"svc={program(tmp_path, name)} 1000",
                  "--restart", "svc=on-failure", "--success-exit", "svc=0,TERM")
    [pid] = wait_for(lambda: pids(name))
    os.kill(pid, signal.SIGKILL)  # a failure: started again
    [second] = wait_for(lambda: [p for p in pids(name) if p != pid], 30)
    os.kill(second, signal.SIGTERM)  # 143: success, done
    wait_for(lambda: (s := status_of(wd, "svc")) and s["state"] == "exited", 30, "exited")
    assert "svc: exited (killed by SIGTERM; --restart on-failure)" in wd.log()
    assert not pids(name)


def test_a_start_timeout_restarts_a_service_that_never_says_ready_or_fails_it(
    tmp_path: Path, watchdog: Start
) -> None:
    again, once = unique("rm-tmo"), unique("rm-tmo1")
    wd = watchdog("--rule", f"again={notifier(tmp_path, again, '--ready-after', '1000')}",
                  "--rule", f"once={notifier(tmp_path, once, '--ready-after', '1000')}",
                  "--notify", "again", "--notify", "once", "--start-timeout", "again=1",
                  "--start-timeout", "once=1", "--restart", "once=no", "--grace", "2")
    wd.wait_log("again: not ready within 1s of its start (--start-timeout): the start failed", 30)
    wait_for(lambda: wd.log().count("again: started") >= 2, 30, "a second start")
    wait_for(lambda: (s := status_of(wd, "once")) and s["state"] == "failed", 30, "once failed")
    assert not pids(once) and wd.log().count("once: started") == 1


def test_policies_show_in_both_status_outputs(tmp_path: Path, watchdog: Start) -> None:
    name = unique("rm-show")
    wd = watchdog("--rule", f"svc={program(tmp_path, name)} 1000", "--restart", "svc=on-failure",
                  "--success-exit", "svc=0,143", "--start-timeout", "svc=5")
    sock = control_socket(wd)
    wd.wait_log("svc: running")
    expected = {"restart": "on-failure", "success_exit": [0, 143], "start_timeout": 5.0}
    for output in (ctl(sock, "status", "--json").stdout, watchdog_status(wd, "--json").stdout):
        [rule] = json.loads(output)["rules"]
        assert {key: rule[key] for key in expected} == expected


def test_flags_the_environment_and_a_config_file_give_the_same_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [key for key in os.environ if key.startswith("WATCHDOG_")]:
        monkeypatch.delenv(key)
    commands = ["--rule", "a=/bin/true", "--rule", "b=/bin/false"]
    by_flags = reread([*commands, "--restart", "a=no", "--restart", "b=on-failure",
                       "--success-exit", "b=0,TERM", "--start-timeout", "a=2.5"])
    config = tmp_path / "watchdog.toml"
    config.write_text('[rules.a]\ncommand = "/bin/true"\nrestart = "no"\nstart-timeout = 2.5\n'
                      '[rules.b]\ncommand = "/bin/false"\nrestart = "on-failure"\n'
                      'success-exit = "0,TERM"\n')
    by_file = reread(["--config", str(config)])
    monkeypatch.setenv("WATCHDOG_RESTART", "a=no b=on-failure")
    monkeypatch.setenv("WATCHDOG_SUCCESS_EXIT", "b=0,TERM")
    monkeypatch.setenv("WATCHDOG_START_TIMEOUT", "a=2.5")
    by_env = reread(commands)

    def policies(rules: list) -> dict:
        return {rule.name: (rule.restart, sorted(rule.success_exit), rule.start_timeout) for rule in rules}

    expected = {"a": ("no", [0], 2.5), "b": ("on-failure", [0, 143], None)}
    assert policies(by_flags.rules) == policies(by_file.rules) == policies(by_env.rules) == expected


def test_bad_policies_are_one_line_usage_errors(tmp_path: Path) -> None:
    for args, message in (
        (["--restart", "a=sometimes"], "--restart a=sometimes: expected always, on-failure or no"),
        (["--success-exit", "a=0,300"], "'300' is not an exit status (0-255) or a signal name"),
        (["--start-timeout", "a=-1"], "--start-timeout a=-1:"),
        (["--restart", "nope=no"], "no rule is named 'nope'"),
    ):
        done = subprocess.run([sys.executable, "-m", "watchdog", "--rule", "a=/bin/true", *args],
                              capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert done.returncode == 2 and message in done.stderr and len(done.stderr.splitlines()) == 1


def test_an_essential_one_shot_ends_the_watchdog_with_its_status(tmp_path: Path, watchdog: Start) -> None:
    job = script(tmp_path, unique("rm-ess"), "sleep 0.3; exit 3")
    other = unique("rm-other")
    wd = watchdog("--rule", f"job={job}", "--rule", f"other={program(tmp_path, other)} 1000",
                  "--restart", "job=no", "--essential", "job")
    assert wd.proc.wait(30) == 3
    assert "essential service failed: stopping every service, exit status 3" in wd.log()
    assert not pids(other)
