"""Benchmark services' output through the watchdog beside supervisord and ``cat``.

    python tests/benchmarks/logs_bench.py [--mib 1024] [--kills 20]

Not part of the test suite. A service writes ``--mib`` MiB of 100-byte lines
as fast as it can; it is relayed by ``cat`` (the limit), by the watchdog (to
a file and to /dev/null, with and without ``--timestamps``, and to its own
``--log-file``), and by supervisord (``stdout_logfile``). Printed side by side
from one run: throughput (MB/s), the relay's CPU seconds per GB, its RSS
growth, and the median restart latency of another rule killed ``--kills``
times during a flood against the same while idle.

Each relay runs ``--rounds`` times, round by round, and the medians are
shown. A run ends when the relay has written every byte (``/proc/PID/io`` wchar,
so /dev/null counts too); its CPU is read from ``/proc`` at that moment,
less what it had used when the service began writing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

LINE = 100
MB = 1000 ** 2


def writer_source(total: int, start_file: Path, forever: bool) -> str:
    return textwrap.dedent(f"""\
        #!{sys.executable}
        import os, sys, time
        line = b'x' * {LINE - 1} + b'\\n'
        block = line * 10000
        open({str(start_file)!r}, 'w').close()
        while not os.path.exists({str(start_file)!r} + '.go'):
            time.sleep(0.001)
        left = {total}
        while left > 0 or {forever}:
            view = memoryview(block)[:min(len(block), left) if not {forever} else len(block)]
            while view:
                view = view[os.write(1, view):]
            left -= len(block)
        time.sleep(100000)
        """)


@dataclass
class Result:
    name: str
    mb_s: float
    cpu_per_gb: float
    rss_growth_mib: float


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def wchar(pid: int) -> int:
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("wchar:"):
                return int(line.split()[1])
    return 0


def wait_for(predicate: Callable[[], object], timeout: float, what: str, every: float = 0.005) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(every)


def measure(name: str, relay_pid: int, start_file: Path, total: int, copies: int = 1) -> Result:
    """From the service's first byte until the relay has written ``copies`` times ``total`` bytes more."""
    wait_for(start_file.exists, 60, f"{name}: the service to start")
    time.sleep(0.5)  # the relay's own start-up is over
    baseline_written = wchar(relay_pid)
    cpu_before = cpu_seconds(relay_pid)
    rss_before = psutil.Process(relay_pid).memory_info().rss
    began = time.time()
    Path(f"{start_file}.go").touch()  # the service writes from now on
    rss_most = rss_before
    deadline = time.monotonic() + 600
    while wchar(relay_pid) < baseline_written + total * copies:
        rss_most = max(rss_most, psutil.Process(relay_pid).memory_info().rss)
        if time.monotonic() > deadline:
            raise SystemExit(f"{name}: not done in 600 s")
        time.sleep(0.002)
    ended = time.time()
    cpu = cpu_seconds(relay_pid) - cpu_before
    return Result(name, total / MB / (ended - began), cpu / (total / 1e9), (rss_most - rss_before) / 2 ** 20)


@contextmanager
def started(argv: list[str], stdout: object, cwd: Path, env: dict[str, str] | None = None
            ) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.DEVNULL, cwd=cwd,  # type: ignore[arg-type]
                            env={**os.environ, **(env or {})}, start_new_session=True)
    try:
        yield proc
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        for child in psutil.process_iter(["cmdline"]):
            if str(cwd) in " ".join(child.info["cmdline"] or []):
                try:
                    child.kill()
                except psutil.Error:
                    pass


def writer(work: Path, tag: str, total: int, forever: bool = False) -> tuple[Path, Path]:
    start_file = work / f"{tag}.started"
    start_file.unlink(missing_ok=True)
    Path(f"{start_file}.go").unlink(missing_ok=True)
    path = work / f"lgw-{tag}"
    path.write_text(writer_source(total, start_file, forever))
    path.chmod(0o755)
    return path, start_file


def run_cat(work: Path, total: int, dest: str) -> Result:
    path, start_file = writer(work, "cat", total)
    with open(dest, "wb") as out:
        producer = subprocess.Popen([str(path)], stdout=subprocess.PIPE, start_new_session=True)
        assert producer.stdout is not None
        cat = subprocess.Popen(["cat"], stdin=producer.stdout, stdout=out)
        producer.stdout.close()
        try:
            return measure(f"cat > {dest}", cat.pid, start_file, total)
        finally:
            producer.kill()
            producer.wait()
            cat.wait()


def run_watchdog(work: Path, total: int, dest: str, *flags: str, label: str = "", copies: int = 1) -> Result:
    path, start_file = writer(work, "wd", total)
    status = work / "status.json"
    with open(dest, "wb") as out, started(
        [sys.executable, "-m", "watchdog", str(path), "--no-control-socket", "-q", *flags], out, work,
        {"WATCHDOG_STATUS_FILE": str(status)},
    ) as proc:
        return measure(label or f"watchdog > {dest} {' '.join(flags)}".strip(), proc.pid, start_file, total,
                       copies)


def run_supervisord(work: Path, total: int) -> Result:
    path, start_file = writer(work, "sv", total)
    log = work / "supervisord-service.log"
    conf = work / "supervisord.conf"
    conf.write_text(textwrap.dedent(f"""\
        [supervisord]
        nodaemon=true
        logfile={work}/supervisord.log
        pidfile={work}/supervisord.pid
        [unix_http_server]
        file={work}/supervisor.sock
        [program:writer]
        command={path}
        stdout_logfile={log}
        stdout_logfile_maxbytes=0
        stdout_capture_maxbytes=0
        autorestart=false
        """))
    with started([sys.executable, "-m", "supervisor.supervisord", "-c", str(conf)], subprocess.DEVNULL,
                 work) as proc:
        return measure(f"supervisord > {log.name}", proc.pid, start_file, total)


