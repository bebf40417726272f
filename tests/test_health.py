"""Health checks and resource limits, on real services: hung, failing, leaking, refusing."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from helpers import PROGRAMS, Watchdog, pids, program, wait_for

Start = Callable[..., Watchdog]
FAST = ("--health-interval", "{}=0.3", "--health-timeout", "{}=1", "--health-retries", "{}=2")


def fast(name: str) -> list[str]:
    """Short health settings for rule ``name``, so a test takes seconds, not the defaults' 30."""
    return [arg.format(name) for arg in FAST]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def script(tmp_path: Path, name: str, source: str, *args: str) -> Path:
    """An executable ``name`` that runs programs/SOURCE as a process named ``name``."""
    path = tmp_path / name
    quoted = " ".join(f"'{arg}'" for arg in args)
    path.write_text(f"#!/bin/sh\nexec {sys.executable} {PROGRAMS / source} --name {name} "
                    f"--home {tmp_path} {quoted}\n")
    path.chmod(0o755)
    return path


def http_status(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def status(status_file: Path) -> tuple[int, dict[str, dict[str, Any]]]:
    """``watchdog --status --json``: its exit status and the rules by name."""
    run = subprocess.run([sys.executable, "-m", "watchdog", "--status", "--json", "--status-file",
                          str(status_file)], capture_output=True, text=True)
    rules = json.loads(run.stdout)["rules"] if run.stdout.strip() else []
    return run.returncode, {rule["name"]: rule for rule in rules}


def status_file_of(wd: Watchdog) -> Path:
    return wd.log_path.with_suffix(".status")


def rule_status(wd: Watchdog, name: str) -> dict[str, Any]:
    return status(status_file_of(wd))[1].get(name, {})


def test_a_stopped_http_server_is_restarted_and_serves_again(tmp_path: Path, watchdog: Start) -> None:
    port = free_port()
    web = script(tmp_path, "wd-hung-web", "web.py", "--port", str(port))
    wd = watchdog(str(web), "--health-http", f"wd-hung-web=http://127.0.0.1:{port}/",
                  *fast("wd-hung-web"), "--interval", "60")
    wd.wait_log("wd-hung-web: healthy (HTTP 200)", timeout=30)
    [first] = pids("wd-hung-web")
    os.kill(first, signal.SIGSTOP)  # alive in the process table, answering nothing

    log = wd.wait_log("wd-hung-web: restarting (unhealthy: timed out after 1 s for 2 checks)", timeout=30)
    assert "warning: wd-hung-web: unhealthy (timed out after 1 s for 2 checks)" in log
    wait_for(lambda: http_status(port) == 200 and pids("wd-hung-web") - {first}, 30,
             "a new server answering 200")
    # SIGCONT after SIGTERM: the stopped server ran its handler (status 0), no KILL at --grace
    log = wd.log()
    assert f"wd-hung-web: exited pid={first} status=0" in log
    assert "still running after the grace" not in log
    wd.wait_log("wd-hung-web: unknown (not running)")
    wait_for(lambda: wd.log().count("wd-hung-web: healthy (HTTP 200)") == 2, 30, "healthy again")
    assert len(pids("wd-hung-web")) == 1
    assert wd.stop() == 0


def test_a_probe_that_never_answers_times_out_while_another_service_is_restarted_at_once(
    tmp_path: Path, watchdog: Start
) -> None:
    port, accepted = free_port(), tmp_path / "accepted"
    hung = script(tmp_path, "wd-hl-never", "web.py", "--port", str(port), "--hang",
                  "--accepted", str(accepted))
    other = program(tmp_path, "wd-hl-other")
    wd = watchdog(str(hung), f"{other} 1000", "--health-http", f"wd-hl-never=http://127.0.0.1:{port}/",
                  "--health-interval", "wd-hl-never=0.2", "--health-timeout", "wd-hl-never=5",
                  "--health-retries", "wd-hl-never=1", "--on-unhealthy", "wd-hl-never=report",
                  "--interval", "60")
    [victim] = wait_for(lambda: pids("wd-hl-other"), 30, "wd-hl-other running")
    wait_for(lambda: accepted.exists(), 30, "the probe connected to the hung server")
    os.kill(victim, signal.SIGKILL)  # while the probe waits out its 5 s
    wait_for(lambda: pids("wd-hl-other") - {victim}, 30, "wd-hl-other started again")

    log = wd.wait_log("wd-hl-never: unhealthy (timed out after 5 s)", timeout=30)
    restarted = log.index("wd-hl-other: started", log.index(f"wd-hl-other: exited pid={victim}"))
    timed_out = log.index("wd-hl-never: unhealthy (timed out after 5 s)")
    assert restarted < timed_out, "the other rule waited for the hanging probe"
    assert "the last probe has not returned" not in log  # the probe kept its own timeout
    # report: the hung service is left alone, and --status says it is unhealthy
    assert "wd-hl-never: restarting" not in log and len(pids("wd-hl-never")) == 1
    code, rules = wait_for(lambda: (found := status(status_file_of(wd)))[0] == 1 and found, 10,
                           "--status exiting 1")
    assert rules["wd-hl-never"]["health"] == "unhealthy"
    assert rules["wd-hl-never"]["health_detail"].startswith("timed out after 5 s")
    assert rules["wd-hl-other"]["health"] == "unknown"
    assert wd.stop() == 0


def test_tcp_probes_say_connected_or_refused_and_status_shows_a_health_column(
    tmp_path: Path, watchdog: Start
) -> None:
    port = free_port()
    closed = free_port()  # nothing listens there
    web = script(tmp_path, "wd-tcp-web", "web.py", "--port", str(port))
    lonely = program(tmp_path, "wd-tcp-none")
    wd = watchdog(str(web), f"{lonely} 1000",
                  "--health-tcp", f"wd-tcp-web={port}", "--health-tcp", f"wd-tcp-none=127.0.0.1:{closed}",
                  *fast("wd-tcp-web"), *fast("wd-tcp-none"), "--on-unhealthy", "wd-tcp-none=report")
    wd.wait_log(f"wd-tcp-web: healthy (connected to 127.0.0.1:{port})", timeout=30)
    log = wd.wait_log("wd-tcp-none: unhealthy (connection refused for 2 checks)", timeout=30)
    assert "wd-tcp-none: health check failed (1 of 2): connection refused" in log
    assert "wd-tcp-none: restarting" not in log

    table = subprocess.run([sys.executable, "-m", "watchdog", "--status", "--status-file",
                            str(status_file_of(wd))], capture_output=True, text=True)
    assert table.returncode == 1, table.stdout
    header, *rows = table.stdout.splitlines()
    assert header.split()[-4:] == ["HEALTH", "LAST", "CHECK", "READY"]
    by_name = {row.split()[0]: row for row in rows}
    assert f"healthy    connected to 127.0.0.1:{port}" in by_name["wd-tcp-web"]
    assert "unhealthy  connection refused for" in by_name["wd-tcp-none"]
    assert wd.stop() == 0


def test_a_failing_command_probe_restarts_the_service_with_its_output_in_the_log(
    tmp_path: Path, watchdog: Start
) -> None:
    broken = tmp_path / "broken"
    exe = program(tmp_path, "wd-hl-cmd")
    check = f"sh -c 'if [ -e {broken} ]; then echo database unreachable; exit 3; fi'"
    wd = watchdog(f"{exe} 1000", "--health-cmd", f"wd-hl-cmd={check}", *fast("wd-hl-cmd"))
    wd.wait_log("wd-hl-cmd: healthy (exit 0)", timeout=30)
    [first] = pids("wd-hl-cmd")
    broken.touch()
    wd.wait_log("wd-hl-cmd: unhealthy (exit 3: database unreachable for 2 checks)", timeout=30)
    wait_for(lambda: pids("wd-hl-cmd") - {first}, 30, "wd-hl-cmd started again")
    broken.unlink()
    wait_for(lambda: wd.log().count("wd-hl-cmd: healthy (exit 0)") == 2, 30, "healthy after the restart")
    assert wd.stop() == 0


def test_a_command_probe_that_hangs_is_killed_at_its_timeout(tmp_path: Path, watchdog: Start) -> None:
    exe = program(tmp_path, "wd-hl-cmd-hang")
    sleeper = program(tmp_path, "wd-probe-sleep")
    wd = watchdog(f"{exe} 1000", "--health-cmd", f"wd-hl-cmd-hang={sleeper} 1000",
                  "--health-interval", "wd-hl-cmd-hang=0.2", "--health-timeout", "wd-hl-cmd-hang=1",
                  "--health-retries", "wd-hl-cmd-hang=1", "--on-unhealthy", "wd-hl-cmd-hang=report")
    wd.wait_log("wd-hl-cmd-hang: unhealthy (timed out after 1 s)", timeout=30)
    # each probe's process group is killed at its timeout: no sleeper piles up
    wait_for(lambda: len(pids("wd-probe-sleep")) <= 1, 10, "at most the current probe running")
    assert wd.stop() == 0
    wait_for(lambda: not pids("wd-probe-sleep"), 10, "no probe left after the stop")


def test_memory_growth_past_the_limit_is_restarted_before_it_grows_further(
    tmp_path: Path, watchdog: Start
) -> None:
    record = tmp_path / "grown"
    hog = script(tmp_path, "wd-hog", "hog.py", "--step-mib", "10", "--cap-mib", "600",
                 "--record", str(record))
    wd = watchdog(str(hog), "--max-memory", "wd-hog=80M", *fast("wd-hog"))
    [first] = wait_for(lambda: pids("wd-hog"), 30, "wd-hog running")
    log = wd.wait_log("wd-hog: restarting (unhealthy: rss", timeout=60)
    assert "MiB > 80 MiB for 2 checks" in log
    wait_for(lambda: pids("wd-hog") - {first}, 30, "wd-hog started again")
    grown = [int(line.split()[1]) for line in record.read_text().splitlines()
             if line.split()[0] == str(first)]
    assert 80 < max(grown) < 600, f"the first one grew to {max(grown)} MiB"
    assert wd.stop() == 0


def test_unhealthy_restarts_count_for_max_restarts_even_when_each_run_lasted(
    tmp_path: Path, watchdog: Start
) -> None:
    exe = program(tmp_path, "wd-always-sick")
    wd = watchdog(f"{exe} 1000", "--health-tcp", f"wd-always-sick={free_port()}",
                  "--health-interval", "wd-always-sick=0.3", "--health-retries", "wd-always-sick=1",
                  "--stable-after", "0.1", "--max-restarts", "2", "--backoff-max", "0.2")
    log = wd.wait_log("wd-always-sick: giving up: 2 restarts in a row", timeout=60)
    assert log.count("wd-always-sick: restarting (unhealthy: connection refused)") == 3
    assert wd.stop() == 0


def test_on_unhealthy_exit_stops_everything_with_status_7(tmp_path: Path, watchdog: Start) -> None:
    exe, bystander = program(tmp_path, "wd-exit-sick"), program(tmp_path, "wd-hl-bystand")
    wd = watchdog(f"{exe} 1000", f"{bystander} 1000", "--health-tcp", f"wd-exit-sick={free_port()}",
                  *fast("wd-exit-sick"), "--on-unhealthy", "wd-exit-sick=exit")
    assert wd.proc.wait(60) == 7
    log = wd.log()
    assert "wd-exit-sick: giving up: unhealthy: connection refused for 2 checks" in log
    assert not pids("wd-exit-sick") and not pids("wd-hl-bystand")


def test_failures_in_the_start_period_do_not_count(tmp_path: Path, watchdog: Start) -> None:
    exe = program(tmp_path, "wd-slow-start")
    wd = watchdog(f"{exe} 1000", *fast("wd-slow-start"), "--health-start-period", "wd-slow-start=600",
                  env={"WATCHDOG_HEALTH_TCP": f"wd-slow-start={free_port()}"})  # flags come from env too
    wait_for(lambda: rule_status(wd, "wd-slow-start").get("health_detail")
             == "connection refused (start period)", 30, "a failed probe in the start period")
    assert rule_status(wd, "wd-slow-start")["health"] == "unknown"
    assert "unhealthy" not in wd.log() and len(pids("wd-slow-start")) == 1
    assert wd.stop() == 0


def test_health_settings_come_from_a_config_file(tmp_path: Path, watchdog: Start) -> None:
    port = free_port()
    web = script(tmp_path, "wd-conf-web", "web.py", "--port", str(port))
    config = tmp_path / "watchdog.toml"
    config.write_text(f"""
[rules.wd-conf-web]
command = "{web}"
health-http = "http://127.0.0.1:{port}/"
health-interval = 0.3
health-retries = 2
max-memory = "1G"
on-unhealthy = "report"
""")
    wd = watchdog("--config", str(config))
    log = wd.wait_log("wd-conf-web: healthy (", timeout=30)
    [healthy] = [line for line in log.splitlines() if "wd-conf-web: healthy (" in line]
    assert "HTTP 200" in healthy and "rss " in healthy, healthy  # both checks ran
    assert "Traceback" not in log
    assert wd.stop() == 0


def run_watchdog(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "watchdog", *args], capture_output=True, text=True,
                          timeout=60)


