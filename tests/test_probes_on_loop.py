"""Health probes on the loop: no thread per probe, a hung name look-up bounded, no leftovers.

TCP and plain-HTTP checks are sockets the loop waits on, command checks
children whose exit it reaps; what a command check leaves running is killed
when it ends, whether it stayed in its process group or left it (``setsid``).
"""

from __future__ import annotations

import os
import select
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import Watchdog, pids, program, unique, wait_for
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


# --- rounds sharing wake-ups, and handshakes that wait -------------------------------


class Accepts:
    """Listening sockets that accept every connection and note when (``time.monotonic``)."""

    def __init__(self, names: list[str]) -> None:
        self.sockets = {name: socket.create_server(("127.0.0.1", 0)) for name in names}
        self.times: dict[str, list[float]] = {name: [] for name in names}
        self.selector = selectors.DefaultSelector()
        for name, sock in self.sockets.items():
            self.selector.register(sock, selectors.EVENT_READ, name)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def port(self, name: str) -> int:
        port: int = self.sockets[name].getsockname()[1]
        return port

    def _accept(self) -> None:
        while not self.done.is_set():
            for key, _ in self.selector.select(0.1):
                conn, _ = key.fileobj.accept()  # type: ignore[union-attr]
                self.times[key.data].append(time.monotonic())
                conn.close()

    def close(self) -> None:
        self.done.set()
        self.thread.join()
        for sock in self.sockets.values():
            sock.close()


def test_rounds_due_within_a_tenth_of_an_interval_share_a_wake_up_and_none_is_late(
    tmp_path: Path, watchdog: Start
) -> None:
    # Each round is due an interval after the last; one due at most a tenth of its interval
    # after a planned batch of rounds runs with that batch, on the same wake-up of the loop.
    intervals = {"a": 1.0, "b": 1.09, "c": 1.5}
    accepts = Accepts(list(intervals))
    names = {key: unique(f"wd-batch-{key}") for key in intervals}
    # Running before the watchdog: all three are found by its first check, at the same time.
    services = [subprocess.Popen([program(tmp_path, name), "1000"]) for name in names.values()]
    try:
        args = ["--scope", "host"]
        for key, name in names.items():
            args += [f"{tmp_path / name} 1000", "--health-tcp", f"{name}={accepts.port(key)}",
                     "--health-interval", f"{name}={intervals[key]}"]
        wd = watchdog(*args)
        wait_for(lambda: len(accepts.times["b"]) >= 6 and len(accepts.times["c"]) >= 4, 30,
                 "six rounds of b and four of c")
        assert wd.stop() == 0
    finally:
        accepts.close()
        for proc in services:
            proc.kill()
            proc.wait()
    a, b, c = (accepts.times[key] for key in intervals)
    # b (due 0.09 s after a's round each time) runs with a, every round: on its own it would
    # drift 0.09 s further from a at each round.
    for when in b:
        assert min(abs(when - other) for other in a) < 0.04, (a, b)
    # None is late, and none runs more than a tenth of its interval early (load adds lateness).
    gaps = {key: [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
            for key, times in (("a", a), ("b", b), ("c", c))}
    for key, found in gaps.items():
        assert all(0.9 * intervals[key] - 0.02 <= gap <= intervals[key] + 0.5 for gap in found), (key, found)
    # c, due half an interval after a, is a batch of its own: it runs a whole interval apart.
    assert all(gap >= intervals["c"] - 0.02 for gap in gaps["c"]), gaps["c"]


def syn_sent_to(port: int) -> int:
    """Connections to 127.0.0.1:PORT still waiting for the answer to their SYN (/proc/net/tcp)."""
    with open("/proc/net/tcp") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    return sum(1 for row in rows if row[2] == f"0100007F:{port:04X}" and row[3] == "02")


def test_a_tcp_handshake_that_waits_is_bounded_by_the_timeout_and_counts_once_it_completes(
    tmp_path: Path, watchdog: Start
) -> None:
    # A listener whose accept queue is full drops new connections' SYNs: the check's connect
    # does not complete at once, and the loop waits for it, bounded by the timeout.
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = listener.getsockname()[1]
    queued = []
    while True:  # fill the queue until a connection is left waiting
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        queued.append(sock)
        if not select.select([], [sock], [], 0.2)[1]:
            break
    exe = program(tmp_path, "wd-syn-svc")
    wd = watchdog(f"{exe} 1000", "--health-tcp", f"wd-syn-svc={port}", "--health-interval", "wd-syn-svc=0.3",
                  "--health-timeout", "wd-syn-svc=2.5", "--health-retries", "wd-syn-svc=1",
                  "--on-unhealthy", "wd-syn-svc=report")
    try:
        wd.wait_log("wd-syn-svc: unhealthy (timed out after 2.5 s)", timeout=30)
        # Once the next check waits for its SYN to be answered, room is made: the kernel's
        # resent SYN (a second later) completes the connection the loop waits on.
        ours = syn_sent_to(port)
        wait_for(lambda: syn_sent_to(port) > ours, 30, "the next check's connect to wait for its SYN")
        for sock in queued:
            sock.close()
        listener.setblocking(False)
        drained = threading.Event()

        def accept_all() -> None:
            while not drained.is_set():
                if select.select([listener], [], [], 0.1)[0]:
                    try:
                        listener.accept()[0].close()
                    except BlockingIOError:
                        pass

        thread = threading.Thread(target=accept_all, daemon=True)
        thread.start()
        wd.wait_log(f"wd-syn-svc: healthy (connected to 127.0.0.1:{port})", timeout=30)
        drained.set()
        thread.join()
        assert wd.stop() == 0
    finally:
        listener.close()
    assert "Traceback" not in wd.log()


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
