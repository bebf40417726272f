"""What a Kubernetes probe costs a pod: the exec probe against the HTTP probe, both every 10 s.

    python tests/benchmarks/probe_bench.py [--exec-probes N] [--http-probes N]

One watchdog keeps one service (a copy of sleep) alive and serves its probe
endpoints (``--probe-address 127.0.0.1:0``). In the same run the benchmark
then probes it both ways, as a kubelet would:

- exec: ``watchdog --status`` (the console script, as the image runs it), N
  times one after another; the CPU is what those processes used (user and
  system, from ``RUSAGE_CHILDREN``);
- HTTP: ``GET /livez`` and ``GET /readyz?verbose`` in turn, N times; the CPU
  is what the watchdog used meanwhile, less what it uses idle over as long.

Each is scaled to one probe every 10 s for an hour (360 probes): CPU seconds
per pod per hour. Not counted, for either: the kubelet's side, and for exec
the container runtime's (an exec through the CRI starts a process in the
pod's namespaces, which costs more than a TCP connection). Not part of the
tests: a figure, not a verdict.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

NAME = "wd-bench-probe"
PER_HOUR = 3600 / 10  # one probe every 10 s
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_of(pid: int) -> float:
    """User and system CPU seconds of process ``pid`` (every thread)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def get(port: int, target: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(f"GET {target} HTTP/1.1\r\nHost: pod\r\nUser-Agent: kube-probe/1.30\r\n"
                       "Accept: */*\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    return answer


def wait_until(predicate: Callable[[], object], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"probe_bench: timed out waiting for {what}")
        time.sleep(0.05)


def row(measure: str, exec_probe: str, http_probe: str, ratio: str) -> str:
    return f"{measure:<44} | {exec_probe:>11} | {http_probe:>11} | {ratio:>7}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exec-probes", type=int, default=40)
    parser.add_argument("--http-probes", type=int, default=4000)
    args = parser.parse_args()
    console_script = Path(sys.executable).parent / "watchdog"
    if not console_script.exists():
        raise SystemExit(f"probe_bench: no {console_script}: install the project in this venv first")

    work = Path(tempfile.mkdtemp(prefix="probe-bench-"))
    exe = work / NAME
    shutil.copy("/bin/sleep", exe)
    status_file = work / "status.json"
    log = work / "watchdog.log"
    with open(log, "w") as out:
        wd = subprocess.Popen([str(console_script), "--probe-address", "127.0.0.1:0", "--status-file",
                               str(status_file), "--control-socket", str(work / "control.sock"),
                               f"{exe} 100000"], stdout=out, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        wait_until(lambda: re.search(r"probes: serving .* on 127\.0\.0\.1:\d+", log.read_text()),
                   "the probe port")
        found = re.search(r"probes: serving .* on 127\.0\.0\.1:(\d+)", log.read_text())
        assert found is not None
        port = int(found.group(1))
        wait_until(lambda: f"{NAME}: ready" in log.read_text(), "the service to be ready")
        status = [str(console_script), "--status", "--status-file", str(status_file)]

        # exec: a Python interpreter that reads the status file, every time.
        before, began = children_cpu(), time.monotonic()
        for _ in range(args.exec_probes):
            run = subprocess.run(status, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if run.returncode != 0:
                raise SystemExit(f"probe_bench: watchdog --status exited {run.returncode}")
        exec_cpu = (children_cpu() - before) / args.exec_probes
        exec_wall = (time.monotonic() - began) / args.exec_probes

        # HTTP: the watchdog's own CPU while it answers, less its idle CPU over as long.
        before, client_before, began = cpu_of(wd.pid), time.process_time(), time.monotonic()
        for i in range(args.http_probes):
            answer = get(port, "/livez" if i % 2 else "/readyz?verbose")
            if not answer.startswith(b"HTTP/1.1 200 "):
                raise SystemExit(f"probe_bench: {answer[:80]!r}")
        http_span = time.monotonic() - began
        busy = cpu_of(wd.pid) - before
        client = (time.process_time() - client_before) / args.http_probes
        idle_before = cpu_of(wd.pid)
        time.sleep(http_span)
        idle = cpu_of(wd.pid) - idle_before
        http_cpu = max(busy - idle, 0.0) / args.http_probes
        http_wall = http_span / args.http_probes
        rss = re.search(rb"VmRSS:\s+(\d+)", Path(f"/proc/{wd.pid}/status").read_bytes())
        rss_kib = int(rss.group(1)) if rss else 0
    finally:
        wd.send_signal(signal.SIGTERM)
        wd.wait(30)
        shutil.rmtree(work, ignore_errors=True)

    print(f"({os.cpu_count()} cores, Linux {platform.release()}, Python {platform.python_version()}; "
          f"{args.exec_probes} exec probes, {args.http_probes} HTTP probes, one after another)")
    print(row("measure", "exec", "HTTP", "ratio"))
    print(row("-" * 44, "-" * 11, "-" * 11, "-" * 7).replace(" | ", "-|-"))
    ratio = f"{exec_cpu / http_cpu:.0f}x" if http_cpu else "-"
    print(row("CPU per probe (the pod's side)", f"{exec_cpu * 1000:.1f} ms", f"{http_cpu * 1000:.3f} ms",
              ratio))
    print(row("CPU per pod per hour, one probe every 10 s", f"{exec_cpu * PER_HOUR:.1f} s",
              f"{http_cpu * PER_HOUR:.3f} s", ratio))
    print(row("wall time per probe", f"{exec_wall * 1000:.0f} ms", f"{http_wall * 1000:.2f} ms",
              f"{exec_wall / http_wall:.0f}x"))
    print(row("HTTP client CPU per probe (Python here)", "-", f"{client * 1000:.3f} ms", "info"))
    print(row("watchdog RSS after the probes", "-", f"{rss_kib / 1024:.1f} MiB", "info"))


if __name__ == "__main__":
    main()