def test_bad_health_flags_are_one_line_and_exit_2(tmp_path: Path) -> None:
    exe = program(tmp_path, "wd-hl-bad")
    cases = {
        ("--health-http", "wd-hl-bad=ftp://x/"): "expected an http:// or https:// URL",
        ("--health-http", "wd-hl-bad=http://"): "expected an http:// or https:// URL",
        ("--health-tcp", "wd-hl-bad=70000"): "expected [HOST:]PORT, PORT 1 to 65535",
        ("--health-tcp", "wd-hl-bad=host:"): "expected [HOST:]PORT",
        ("--health-cmd", "wd-hl-bad=/no/such/check"): "/no/such/check does not exist",
        ("--health-cmd", "wd-hl-bad='unclosed"): "no closing quotation",
        ("--max-memory", "wd-hl-bad=512"): "expected a size such as 512M",
        ("--max-memory", "wd-hl-bad=lots"): "expected a size such as 512M",
        ("--max-cpu", "wd-hl-bad=-5"): "expected a percentage > 0",
        ("--health-interval", "wd-hl-bad=5"): "rule 'wd-hl-bad' has no health check",
        ("--health-tcp", "nobody=80"): "no rule is named 'nobody'",
    }
    for flag, expected in cases.items():
        run = run_watchdog(f"{exe} 1000", *flag)
        assert run.returncode == 2, (flag, run.stderr)
        assert expected in run.stderr and len(run.stderr.splitlines()) == 1, (flag, run.stderr)
    schedule_cases = {
        ("--health-interval", "wd-hl-bad=0"): "expected a number of seconds > 0",
        ("--health-timeout", "wd-hl-bad=nan"): "expected a number of seconds > 0",
        ("--health-retries", "wd-hl-bad=0"): "expected a whole number >= 1",
        ("--health-start-period", "wd-hl-bad=-1"): "expected a number of seconds >= 0",
        ("--on-unhealthy", "wd-hl-bad=panic"): "expected restart, report or exit",
    }
    for flag, expected in schedule_cases.items():
        run = run_watchdog(f"{exe} 1000", "--health-tcp", "wd-hl-bad=80", *flag)
        assert run.returncode == 2, (flag, run.stderr)
        assert expected in run.stderr and len(run.stderr.splitlines()) == 1, (flag, run.stderr)
    assert not pids("wd-hl-bad"), "nothing started"


