"""Start-up order with real processes: readiness, --after, --init, --essential, the stop order."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import psutil
from helpers import PROGRAMS, Watchdog, pids, program, service, unique, wait_for

Start = Callable[..., Watchdog]


def notifier(tmp_path: Path, name: str, *args: str) -> str:
    """A command line running programs/notifier.py as a process named ``name``."""
    path = tmp_path / name
    quoted = " ".join(f"'{arg}'" for arg in args)
    path.write_text(f"#!/bin/sh\nexec {sys.executable} {PROGRAMS / 'notifier.py'} --name {name} "
                    f"--home {tmp_path} {quoted}\n")
    path.chmod(0o755)
    return str(path)


def when(log: str, text: str) -> datetime:
    """The time of the first log line holding ``text``."""
    line = next(line for line in log.splitlines() if text in line)
    return datetime.fromisoformat(line.split()[0])


def status_of(wd: Watchdog, name: str) -> dict | None:
    try:
        content = json.loads(wd.log_path.with_suffix(".status").read_text())
    except (OSError, ValueError):
        return None
    return next((rule for rule in content["rules"] if rule["name"] == name), None)


def test_a_web_service_after_a_database_starts_only_once_the_database_is_ready(
        tmp_path: Path, watchdog: Start) -> None:
    db = notifier(tmp_path, "ord-db", "--ready-after", "1.5", "--status", "accepting connections")
    web = program(tmp_path, "ord-web")
    wd = watchdog("--rule", f"db={db}", "--rule", f"web={web} 1000", "--notify", "db",
                  "--after", "web=db", "--match", "basename")
    wait_for(lambda: (s := status_of(wd, "web")) and s["state"] == "waiting"
             and s["waiting_for"] == ["db"], 10, "web waiting for db in the status file")
    assert not pids("ord-web")
    log = wd.wait_log("web: running", 20)
    assert when(log, "db: ready") <= when(log, "web: started")
    assert when(log, "db: started") < when(log, "db: ready")
    db_status = wait_for(lambda: (s := status_of(wd, "db")) and s["ready"] and s, 10, "db ready")
    assert db_status["message"] == "accepting connections"


def test_a_chain_of_three_starts_in_order(tmp_path: Path, watchdog: Start) -> None:
    first = notifier(tmp_path, "ord-first", "--ready-after", "0.5")
    second = notifier(tmp_path, "ord-second", "--ready-after", "0.5")
    third = program(tmp_path, "ord-third")
    wd = watchdog("--rule", f"third={third} 1000", "--rule", f"second={second}",
                  "--rule", f"first={first}", "--notify", "first", "--notify", "second",
                  "--after", "third=second", "--after", "second=first")
    log = wd.wait_log("third: running", 30)
    assert when(log, "first: ready") <= when(log, "second: started")
    assert when(log, "second: ready") <= when(log, "third: started")


def test_a_rule_waits_while_what_it_comes_after_never_gets_ready(tmp_path: Path, watchdog: Start) -> None:
    never = notifier(tmp_path, "ord-never", "--ready-after", "1000")
    waiting = program(tmp_path, "ord-waits")
    wd = watchdog("--rule", f"never={never}", "--rule", f"waits={waiting} 1000", "--notify", "never",
                  "--after", "waits=never")
    wd.wait_log("waits: waiting for never to be ready")
    wd.wait_log("never: running")
    wait_for(lambda: (s := status_of(wd, "waits")) and s["waiting_for"] == ["never"], 10, "status")
    shown = os.popen(f"{sys.executable} -m watchdog --status --status-file "
                     f"{wd.log_path.with_suffix('.status')}").read()
    assert "waiting for never" in shown
    assert not pids("ord-waits")


def test_a_dependency_cycle_is_a_usage_error_before_anything_starts(tmp_path: Path,
                                                                     watchdog: Start) -> None:
    a, b = program(tmp_path, "ord-cyc-a"), program(tmp_path, "ord-cyc-b")
    wd = watchdog("--rule", f"a={a} 1000", "--rule", f"b={b} 1000", "--after", "a=b", "--after", "b=a")
    assert wd.proc.wait(20) == 2
    assert "watchdog: --after: a dependency cycle: a -> b -> a" in wd.log()
    assert "Traceback" not in wd.log()
    assert not pids("ord-cyc-a") and not pids("ord-cyc-b")


def test_an_unknown_dependency_is_a_usage_error(tmp_path: Path, watchdog: Start) -> None:
    a = program(tmp_path, "ord-unknown")
    wd = watchdog(f"{a} 1000", "--after", "ord-unknown=nosuch")
    assert wd.proc.wait(20) == 2
    assert "no rule is named 'nosuch'" in wd.log()
    assert not pids("ord-unknown")


def test_init_tasks_run_in_order_before_any_service(tmp_path: Path, watchdog: Start) -> None:
    marks = tmp_path / "marks"
    svc = service(tmp_path, "ord-after-init", "--record", str(marks))
    wd = watchdog("--init", f"sh -c 'echo migrate-one >> {marks}; echo task output here'",
                  "--init", f"sh -c 'sleep 0.3; echo migrate-two >> {marks}'", str(svc))
    wd.wait_log("ord-after-init: running", 20)
    lines = wait_for(lambda: len(marks.read_text().splitlines()) == 3 and marks.read_text().splitlines(),
                     10, "three marks")
    assert lines[:2] == ["migrate-one", "migrate-two"]
    assert lines[2].endswith(" READY")
    assert "task output here" in wd.log()
    assert "init: init task 2/2" in wd.log()


def test_a_failing_init_task_starts_nothing_and_says_which(tmp_path: Path, watchdog: Start) -> None:
    svc = program(tmp_path, "ord-never-run")
    wd = watchdog("--init", "true", "--init", "sh -c 'exit 3'", "--init", "true", f"{svc} 1000")
    assert wd.proc.wait(20) == 5
    log = wd.log()
    assert "init task 2/3 \"sh -c 'exit 3'\" failed: exited with status 3; starting nothing" in log
    assert "init task 3/3" not in log
    assert not pids("ord-never-run")


def test_an_init_task_that_cannot_run_starts_nothing(tmp_path: Path, watchdog: Start) -> None:
    svc = program(tmp_path, "ord-never-run2")
    wd = watchdog("--init", str(tmp_path / "no-such-migration"), f"{svc} 1000")
    assert wd.proc.wait(20) == 5
    assert "cannot run" in wd.log()
    assert not pids("ord-never-run2")


def test_sigterm_during_an_init_task_stops_it_and_exits(tmp_path: Path, watchdog: Start) -> None:
    task = program(tmp_path, "ord-long-task")
    svc = program(tmp_path, "ord-not-started")
    wd = watchdog("--init", f"{task} 1000", f"{svc} 1000")
    wait_for(lambda: pids("ord-long-task"), 10, "the init task")
    assert wd.stop(signal.SIGTERM) == 0
    assert "stopped (SIGTERM); starting nothing" in wd.log()
    assert not pids("ord-long-task") and not pids("ord-not-started")


def test_the_config_file_lists_init_tasks_dependencies_and_notify(tmp_path: Path, watchdog: Start) -> None:
    marks = tmp_path / "marks"
    db = notifier(tmp_path, "ord-cf-db", "--ready-after", "0.5")
    web = program(tmp_path, "ord-cf-web")
    config = tmp_path / "watchdog.toml"
    config.write_text(f"""
