"""Health probes on the loop: no thread per probe, a hung name look-up bounded, no leftovers.

TCP and plain-HTTP checks are sockets the loop waits on, command checks
children whose exit it reaps; what a command check leaves running is killed
when it ends, whether it stayed in its process group or left it (``setsid``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import Watchdog, pids, program, wait_for
from namespace import namespace_problem
from test_health import free_port, rule_status, script

Start = Callable[..., Watchdog]


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def test_tcp_http_and_command_probes_run_without_threads(tmp_path: Path, watchdog: Start) -> None:
    port = free_port()
    web = script(tmp_path, "wd-loop-web", "web.py", "--port", str(port))
    checks = []
    for _ in range(8):
        checks += ["--health-tcp", f"wd-loop-web={port}", "--health-http",
                   f"wd-loop-web=http://127.0.0.1:{port}/"]
    wd = watchdog(str(web), *checks, "--health-cmd", "wd-loop-web=/bin/true",
                  "--health-interval", "wd-loop-web=0.1", "--health-timeout", "wd-loop-web=2")
    wd.wait_log("wd-loop-web: healthy", timeout=30)
    first = wd.log().count("running")
    # Rounds go on (each one 17 probes); the watchdog never has a second thread for them.
    detail = f"connected to 127.0.0.1:{port}; HTTP 200"
    wait_for(lambda: detail in rule_status(wd, "wd-loop-web").get("health_detail", ""), 30, "a full round")
    # The watchdog's own threads (its log writer) are those of one without checks.
    plain = watchdog(f"{program(tmp_path, 'wd-loop-plain')} 1000")
    plain.wait_log("wd-loop-plain: running")
    for _ in range(20):
        assert threads(wd.pid) == threads(plain.pid)
        assert rule_status(wd, "wd-loop-web")["health"] == "healthy"
    assert wd.log().count("running") == first
    assert wd.stop() == 0


def test_a_command_probe_leaves_nothing_running_even_what_left_its_group(
    tmp_path: Path, watchdog: Start
) -> None:
    exe = program(tmp_path, "wd-leave-svc")
    stray = program(tmp_path, "wd-leave-stray")
    runs = tmp_path / "runs"
    # Each run leaves a child in a session of its own, then exits 0 (passes).
    check = f"/bin/sh -c 'setsid {stray} 1000 & echo x >> {runs}'"
    wd = watchdog(f"{exe} 1000", "--health-cmd", f"wd-leave-svc={check}",
                  "--health-interval", "wd-leave-svc=0.2", "--health-timeout", "wd-leave-svc=5")
    wait_for(lambda: runs.exists() and len(runs.read_text().split()) >= 6, 30, "six probe runs")
    # Before: one more stray per run. Now each is killed as its run ends.
    wait_for(lambda: len(pids("wd-leave-stray")) <= 1, 10, "at most the current run's stray")
    assert rule_status(wd, "wd-leave-svc")["health"] == "healthy"
    assert wd.stop() == 0
    wait_for(lambda: not pids("wd-leave-stray"), 10, "no stray after the stop")


def test_a_command_probe_that_times_out_takes_its_setsid_children_along(
    tmp_path: Path, watchdog: Start
) -> None:
    exe = program(tmp_path, "wd-leave-hang")
    stray = program(tmp_path, "wd-leave-hstray")
    runs = tmp_path / "runs"
    check = f"/bin/sh -c 'echo x >> {runs}; setsid {stray} 1000 & sleep 1000'"
    wd = watchdog(f"{exe} 1000", "--health-cmd", f"wd-leave-hang={check}",
                  "--health-interval", "wd-leave-hang=0.2", "--health-timeout", "wd-leave-hang=0.5",
                  "--health-retries", "wd-leave-hang=1", "--on-unhealthy", "wd-leave-hang=report")
    wd.wait_log("wd-leave-hang: unhealthy (timed out after 0.5 s)", timeout=30)
    wait_for(lambda: len(runs.read_text().split()) >= 4, 30, "four timed-out runs")
    wait_for(lambda: len(pids("wd-leave-hstray")) <= 1, 10, "at most the current run's stray")
    assert wd.stop() == 0
    wait_for(lambda: not pids("wd-leave-hstray"), 10, "no stray after the stop")


# --- a name whose look-up never ends ------------------------------------------------


# Binds the DNS port of the namespace's loopback, then execs the watchdog, which inherits the
# socket and never reads it: every query waits for an answer that does not come.
SILENT_DNS = ("import os, socket, sys; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
              "s.bind(('127.0.0.1', 53)); os.set_inheritable(s.fileno(), True); "
              "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])")


@pytest.mark.skipif(namespace_problem() is not None, reason=str(namespace_problem()))
def test_a_hung_name_look_up_is_bounded_by_the_timeout(tmp_path: Path) -> None:
    exe = program(tmp_path, "wd-dns-svc")
    bystander = program(tmp_path, "wd-dns-other")
    name = f"wd-dns-{os.getpid()}.invalid-test"
    conf = tmp_path / "resolv.conf"
    # glibc would wait 30 s per attempt, 5 attempts: minutes for one look-up.
    conf.write_text("nameserver 127.0.0.1\noptions timeout:30 attempts:5\n")
    log = tmp_path / "log"
    args = [f"{exe} 1000", f"{bystander} 1000", "--health-http", f"wd-dns-svc=http://{name}:8080/",
            "--health-tcp", f"wd-dns-other={name}:8080", "--health-interval", "wd-dns-svc=0.2",
            "--health-timeout", "wd-dns-svc=1", "--health-retries", "wd-dns-svc=2",
            "--health-interval", "wd-dns-other=0.2", "--health-timeout", "wd-dns-other=1",
            "--on-unhealthy", "wd-dns-svc=report", "--on-unhealthy", "wd-dns-other=report",
            "--status-file", str(tmp_path / "status.json")]
    # Mount and network namespaces of its own: the silent resolver as /etc/resolv.conf, port 53 free.
    setup = 'ip link set lo up && mount --bind "$0" /etc/resolv.conf && exec "$@"'
    with open(log, "w") as out:
        proc = subprocess.Popen(["unshare", "--mount", "--net", "sh", "-c", setup, str(conf),
                                 sys.executable, "-c", SILENT_DNS, "-m", "watchdog", *args],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: "wd-dns-svc: unhealthy (cannot resolve the host: no answer within 1 s for 2 checks)"
                 in log.read_text(), 30, "unhealthy within the timeout")
        wait_for(lambda: "wd-dns-other: health check failed (2 of 3): cannot resolve the host: no answer "
                 "within 1 s" in log.read_text(), 30, "the TCP check bounded as well")
        # One look-up per check at a time, however many rounds failed meanwhile: the main
        # thread, the log writer's, and one hung look-up for each of the two checks.
        assert len(os.listdir(f"/proc/{proc.pid}/task")) <= 4
        proc.terminate()
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in log.read_text()
