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


def latencies(kills: int) -> list[float]:
    measured = []
    for _ in range(kills):
        [pid] = until(named)
        time.sleep(0.3)  # let the watchdog see it running before it dies
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


@contextmanager
def abuse(sock: str) -> Iterator[list[int]]:
    """60 half-sent requests, an events client that never reads, a status loop; yields its count."""
    hanging = []
    for _ in range(60):
        client = socket.socket(socket.AF_UNIX)
        client.connect(sock)
        client.sendall(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n")
        hanging.append(client)
    silent = socket.socket(socket.AF_UNIX)
    silent.connect(sock)
    silent.sendall(b"GET /v1/events HTTP/1.1\r\n\r\n")
    answered = [0]
    done = threading.Event()

    def hammer() -> None:
        while not done.is_set():
            try:
                ask(sock, b"GET /v1/status HTTP/1.1\r\n\r\n")
                answered[0] += 1
            except OSError:
                pass

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        yield answered
    finally:
        done.set()
        thread.join()
        for client in [*hanging, silent]:
            client.close()


def row(label: str, values: list[float], peer: list[float]) -> str:
    mine, theirs = statistics.median(values), statistics.median(peer)
    p95 = sorted(values)[int(len(values) * 0.95) - 1]
    return f"{label:<44} | {mine:7.2f} ms | {p95:7.2f} ms | {theirs:7.2f} ms | {mine / theirs:5.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--kills", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / NAME
        shutil.copy("/bin/sleep", exe)
        sock = f"{tmp}/control.sock"
        watchdog = subprocess.Popen(
            [sys.executable, "-m", "watchdog", f"{exe} 86400", "--interval", "60", "--stable-after", "0.2",
             "--control-socket", sock, "--status-file", f"{tmp}/status.json", "-q"])
        try:
            until(named)
            until(lambda: {1} if os.path.exists(sock) else set())
            quiet = latencies(args.kills)
            timings = []
            for _ in range(50):
                began = time.perf_counter()
                ask(sock, b"GET /v1/status HTTP/1.1\r\n\r\n")
                timings.append((time.perf_counter() - began) * 1000)
            with abuse(sock) as answered:
                abused = latencies(args.kills)
            print(f"{'measure':<44} | {'median':>10} | {'p95':>10} | {'peer':>10} | ratio")
            print(row("restart latency, 61 stuck clients + status loop", abused, quiet))
            print(row("restart latency, control socket idle (peer)", quiet, quiet))
            print(f"{'GET /v1/status answered, one client':<44} | {statistics.median(timings):7.2f} ms |"
                  f" {sorted(timings)[46]:7.2f} ms |")
            print(f"status requests answered during the abused run: {answered[0]}")
        finally:
            watchdog.terminate()
            watchdog.wait(20)


if __name__ == "__main__":
    main()
