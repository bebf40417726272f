"""The probe endpoints (--probe-address) against watchdogs running real services, over real TCP."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from helpers import Watchdog, pids, service, wait_for

Start = Callable[..., Watchdog]


def probe_port(wd: Watchdog) -> int:
    """The port the watchdog took for --probe-address 127.0.0.1:0, from its log line."""
    found = wait_for(lambda: re.search(r"probes: serving .* on 127\.0\.0\.1:(\d+)", wd.log()),
                     what="the probes' log line")
    return int(found.group(1))


def raw(port: int, data: bytes, timeout: float = 15) -> bytes:
    """Send ``data`` as it is and read the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as client:
        try:
            client.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # it answered and closed before taking all of an oversized request
        answer = b""
        try:
            while chunk := client.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    return answer


def get(port: int, target: str) -> tuple[int, str]:
    """``GET target``: the status and the body."""
    answer = raw(port, f"GET {target} HTTP/1.1\r\nHost: pod\r\nUser-Agent: kube-probe/1.30\r\n\r\n".encode())
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body.decode()


def answers(port: int, target: str, status: int, *parts: str) -> Callable[[], bool]:
    """A condition: ``GET target`` answers ``status`` with each of ``parts`` in the body."""
    def check() -> bool:
        code, body = get(port, target)
        return code == status and all(part in body for part in parts)
    return check


def test_each_endpoint_through_a_rules_life(tmp_path: Path, watchdog: Start) -> None:
    failing = tmp_path / "failing"
    failing.touch()
    first = service(tmp_path, "wd-pr-first", "--ignore-term")  # holds on until the KILL at the grace
    second = service(tmp_path, "wd-pr-second")
    wd = watchdog(str(first), str(second), "--after", "wd-pr-second=wd-pr-first", "--grace", "3",
                  "--health-cmd", f"wd-pr-first=test ! -e {failing}", "--health-interval", "wd-pr-first=0.2",
                  "--health-retries", "wd-pr-first=2", "--health-start-period", "wd-pr-first=600",
                  "--on-unhealthy", "wd-pr-first=report", "--probe-address", "127.0.0.1:0")
    port = probe_port(wd)
    wd.wait_log("wd-pr-first: running")

    # Starting: the first runs but its check has not passed; the second waits for it.
    assert get(port, "/livez") == (200, "ok\n")
    wait_for(answers(port, "/readyz", 503), what="readyz 503")
    code, body = get(port, "/readyz")
    assert code == 503 and body.splitlines() == [
        "[+]shutdown ok",
        "[-]rule/wd-pr-first failed: running, waiting for its first passing health check",
        "[-]rule/wd-pr-second failed: waiting for wd-pr-first",
        "readyz check failed",
    ]
    code, body = get(port, "/startupz")
    assert code == 503 and "[-]rule/wd-pr-first failed: not ready yet" in body
    code, body = get(port, "/readyz?verbose")
    verbose = json.loads(body)
    assert code == 503 and verbose["status"] == "failed"
    waiting = {"name": "rule/wd-pr-second", "ok": False, "reason": "waiting for wd-pr-first"}
    assert waiting in verbose["checks"]

    # Running: the check passes, the second starts; both ready.
    failing.unlink()
    wait_for(answers(port, "/readyz", 200), what="readyz 200")
    assert get(port, "/readyz") == (200, "ok\n")
    assert get(port, "/startupz") == (200, "ok\n")
    code, body = get(port, "/startupz?verbose")
    assert code == 200 and json.loads(body) == {"status": "ok", "checks": [
        {"name": "rule/wd-pr-first", "ok": True, "reason": ""},
        {"name": "rule/wd-pr-second", "ok": True, "reason": ""}]}

    # Unhealthy (reported, not restarted): not ready; alive and started all the same.
    failing.touch()
    wait_for(answers(port, "/readyz", 503, "[-]rule/wd-pr-first failed: unhealthy: exit 1"),
             what="readyz 503 for the unhealthy rule")
    assert get(port, "/readyz?rule=wd-pr-second") == (200, "ok\n")
    assert get(port, "/livez") == (200, "ok\n")
    assert get(port, "/startupz") == (200, "ok\n")  # started once: a kubelet stops asking then
    failing.unlink()
    wait_for(answers(port, "/readyz", 200), what="readyz 200 once healthy again")

    # Stopped by an operator: not ready, with the reason.
    stop = subprocess.run([sys.executable, "-m", "watchdog.ctl", "--socket",
                           str(wd.log_path.parent / "control.sock"), "stop", "wd-pr-second", "--wait", "30"],
                          capture_output=True, text=True, timeout=60)
    assert stop.returncode == 0, stop.stderr
    code, body = get(port, "/readyz")
    assert code == 503 and f"[-]rule/wd-pr-second failed: stopped (stopped by uid {os.getuid()})" in body
    assert get(port, "/readyz?rule=wd-pr-first") == (200, "ok\n")
    code, body = get(port, "/readyz?rule=wd-pr-first&rule=wd-pr-second")
    assert code == 503 and "[+]rule/wd-pr-first ok" in body
    assert get(port, "/readyz?rule=wd-pr-none")[0] == 404

    # Stopping every service: the first holds on until the grace; alive, not ready, meanwhile.
    wd.proc.send_signal(signal.SIGTERM)
    wd.wait_log("stopping every service")
    code, body = get(port, "/readyz")
    assert code == 503 and "[-]shutdown failed: stopping every service (SIGTERM)" in body
    assert get(port, "/livez") == (200, "ok\n")
    assert wd.proc.wait(15) == 4  # killed at the grace, as without probes
    with pytest.raises(ConnectionRefusedError):
        get(port, "/livez")