init = ["sh -c 'echo migrated >> {marks}'"]
notify = ["db"]

[rules.db]
command = "{db}"

[rules.web]
command = "{web} 1000"
after = "db"
""")
    wd = watchdog("--config", str(config))
    log = wd.wait_log("web: running", 20)
    assert marks.read_text() == "migrated\n"
    assert when(log, "init task 1/1") < when(log, "db: started")
    assert when(log, "db: ready") <= when(log, "web: started")


def test_a_cycle_in_the_config_file_is_a_usage_error(tmp_path: Path, watchdog: Start) -> None:
    a, b = program(tmp_path, "ord-cfc-a"), program(tmp_path, "ord-cfc-b")
    config = tmp_path / "watchdog.toml"
    config.write_text(f'[rules.a]\ncommand = "{a} 1"\nafter = "b"\n'
                      f'[rules.b]\ncommand = "{b} 1"\nafter = "a"\n')
    wd = watchdog("--config", str(config))
    assert wd.proc.wait(20) == 2
    assert "a dependency cycle" in wd.log()


def test_an_essential_service_killed_ends_the_watchdog_with_its_status(tmp_path: Path,
                                                                        watchdog: Start) -> None:
    record = tmp_path / "sidecar.record"
    app = program(tmp_path, "ord-app")
    sidecar = service(tmp_path, "ord-sidecar", "--record", str(record))
    wd = watchdog(f"{app} 1000", str(sidecar), "--essential", "ord-app")
    wait_for(lambda: record.exists() and "READY" in record.read_text(), 20, "the sidecar's handlers")
    [app_pid] = wait_for(lambda: pids("ord-app"), 10, "the app")
    os.kill(app_pid, signal.SIGKILL)
    assert wd.proc.wait(20) == 128 + signal.SIGKILL
    assert "SIGTERM" in record.read_text()  # the sidecar was asked, not killed
    log = wd.log()
    assert "essential service ended: stopping every service, exit status 137" in log
    assert "ord-app: started" in log and log.count("ord-app: started") == 1
    assert not pids("ord-sidecar")


def test_an_essential_service_that_exits_gives_its_own_status(tmp_path: Path, watchdog: Start) -> None:
    app = service(tmp_path, "ord-app-exit", "--exit-after", "0.5", "--exit-code", "7")
    sidecar = program(tmp_path, "ord-sidecar2")
    wd = watchdog(str(app), f"{sidecar} 1000", "--essential", "ord-app-exit")
    assert wd.proc.wait(20) == 7
    assert not pids("ord-sidecar2")


def test_an_essential_daemon_ends_with_its_status_once_reaped(tmp_path: Path, watchdog: Start) -> None:
    daemon = service(tmp_path, "ord-daemon", "--daemon")
    wd = watchdog(str(daemon), "--essential", "ord-daemon")
    wd.wait_log("ord-daemon: running")
    [pid] = wait_for(lambda: pids("ord-daemon"), 10, "the daemon")
    os.kill(pid, signal.SIGKILL)  # re-parented to the watchdog, which reaps it: its status is known
    assert wd.proc.wait(20) == 128 + signal.SIGKILL


def test_an_adopted_essential_service_ends_with_the_documented_status(tmp_path: Path,
                                                                       watchdog: Start) -> None:
    name = unique("ord-adopt")  # the watchdog looks at every process on the host
    stranger = subprocess.Popen([str(program(tmp_path, name)), "1000"])
    try:
        wait_for(lambda: pids(name), 10, "the process to adopt")
        wd = watchdog(f"{tmp_path / name} 1000", "--essential", name, "--scope", "host")
        wd.wait_log(f"{name}: running (pid {stranger.pid})")
        stranger.kill()  # its status goes to its parent, not to the watchdog
        assert wd.proc.wait(20) == 6
        assert "cannot be known" in wd.log()
    finally:
        stranger.kill()
        stranger.wait()


def test_a_non_essential_service_is_still_restarted(tmp_path: Path, watchdog: Start) -> None:
    app = program(tmp_path, "ord-main")
    other = program(tmp_path, "ord-other")
    wd = watchdog(f"{app} 1000", f"{other} 1000", "--essential", "ord-main")
    [first] = wait_for(lambda: pids("ord-other"), 10, "the other service")
    wait_for(lambda: pids("ord-main"), 10, "the main service")
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: (now := pids("ord-other")) and first not in now, 10, "a new ord-other")
    assert wd.proc.poll() is None


def test_the_stop_goes_in_reverse_order_of_dependencies(tmp_path: Path, watchdog: Start) -> None:
    record = tmp_path / "record"
    db = service(tmp_path, "ord-stop-db", "--record", str(record))
    web = service(tmp_path, "ord-stop-web", "--record", str(record))
    front = service(tmp_path, "ord-stop-front", "--record", str(record))
    wd = watchdog("--rule", f"db={db}", "--rule", f"web={web}", "--rule", f"front={front}",
                  "--after", "web=db", "--after", "front=web")
    wd.wait_log("front: running", 20)
    wait_for(lambda: record.exists() and record.read_text().count("READY") == 3, 20,
             "three services recording signals")
    names = {}
    for name in ("db", "web", "front"):
        [pid] = wait_for(lambda: pids(f"ord-stop-{name}"), 10, name)  # noqa: B023
        names[str(pid)] = name
    assert wd.stop(signal.SIGTERM) == 0
    terms = [names[line.split()[0]] for line in record.read_text().splitlines() if "SIGTERM" in line]
    assert terms == ["front", "web", "db"]
    log = wd.log()
    assert when(log, "front: exited") <= when(log, "web: stopping")
    assert when(log, "web: exited") <= when(log, "db: stopping")


def test_a_hung_dependent_gets_its_share_of_the_grace_then_the_rest_stop(tmp_path: Path,
                                                                        watchdog: Start) -> None:
    record = tmp_path / "record"
    db = service(tmp_path, "ord-grace-db", "--record", str(record))
    web_record = tmp_path / "web.record"
    web = service(tmp_path, "ord-grace-web", "--ignore-term", "--record", str(web_record))
    wd = watchdog("--rule", f"db={db}", "--rule", f"web={web}", "--after", "web=db", "--grace", "2")
    wait_for(lambda: web_record.exists() and "READY" in web_record.read_text(), 20,
             "web ignoring SIGTERM")
    wait_for(lambda: "READY" in record.read_text(), 20, "db recording signals")
    assert wd.stop(signal.SIGTERM) == 4  # web had to be killed
    assert "SIGTERM" in record.read_text()  # db still got its stop signal, not a bare KILL
    log = wd.log()
    assert when(log, "sending SIGKILL: web") <= when(log, "db: stopping")
    assert not pids("ord-grace-db") and not pids("ord-grace-web")


def test_notify_pings_then_silence_make_the_rule_unhealthy_and_restart_it(tmp_path: Path,
                                                                         watchdog: Start) -> None:
    pinger = notifier(tmp_path, "ord-pinger", "--ping-every", "0.2", "--pings", "5")
    wd = watchdog(pinger, "--notify", "ord-pinger", "--watchdog-sec", "ord-pinger=1.5")
    log = wd.wait_log("ord-pinger: healthy (WATCHDOG=1)")
    assert "WATCHDOG_USEC=1500000" in log
    [first] = wait_for(lambda: pids("ord-pinger"), 10, "the pinger")
    wd.wait_log("ord-pinger: unhealthy (no WATCHDOG=1 ping for 1.5 s)", 20)
    wait_for(lambda: (now := pids("ord-pinger")) and first not in now, 20, "a restarted pinger")
    assert psutil.pid_exists(first) is False or psutil.Process(first).status() == psutil.STATUS_ZOMBIE


def test_notify_drops_foreign_malformed_and_oversized_datagrams(tmp_path: Path, watchdog: Start) -> None:
    quiet = notifier(tmp_path, "ord-quiet", "--ready-after", "1000",
                     "--send", "garbage\\x00\\xff", "--send", "A" * 5000)
    wd = watchdog(quiet, "--notify", "ord-quiet", "-v")
    log = wd.wait_log("ord-quiet: running")
    path = next(word.partition("=")[2] for word in log.split() if word.startswith("NOTIFY_SOCKET="))
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"READY=1", path)  # the test is not the service's process
    wd.wait_log(f"dropped a datagram from pid {os.getpid()}: the sender is not one of the rule's "
                "processes", 20)
    log = wd.log()
    assert "not KEY=VALUE lines" in log
    assert "oversized" in log
    assert "ord-quiet: ready" not in log
    assert wd.proc.poll() is None


def test_mainpid_makes_the_named_process_the_rules(tmp_path: Path, watchdog: Start) -> None:
    forker = notifier(tmp_path, "ord-forker", "--main-child")
    # A pidfile nobody writes: only MAINPID can tell the watchdog which process is the service.
    wd = watchdog("--rule", f"svc={forker}", "--pidfile", f"svc={tmp_path / 'none.pid'}",
                  "--notify", "svc")
    log = wd.wait_log("(MAINPID)")
    main = int(log.split("main process is ")[1].split()[0])
    wd.wait_log(f"svc: running (pid {main})")
    wd.wait_log("svc: ready")
    os.kill(main, signal.SIGKILL)
    wd.wait_log("svc: started", 10)
    wait_for(lambda: wd.log().count("svc: started") == 2, 10, "a second start")


def test_a_restart_for_missed_pings_does_not_end_an_essential_service(tmp_path: Path,
                                                                      watchdog: Start) -> None:
    pinger = notifier(tmp_path, "ord-ess-ping", "--ping-every", "0.2", "--pings", "3")
    wd = watchdog(pinger, "--notify", "ord-ess-ping", "--watchdog-sec", "ord-ess-ping=1",
                  "--essential", "ord-ess-ping")
    wd.wait_log("ord-ess-ping: unhealthy (no WATCHDOG=1 ping for 1 s)", 20)
    wait_for(lambda: wd.log().count("ord-ess-ping: started") == 2, 20, "a second start")
    assert wd.proc.poll() is None
    assert "essential service ended" not in wd.log()


def test_watchdog_trigger_restarts_the_service_at_once(tmp_path: Path, watchdog: Start) -> None:
    trigger = notifier(tmp_path, "ord-trigger", "--ready-after", "0.5", "--send", "WATCHDOG=trigger")
    wd = watchdog(trigger, "--notify", "ord-trigger")
    wd.wait_log("ord-trigger: restarting (the service asked for its restart (WATCHDOG=trigger))", 20)
    wait_for(lambda: wd.log().count("ord-trigger: started") >= 2, 20, "a second start")


def test_the_config_file_names_essential_services_and_watchdog_limits(tmp_path: Path,
                                                                      watchdog: Start) -> None:
    pinger = notifier(tmp_path, "ord-cf-ping", "--ping-every", "0.2", "--pings", "3")
    app = program(tmp_path, "ord-cf-app")
    config = tmp_path / "watchdog.toml"
    config.write_text(f"""
