"""How quickly the start-up order reacts, each figure beside its peer from the same run.

    python tests/benchmarks/ordering.py [--runs N]

Not part of the test suite. Figures, each the median (and worst) of N runs:

* a rule ``--after`` a notify service: from the watchdog logging the
  dependency ready to it logging the dependent started; peer: from the
  watchdog's first log line to a rule with no dependency started.
* a notify service killed with SIGKILL: from the kill to its new process in
  the table, with 20,000 foreign datagrams sent at its socket meanwhile; peer:
  the same with no datagrams.

Everything runs from a temporary directory and is stopped in ``finally``.
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
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import psutil

HERE = Path(__file__).resolve().parent
NOTIFIER = HERE.parent / "programs" / "notifier.py"
TIMEOUT = 20.0
T = TypeVar("T")


def wait_for(predicate: Callable[[], T], what: str) -> T:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.001)
    raise SystemExit(f"ordering bench: timed out waiting for {what}")


def stamp(log: str, text: str) -> float | None:
    for line in log.splitlines():
        if text in line:
            return datetime.fromisoformat(line.split()[0]).timestamp()
    return None


class Run:
    def __init__(self, tmp: Path, args: list[str]) -> None:
        self.log_path = tmp / f"wd-{time.monotonic_ns()}.log"
        self.log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "watchdog", "--status-file", str(self.log_path.with_suffix(".json")),
             *args], cwd=tmp, stdout=self.log_file, stderr=subprocess.STDOUT, start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()


def notifier(tmp: Path, name: str, *args: str) -> str:
    path = tmp / name
    path.write_text(f"#!/bin/sh\nexec {sys.executable} {NOTIFIER} --name {name} {' '.join(args)}\n")
    path.chmod(0o755)
    return str(path)


def named(name: str) -> list[int]:
    return [p.pid for p in psutil.process_iter(["name", "status"])
            if p.info["name"] == name and p.info["status"] != psutil.STATUS_ZOMBIE]


def after_latency(tmp: Path, with_dependency: bool) -> float:
    db = notifier(tmp, "bo-db", "--ready-after", "0.3")
    web = tmp / "bo-web"
    args = ["--rule", f"db={db}", "--notify", "db", "--rule", f"web={web} 1000"]
    if with_dependency:
        args += ["--after", "web=db"]
    run = Run(tmp, args)
    try:
        log = wait_for(lambda: "web: started" in (text := run.log()) and "db: ready" in text and text,
                       "web started and db ready")
        began = stamp(log, "db: ready") if with_dependency else stamp(log, "watchdog:")
        started = stamp(log, "web: started")
        assert began is not None and started is not None
        return started - began
    finally:
        run.close()


def flood(path: str, count: int, stop: threading.Event, flooding: threading.Event) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        for sent in range(count):
            if stop.is_set():
                return
            try:
                sock.sendto(b"READY=1\nSTATUS=not yours", path)
            except (BlockingIOError, OSError):
                time.sleep(0.0005)
            if sent == 100:
                flooding.set()


def restart_latency(tmp: Path, datagrams: int) -> float:
    svc = notifier(tmp, "bo-svc")
    run = Run(tmp, [svc, "--notify", "bo-svc", "--stable-after", "0.1"])
    stop = threading.Event()
    flooder = None
    try:
        [first] = wait_for(lambda: named("bo-svc"), "the service")
        log = wait_for(lambda: "NOTIFY_SOCKET=" in (text := run.log()) and text, "its socket")
        path = next(w.partition("=")[2] for w in log.split() if w.startswith("NOTIFY_SOCKET="))
        if datagrams:
            flooding = threading.Event()
            flooder = threading.Thread(target=flood, args=(path, datagrams, stop, flooding))
            flooder.start()
            flooding.wait(10)  # the kill lands in the flood, not before it
        killed = time.monotonic()
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: [p for p in named("bo-svc") if p != first], "a new service")
        return time.monotonic() - killed
    finally:
        stop.set()
        if flooder is not None:
            flooder.join()
        run.close()


def summary(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:7.1f} ms, worst {max(values) * 1000:7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ordering-bench-"))
    try:
        shutil.copy("/bin/sleep", tmp / "bo-web")
        rows = []
        for label, work in (
            ("dependent started after 'ready'", lambda: after_latency(tmp, True)),
            ("  peer: no dependency, from the first log line", lambda: after_latency(tmp, False)),
            ("notify service restarted, 20,000 foreign datagrams", lambda: restart_latency(tmp, 20_000)),
            ("  peer: no datagrams", lambda: restart_latency(tmp, 0)),
        ):
            values = [work() for _ in range(args.runs)]
            rows.append(f"{label:52} {summary(values)}")
            print(rows[-1], file=sys.stderr)
        print(f"ordering benchmark, {args.runs} runs each, {os.cpu_count()} cores")
        print("\n".join(rows))
    finally:
        for proc in psutil.process_iter(["cmdline"]):
            if str(tmp) in " ".join(proc.info["cmdline"] or []):
                try:
                    proc.kill()
                except psutil.Error:
                    pass
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
