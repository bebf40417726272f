"""Does the control socket cost the services anything? Restart latency with and without abusive clients.

    python tests/benchmarks/control_bench.py [--kills N]

One watchdog keeps one service (a copy of sleep) alive. The service is
SIGKILLed N times and each time the benchmark measures SIGKILL to a
replacement visible in /proc: first with the control socket idle (the peer,
measured in the same run), then while 60 clients hold half-sent requests,
one ``events`` client never reads, and a thread asks ``GET /v1/status``
without pause. It also times one ``GET /v1/status`` answer and prints one
table. Not part of the tests: a figure, not a verdict.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

POLL = 0.0005
STABLE_AFTER = 0.2  # the watchdog's --stable-after
NAME = "wd-bench-ctl"


def named() -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            comm = stat[stat.index(b"(") + 1:stat.rindex(b")")]
            state = stat[stat.rindex(b")") + 2:stat.rindex(b")") + 3]
            if comm == NAME.encode() and state != b"Z":
                found.add(int(entry))
    return found


def until(probe: Callable[[], set[int]], timeout: float = 15.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(POLL)
    raise SystemExit("timed out: the benchmark expected something that did not happen")


def settled(status: Path, pid: int) -> set[int]:
    """{pid} once the watchdog's status shows it running and it has outlived --stable-after
    (so every kill is answered at once, never backed off)."""
    try:
        rules = json.loads(status.read_text())["rules"]
        age = time.time() - os.stat(f"/proc/{pid}").st_ctime
    except (OSError, ValueError, KeyError):
        return set()
    running = any(rule["state"] == "running" and pid in rule["pids"] for rule in rules)
    return {pid} if running and age > STABLE_AFTER else set()


def latencies(kills: int, status: Path) -> list[float]:
    measured = []
    for _ in range(kills):
        [pid] = until(named)
        until(lambda pid=pid: settled(status, pid))
        began = time.perf_counter()
        os.kill(pid, signal.SIGKILL)
        until(lambda pid=pid: named() - {pid})
        measured.append((time.perf_counter() - began) * 1000)
    return measured


def ask(sock: str, request: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(10)
        client.connect(sock)
        client.sendall(request)
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    return answer


def half_sent(sock: str, count: int) -> list[socket.socket]:
    clients = []
    for _ in range(count):
        client = socket.socket(socket.AF_UNIX)
        client.connect(sock)
        client.sendall(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n")
        clients.append(client)
    return clients


@contextmanager
def abuse(sock: str) -> Iterator[dict[int, int]]:
    """60 half-sent requests (renewed before their deadline), an events client that never
    reads, and a loop asking for the status; yields the answers' status codes counted."""
    silent = socket.socket(socket.AF_UNIX)
    silent.connect(sock)
    silent.sendall(b"GET /v1/events HTTP/1.1\r\n\r\n")
    answered: dict[int, int] = {}
    done = threading.Event()

    def hammer() -> None:
        while not done.is_set():
            try:
                code = int(ask(sock, b"GET /v1/status HTTP/1.1\r\n\r\n").split(b" ", 2)[1])
            except (OSError, IndexError, ValueError):
                code = 0
            answered[code] = answered.get(code, 0) + 1

    def hang() -> None:
        hanging = half_sent(sock, 60)
        while not done.wait(5.0):  # the server drops them at 10 s: keep 60 hanging
            for client in hanging:
                client.close()
            hanging = half_sent(sock, 60)
        for client in hanging:
            client.close()

    threads = [threading.Thread(target=hammer), threading.Thread(target=hang)]
    for thread in threads:
        thread.start()
    try:
        yield answered
    finally:
        done.set()
        for thread in threads:
            thread.join()
        silent.close()


def row(label: str, values: list[float], peer: list[float]) -> str:
    mine, theirs = statistics.median(values), statistics.median(peer)
    p95 = sorted(values)[int(len(values) * 0.95) - 1]
    return f"{label:<48} | {mine:7.2f} ms | {p95:7.2f} ms | {theirs:7.2f} ms | {mine / theirs:5.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--kills", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / NAME
        shutil.copy("/bin/sleep", exe)
        sock = f"{tmp}/control.sock"
        status = Path(tmp) / "status.json"
        watchdog = subprocess.Popen(
            [sys.executable, "-m", "watchdog", f"{exe} 86400", "--interval", "60",
             "--stable-after", str(STABLE_AFTER), "--control-socket", sock,
             "--status-file", str(status), "-q"])
        try:
            until(named)
            until(lambda: {1} if os.path.exists(sock) else set())
            quiet = latencies(args.kills, status)
            timings = []
            for _ in range(50):
                began = time.perf_counter()
                ask(sock, b"GET /v1/status HTTP/1.1\r\n\r\n")
                timings.append((time.perf_counter() - began) * 1000)
            with abuse(sock) as answered:
                abused = latencies(args.kills, status)
            print(f"{'measure':<48} | {'median':>10} | {'p95':>10} | {'peer':>10} | ratio")
            print(row("restart latency, 61 stuck clients + status loop", abused, quiet))
            print(row("restart latency, control socket idle (peer)", quiet, quiet))
            print(f"{'GET /v1/status answered, one client':<48} | {statistics.median(timings):7.2f} ms |"
                  f" {sorted(timings)[46]:7.2f} ms |")
            print("answers to the status loop during the abused run, by HTTP status:",
                  dict(sorted(answered.items())))
        finally:
            watchdog.terminate()
            watchdog.wait(20)


if __name__ == "__main__":
    main()