notify = ["pinger"]
essential = ["app"]

[rules.pinger]
command = "{pinger}"
watchdog-sec = 1

[rules.app]
command = "{app} 1000"
""")
    wd = watchdog("--config", str(config))
    wd.wait_log("pinger: unhealthy (no WATCHDOG=1 ping for 1 s)", 20)
    [app_pid] = wait_for(lambda: pids("ord-cf-app"), 10, "the app")
    os.kill(app_pid, signal.SIGTERM)
    assert wd.proc.wait(20) == 128 + signal.SIGTERM
    assert not pids("ord-cf-ping")


BAD_ORDER_INPUT = [
    (["--after", "ord-bad=ord-bad"], "--after ord-bad=ord-bad: a rule cannot come after itself"),
    (["--after", "ord-bad=,"], "--after ord-bad=,: an empty name"),
    (["--after", "ord-bad"], "--after 'ord-bad': expected NAME=VALUE"),
    (["--after", "nosuch=ord-bad"], "--after 'nosuch=ord-bad': no rule is named 'nosuch'"),
    (["--notify", "nosuch"], "--notify nosuch: no rule is named 'nosuch'"),
    (["--essential", "nosuch"], "--essential nosuch: no rule is named 'nosuch'"),
    (["--watchdog-sec", "ord-bad=5"], "rule 'ord-bad' needs --notify ord-bad too"),
    (["--notify", "ord-bad", "--watchdog-sec", "ord-bad=soon"], "'soon' is not a number of seconds"),
    (["--notify", "ord-bad", "--watchdog-sec", "ord-bad=0"], "is not a finite number of seconds"),
    (["--init", "'unclosed"], "--init: command \"'unclosed\": no closing quotation"),
    (["--init", ""], "--init: empty command"),
]


def test_bad_ordering_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    exe = program(tmp_path, "ord-bad")
    for flags, message in BAD_ORDER_INPUT:
        run = subprocess.run([sys.executable, "-m", "watchdog", f"{exe} 1000", *flags],
                             capture_output=True, text=True, timeout=30, cwd=tmp_path)
        assert run.returncode == 2, (flags, run.stderr)
        assert message in run.stderr, (flags, run.stderr)
        assert len(run.stderr.strip().splitlines()) == 1, (flags, run.stderr)
    assert not pids("ord-bad")


def test_init_output_is_labelled_like_a_services_with_prefix(tmp_path: Path, watchdog: Start) -> None:
    svc = program(tmp_path, "ord-prefixed")
    wd = watchdog("--prefix", "--init", "echo from the task", f"{svc} 1000")
    wd.wait_log("ord-prefixed: running", 20)
    assert "init         | from the task" in wd.log()