def test_read_only_malformed_and_oversized_requests(tmp_path: Path, watchdog: Start) -> None:
    exe = service(tmp_path, "wd-pr-bad")
    wd = watchdog(str(exe), "--probe-address", "127.0.0.1:0")
    port = probe_port(wd)
    wd.wait_log("wd-pr-bad: running")

    def status_of(data: bytes) -> tuple[int, bytes]:
        head, _, body = raw(port, data).partition(b"\r\n\r\n")
        return int(head.split(b" ", 2)[1]), body

    for method in ("POST", "PUT", "DELETE", "PATCH"):
        code, body = status_of(f"{method} /readyz HTTP/1.1\r\nContent-Length: 2\r\n\r\n{{}}".encode())
        assert code == 405 and b"nothing here can change anything" in body
    assert b"Allow: GET" in raw(port, b"POST /livez HTTP/1.1\r\n\r\n")
    assert status_of(b"NONSENSE\r\n\r\n")[0] == 400
    assert status_of(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n")[0] == 400  # a TLS hello
    assert status_of(b"GET /livez HTTP/1.1\r\nno colon here\r\n\r\n")[0] == 400
    assert status_of(b"GET /livez HTTP/1.1\r\nX-Big: " + b"a" * 9000)[0] == 431  # never a whole head
    assert status_of(b"GET /livez HTTP/1.1\r\nContent-Length: 9000\r\n\r\n" + b"a" * 9000)[0] == 413
    assert status_of(b"GET /livez HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")[0] == 411
    assert status_of(b"GET /metrics HTTP/1.1\r\n\r\n")[0] == 404
    assert status_of(b"GET /livez?rule=wd-pr-bad HTTP/1.1\r\n\r\n")[0] == 400
    began = time.monotonic()
    code, body = status_of(b"GET /livez HTTP/1.1\r\n")  # half a request, then nothing
    assert code == 408 and b"no whole request within 5s" in body
    assert time.monotonic() - began > 4  # the client had its 5 s: not cut short

    # 64 clients that never finish their request take every slot: the next gets 503 at once,
    # and a killed service is started again meanwhile.
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(64)]
    try:
        for client in held:
            client.sendall(b"GET /livez HTTP/1.1\r\n")
        wait_for(lambda: status_of(b"GET /livez HTTP/1.1\r\n\r\n")[0] == 503, what="503 busy")
        assert b"busy: 64 clients already" in raw(port, b"GET /livez HTTP/1.1\r\n\r\n")
        [old] = pids("wd-pr-bad")
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: pids("wd-pr-bad") - {old}, what="the service started again")
    finally:
        for client in held:
            client.close()
    wait_for(answers(port, "/livez", 200), what="livez once the clients are gone")
    assert wd.proc.poll() is None


