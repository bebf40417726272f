"""What real daemons and entrypoints do to "running", on real processes.

Orphaned workers of a killed master, a command that exec's a server of another
name, a starter that leaves a daemon of another name, processes no rule matches
at stop, starts that fail, and signals forwarded only where they are wanted.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from helpers import (
    PROGRAMS,
    CheckCounts,
    Watchdog,
    live,
    pids,
    program,
    ready_since,
    service,
    unique,
    wait_for,
)
from namespace import Container, needs_namespace

Start = Callable[..., Watchdog]


def status_of(path: Path, name: str) -> dict[str, object]:
    try:
        rules = json.loads(path.read_text())["rules"]
    except (OSError, ValueError):
        return {}
    return next((rule for rule in rules if rule["name"] == name), {})


def test_a_killed_master_whose_workers_live_on_is_restarted(watchdog: Start, tmp_path: Path) -> None:
    svc = service(tmp_path, "wd-master", "--daemon", "--workers", "2")
    wd = watchdog(str(svc), "--interval", "60")
    wait_for(lambda: len(pids("wd-master")) == 3, what="a master and two workers")
    wd.wait_log("wd-master: running")
    first = pids("wd-master")
    master = next(proc.pid for proc in map(psutil.Process, first) if proc.ppid() not in first)
    os.kill(master, signal.SIGKILL)
    log = wd.wait_log(f"main process {master} died and left 2 of its workers")
    assert "nothing serves; stopping them to start the service again" in log
    wait_for(lambda: len(pids("wd-master")) == 3 and not pids("wd-master") & first,
             what="a new master and new workers, none of the old ones")


def nginx_config(tmp_path: Path, port: int) -> Path:
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"""
        worker_processes 2;
        pid {tmp_path}/nginx.pid;
        error_log {tmp_path}/error.log;
        events {{ worker_connections 64; }}
        http {{
            access_log off;
            client_body_temp_path {tmp_path}/body;
            proxy_temp_path {tmp_path}/proxy;
            fastcgi_temp_path {tmp_path}/fastcgi;
            uwsgi_temp_path {tmp_path}/uwsgi;
            scgi_temp_path {tmp_path}/scgi;
            server {{ listen 127.0.0.1:{port}; location / {{ return 200 "ok\\n"; }} }}
        }}
    """)
    return conf


def http_ok(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


@pytest.mark.skipif(shutil.which("nginx", path="/usr/sbin:/usr/bin") is None or os.geteuid() != 0,
                    reason="needs root and Debian's nginx (.ci/run installs it)")
def test_debian_nginx_master_killed_is_restarted_and_serves_again(
        watchdog: Start, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conf = nginx_config(tmp_path, port)
    wd = watchdog(f"/usr/sbin/nginx -c {conf}", "--interval", "60")
    wait_for(lambda: http_ok(port), what="nginx serving")
    wd.wait_log("nginx: running")
    master = int((tmp_path / "nginx.pid").read_text())
    workers = {child.pid for child in psutil.Process(master).children()}
    assert len(workers) == 2
    os.kill(master, signal.SIGKILL)
    wd.wait_log(f"main process {master} died and left 2 of its workers")
    wait_for(lambda: not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
                             for pid in workers), what="the orphaned workers stopped")
    wait_for(lambda: http_ok(port), what="nginx serving again")
    new_master = int((tmp_path / "nginx.pid").read_text())
    assert new_master != master


def test_a_command_that_execs_a_server_of_another_name_is_running(
        watchdog: Start, tmp_path: Path) -> None:
    server = program(tmp_path, "wd-exec-server")
    entrypoint = tmp_path / "wd-entrypoint.sh"
    entrypoint.write_text(f"#!/bin/sh\nexec {server} 1000\n")
    entrypoint.chmod(0o755)
    status = tmp_path / "status.json"
    wd = watchdog(str(entrypoint), "--status-file", str(status))
    pid = next(iter(wait_for(lambda: pids("wd-exec-server"), what="the server")))
    log = wd.wait_log("taking it as the service", timeout=20)
    assert f"'wd-exec-server' (pid {pid}" in log and "--regex wd-entrypoint.sh=PATTERN" in log
    wait_for(lambda: status_of(status, "wd-entrypoint.sh").get("state") == "running",
             what="the status file to say running")
    shown = subprocess.run([sys.executable, "-m", "watchdog", "--status", "--status-file", str(status)],
                           capture_output=True, text=True)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    os.kill(pid, signal.SIGKILL)  # its death is the service's death
    wait_for(lambda: pids("wd-exec-server") - {pid}, what="the entrypoint run again")


def test_a_starter_that_leaves_a_daemon_of_another_name_is_not_run_again(
        watchdog: Start, tmp_path: Path) -> None:
    record = tmp_path / "record"
    worker = service(tmp_path, "wd-pile-worker", "--record", str(record))
    starter = tmp_path / "wd-pile-starter"
    starter.write_text(f"#!/bin/sh\nsetsid -f {worker}\n")
    starter.chmod(0o755)
    status = tmp_path / "status.json"
    counts = CheckCounts(tmp_path)
    wd = watchdog(str(starter), "--status-file", str(status), "--interval", "0.5", *counts.args,
                  env=counts.env())
    first = set(wait_for(lambda: ready_since(record, set()), what="the worker"))
    wd.wait_log("taking it as the service")
    counts.wait(6)  # a rule taken as missing would have started more by then
    assert pids("wd-pile-worker") == first
    assert wd.log().count("wd-pile-starter: started") == 1
    wait_for(lambda: status_of(status, "wd-pile-starter").get("state") == "running",
             what="the status file to say running")
    os.kill(next(iter(first)), signal.SIGKILL)
    second = wait_for(lambda: ready_since(record, first), what="the worker started again")
    assert len(second) == 1 and pids("wd-pile-worker") == set(second)


def word(fifo: Path) -> None:
    """Release the program blocked opening ``fifo`` for reading (once it is there)."""

    def opened() -> bool:
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:  # ENXIO: no reader yet
            return False
        return True

    wait_for(opened, what=f"a reader of {fifo.name}")


def test_a_daemon_that_another_rule_claims_is_never_a_stand_in(
        watchdog: Start, tmp_path: Path) -> None:
    """A pidfile rule's daemon is, until it writes its pidfile, an orphan no rule claims,
    born after another rule's start: the leftover of that start, as far as time tells.
    Once its own rule claims it, it is that rule's alone: when the other rule's daemon
    dies, the other rule starts it again rather than taking this one as its service."""
    daemon = service(tmp_path, unique("wd-lb-dm"), "--daemon")
    late = unique("wd-lb-pf")
    pidfile, hold = tmp_path / "late.pid", tmp_path / "hold"
    os.mkfifo(hold)
    starter = tmp_path / late
    starter.write_text(f"#!/bin/sh\nexec {sys.executable} {PROGRAMS / 'late_pidfile.py'} "
                       f"{late} {pidfile} {hold}\n")
    starter.chmod(0o755)
    counts = CheckCounts(tmp_path)
    # Both start in the first check, the pidfile rule first: the daemon's rule is the
    # last started before the late daemon is born.
    wd = watchdog(str(starter), str(daemon), "--pidfile", f"{late}={pidfile}", "--interval", "1",
                  *counts.args, env=counts.env())
    first = wait_for(lambda: pids(daemon.name), what="the daemon")
    word(hold)  # the late starter forks now
    wait_for(lambda: [proc for proc in live(late) if proc.ppid() == wd.proc.pid],
             what="the late daemon, re-parented to the watchdog")
    counts.wait(2)  # checks saw it while no rule claimed it
    word(hold)  # it writes its pidfile: its rule claims it
    wd.wait_log(f"{late}: running")
    os.kill(next(iter(first)), signal.SIGKILL)
    wait_for(lambda: pids(daemon.name) - first, what="the daemon started again")
    assert "taking it as the service" not in wd.log()


def test_stop_ends_processes_that_no_rule_matches_too(watchdog: Start, tmp_path: Path) -> None:
    helper = service(tmp_path, "wd-stray-helper")
    main = service(tmp_path, "wd-stray-main")
    script = tmp_path / "wd-stray-main.sh"
    script.write_text(f"#!/bin/sh\nsetsid -f {helper}\nexec {main}\n")
    script.chmod(0o755)
    wd = watchdog(f"{script}", "--regex", "wd-stray-main.sh=--name wd-stray-main ")
    stray = next(iter(wait_for(lambda: pids("wd-stray-helper"), what="the helper")))
    wait_for(lambda: pids("wd-stray-main"), what="the service")
    wd.wait_log("wd-stray-main.sh: running")
    assert wd.stop() == 0
    assert not pids("wd-stray-helper") and not pids("wd-stray-main")
    assert f"stopping 1 processes that no rule matches: {stray} (wd-stray-helper)" in wd.log()


@needs_namespace
def test_as_pid_1_stop_ends_everything_in_the_container(tmp_path: Path) -> None:
    main = service(tmp_path, "wd-ns-main")
    box = Container([str(main)], tmp_path)
    try:
        box.wait_log("wd-ns-main: running")
        stray = service(tmp_path, "wd-ns-stray")
        box.run("sh", "-c", f"setsid -f {stray} >/dev/null 2>&1")
        wait_for(lambda: box.named("wd-ns-stray"), what="a process no rule matches")
        box.signal(signal.SIGTERM)
        assert box.wait() == 0
        assert "stopping 1 processes that no rule matches" in box.log()
        assert box.processes() == []
    finally:
        box.close()


def test_starts_that_fail_count_for_max_restarts_and_restarts(watchdog: Start, tmp_path: Path) -> None:
    exe = program(tmp_path, "wd-vanishing")
    status = tmp_path / "status.json"
    wd = watchdog(f"{exe} 1000", "--max-restarts", "2", "--backoff-max", "0.1",
                  "--status-file", str(status))
    pid = next(iter(wait_for(lambda: pids("wd-vanishing"), what="the service")))
    wd.wait_log("wd-vanishing: running")
    exe.unlink()  # the program is removed: every start from now on fails
    os.kill(pid, signal.SIGKILL)
    wd.wait_log("giving up: 2 restarts in a row failed (the last could not start)")
    assert "No such file or directory" in wd.log()
    rule = wait_for(lambda: status_of(status, "wd-vanishing").get("given_up") and
                    status_of(status, "wd-vanishing"), what="the status file")
    assert rule["restarts"] == 2 and rule["last_exit"] == 127


def test_forwarded_signals_go_only_to_the_rules_that_want_them(watchdog: Start, tmp_path: Path) -> None:
    record = tmp_path / "signals"
    wants = service(tmp_path, "wd-fwd-wants", "--record", str(record))
    spared = service(tmp_path, "wd-fwd-spared", "--record", str(record))
    wd = watchdog(str(wants), str(spared), "--forward-signals", "wd-fwd-spared=none")
    wants_pid = next(iter(wait_for(lambda: pids("wd-fwd-wants"))))
    spared_pid = next(iter(wait_for(lambda: pids("wd-fwd-spared"))))
    wait_for(lambda: record.exists() and record.read_text().count("READY") == 2)
    wd.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: f"{wants_pid} SIGHUP" in record.read_text(), what="HUP forwarded")
    wd.wait_log("forwarding SIGHUP to wd-fwd-wants\n")
    assert f"{spared_pid} SIGHUP" not in record.read_text()
    assert pids("wd-fwd-spared") == {spared_pid}


def test_forward_signals_takes_only_forwardable_signals(watchdog: Start, tmp_path: Path) -> None:
    exe = program(tmp_path, "wd-fwd-bad")
    wd = watchdog(f"{exe} 100", "--forward-signals", "wd-fwd-bad=TERM")
    assert wd.proc.wait(10) == 2
    assert wd.log() == ("watchdog: --forward-signals wd-fwd-bad: 'TERM': give some of HUP, USR1, "
                        "USR2, WINCH, or none\n")