def restart_latencies(work: Path, kills: int, flood: bool, flags: tuple[str, ...] = ()) -> list[float]:
    """Seconds from SIGKILL of a rule's process to its next copy running, ``kills`` times."""
    victim = work / "lgvictim"
    shutil.copy("/bin/sleep", victim)
    commands = [f"{victim} 100000"]
    start_file = None
    if flood:
        path, start_file = writer(work, "flood", 0, forever=True)
        commands.append(str(path))
    argv = [sys.executable, "-m", "watchdog", *commands, "--no-control-socket", "-q",
            "--backoff-max", "0", *flags]
    with started(argv,
                 subprocess.DEVNULL, work, {"WATCHDOG_STATUS_FILE": str(work / "status-lat.json")}) as proc:
        if start_file is not None:
            wait_for(start_file.exists, 60, "the flood")
            Path(f"{start_file}.go").touch()
        latencies = []
        watchdog = psutil.Process(proc.pid)

        def named() -> list[int]:  # the watchdog's children: a scan of every process is slower
            found = []
            for child in watchdog.children():
                try:
                    if child.name() == "lgvictim":
                        found.append(child.pid)
                except psutil.Error:
                    pass
            return found

        for _ in range(kills):
            wait_for(named, 30, "the victim")
            [pid] = named()
            began = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda gone=pid: [p for p in named() if p != gone], 30, "a new copy", every=0.0005)
            latencies.append(time.monotonic() - began)
            time.sleep(0.05)
        return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=1024, help="MiB each service writes (default 1024)")
    parser.add_argument("--kills", type=int, default=20, help="restarts timed, flood and idle (default 20)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each relay, medians shown (default 3)")
    args = parser.parse_args()
    total = args.mib * 2 ** 20 // LINE * LINE  # whole lines: a partial one waits for its newline
    work = Path(tempfile.mkdtemp(prefix="wd-logs-bench-"))
    results: list[Result] = []
    try:
        out_file = str(work / "relayed.out")
        steps: list[tuple[str, Callable[[], Result]]] = [
            ("cat to a file", lambda: run_cat(work, total, out_file)),
            ("cat to /dev/null", lambda: run_cat(work, total, "/dev/null")),
            ("supervisord to a file", lambda: run_supervisord(work, total)),
            ("watchdog to a file", lambda: run_watchdog(work, total, out_file)),
            ("watchdog to /dev/null", lambda: run_watchdog(work, total, "/dev/null")),
            ("watchdog --timestamps to a file", lambda: run_watchdog(work, total, out_file, "--timestamps")),
            ("watchdog --timestamps to /dev/null",
             lambda: run_watchdog(work, total, "/dev/null", "--timestamps")),
            ("watchdog --log-file (relayed to /dev/null too)",
             lambda: run_watchdog(work, total, "/dev/null", "--log-file", f"lgw-wd={work}/svc.log",
                                  "--log-max-bytes", "lgw-wd=0",
                                  label="watchdog --log-file (+ /dev/null)", copies=2)),
        ]
        runs: list[list[Result]] = [[] for _ in steps]
        for round_ in range(args.rounds):  # round by round: a busy minute on the machine hits every relay
            for index, (what, step) in enumerate(steps):
                print(f"... {what} ({round_ + 1}/{args.rounds})", file=sys.stderr, flush=True)
                runs[index].append(step())
                for leftover in work.glob("*.out"):
                    leftover.unlink()
                (work / "svc.log").unlink(missing_ok=True)
        for measured in runs:
            results.append(Result(measured[0].name, statistics.median(r.mb_s for r in measured),
                                  statistics.median(r.cpu_per_gb for r in measured),
                                  max(r.rss_growth_mib for r in measured)))
        print("... restart latency, idle and during a flood", file=sys.stderr, flush=True)
        idle = restart_latencies(work, args.kills, flood=False)
        flooded = restart_latencies(work, args.kills, flood=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    by_name = {r.name: r for r in results}
    cat_file = results[0].mb_s
    supervisord = results[2].mb_s
    print(f"\n{args.mib} MiB of {LINE}-byte lines, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; "
          f"medians of {args.rounds} runs (RSS: the largest)\n")
    print(f"{'relay':48} {'MB/s':>8} {'CPU s/GB':>9} {'RSS +MiB':>9}")
    for r in by_name.values():
        print(f"{r.name:48} {r.mb_s:8.0f} {r.cpu_per_gb:9.2f} {r.rss_growth_mib:9.1f}")
    wd_file = results[3]
    print(f"\nwatchdog to a file: {wd_file.mb_s / supervisord:.2f}x supervisord (target >= 1), "
          f"{wd_file.mb_s / cat_file:.2f}x cat (target >= 0.5); RSS growth "
          f"{max(r.rss_growth_mib for r in results[3:]):.1f} MiB at most (target < 16)")
    idle_ms, flood_ms = statistics.median(idle) * 1000, statistics.median(flooded) * 1000
    print(f"restart latency, median of {args.kills}: idle {idle_ms:.1f} ms, during a flood {flood_ms:.1f} ms "
          f"({flood_ms / idle_ms:.2f}x, target <= 2)")


if __name__ == "__main__":
    main()