def test_cpu_over_the_limit_is_unhealthy_and_an_idle_service_is_not(
    tmp_path: Path, watchdog: Start
) -> None:
    busy, idle = program(tmp_path, "wd-hl-busy", "/bin/sh"), program(tmp_path, "wd-hl-idle")
    wd = watchdog(f"{busy} -c 'while :; do :; done'", f"{idle} 1000",
                  "--max-cpu", "wd-hl-busy=5", "--max-cpu", "wd-hl-idle=50",
                  "--health-interval", "wd-hl-busy=0.5", "--health-retries", "wd-hl-busy=1",
                  "--health-interval", "wd-hl-idle=0.5", "--on-unhealthy", "wd-hl-busy=report")
    log = wd.wait_log("wd-hl-busy: unhealthy (cpu ", timeout=30)
    [line] = [line for line in log.splitlines() if "wd-hl-busy: unhealthy (cpu " in line]
    assert line.endswith("% > 5%)"), line  # a busy loop takes far more than 5% of a core
    wd.wait_log("wd-hl-idle: healthy (cpu 0%)", timeout=30)
    assert wd.stop() == 0


def test_a_service_that_was_healthy_for_a_while_is_not_a_failure_when_it_hangs(
    tmp_path: Path, watchdog: Start
) -> None:
    port, failing = free_port(), tmp_path / "failing"
    web = script(tmp_path, "wd-hl-weekly", "web.py", "--port", str(port), "--fail-file", str(failing))
    wd = watchdog(str(web), "--health-http", f"wd-hl-weekly=http://127.0.0.1:{port}/",
                  "--health-interval", "wd-hl-weekly=0.2", "--health-retries", "wd-hl-weekly=1",
                  "--stable-after", "0.5", "--max-restarts", "1")
    for round_ in (1, 2):  # two hangs in a row would give up, were they failures
        wait_for(lambda: wd.log().count("wd-hl-weekly: healthy (HTTP 200)") == round_, 30,  # noqa: B023
                 "healthy")
        wait_for(lambda: rule_status(wd, "wd-hl-weekly").get("health") == "healthy", 10, "status")
        time.sleep(1.0)  # healthy for longer than --stable-after
        failing.touch()
        wd.wait_log("wd-hl-weekly: unhealthy (HTTP 500)", timeout=30)
        wait_for(lambda: wd.log().count("wd-hl-weekly: restarting") == round_, 30, "restart")  # noqa: B023
        failing.unlink()
    wait_for(lambda: wd.log().count("wd-hl-weekly: healthy (HTTP 200)") == 3, 30, "healthy again")
    assert "giving up" not in wd.log()
    assert wd.stop() == 0