def test_bad_and_busy_addresses(tmp_path: Path, watchdog: Start) -> None:
    for value, words in (("http", "the port must be a number"), ("::1:80", "IPv6 address in brackets"),
                         ("70000", "from 0 to 65535")):
        run = subprocess.run([sys.executable, "-m", "watchdog", "--probe-address", value, "sleep 1"],
                             capture_output=True, text=True, timeout=30)
        assert run.returncode == 2 and words in run.stderr and "Traceback" not in run.stderr
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        exe = service(tmp_path, "wd-pr-busy")
        wd = watchdog(str(exe), "--probe-address", f"127.0.0.1:{port}")
        wd.wait_log(f"probes: cannot listen on 127.0.0.1:{port}: Address already in use; serving no probes")
        wd.wait_log("wd-pr-busy: running")  # the services come first


def test_a_port_alone_is_every_address(tmp_path: Path, watchdog: Start) -> None:
    exe = service(tmp_path, "wd-pr-every")
    wd = watchdog(str(exe), "--probe-address", "0")
    found = wait_for(lambda: re.search(r"probes: serving .* on (\S+):(\d+)", wd.log()), what="the log line")
    port = int(found.group(2))
    loopbacks = ["127.0.0.1"] + (["::1"] if socket.has_dualstack_ipv6() and found.group(1) == "[::]" else [])
    for host in loopbacks:
        with socket.create_connection((host, port), timeout=10) as client:
            client.sendall(b"GET /livez HTTP/1.1\r\n\r\n")
            assert client.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n"), host


def test_a_flood_of_probes_while_a_service_is_killed_and_restarted(
    tmp_path: Path, watchdog: Start, capsys: pytest.CaptureFixture[str]
) -> None:
    exe = service(tmp_path, "wd-pr-flood")
    wd = watchdog(str(exe), "--probe-address", "127.0.0.1:0")
    port = probe_port(wd)
    wd.wait_log("wd-pr-flood: ready")
    [old] = pids("wd-pr-flood")
    for _ in range(100):  # warm: the first answers allocate what every later one reuses
        get(port, "/readyz?verbose")
    watchdog_proc = psutil.Process(wd.pid)
    rss_before = watchdog_proc.memory_info().rss

    total, threads = 1000, 8
    codes: list[int] = []
    lock = threading.Lock()
    under_way = threading.Event()

    def flood(count: int) -> None:
        for i in range(count):
            code, body = get(port, "/readyz" if i % 2 else "/livez")
            assert body in ("ok\n",) or "[-]rule/wd-pr-flood failed" in body, body
            with lock:
                codes.append(code)
                if len(codes) >= total // 10:
                    under_way.set()

    workers = [threading.Thread(target=flood, args=(total // threads,)) for _ in range(threads)]
    began = time.monotonic()
    for worker in workers:
        worker.start()
    under_way.wait(60)  # the kill and the restart fall within the flood
    killed = time.monotonic()
    os.kill(old, signal.SIGKILL)
    [new] = wait_for(lambda: pids("wd-pr-flood") - {old}, what="the service started again")
    latency = time.monotonic() - killed
    for worker in workers:
        worker.join(120)
    took = time.monotonic() - began
    rss_after = watchdog_proc.memory_info().rss

    assert len(codes) == total and set(codes) <= {200, 503}
    assert wd.proc.poll() is None and new != old
    grown = (rss_after - rss_before) / 2**20
    with capsys.disabled():
        print(f"\n    {total} probes in {took:.2f} s from {threads} clients "
              f"({codes.count(503)} answered 503); "
              f"SIGKILL to a new wd-pr-flood in the process table: {latency * 1000:.0f} ms; "
              f"watchdog RSS {rss_before / 2**20:.1f} -> {rss_after / 2**20:.1f} MiB")
    assert grown < 2, f"the watchdog grew by {grown:.1f} MiB over {total} probes"
    wait_for(answers(port, "/readyz", 200), what="ready again")


def test_the_help_lists_the_probe_address_under_control_and_status() -> None:
    shown = subprocess.run([sys.executable, "-m", "watchdog", "--help"], capture_output=True, text=True,
                           timeout=30).stdout
    section = shown.split("Control and status:", 1)[1].split("\n\n", 1)[0]
    assert "--probe-address [HOST:]PORT" in section
