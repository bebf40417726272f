"""Benchmark health checks beside Monit: hang-to-HTTP-200 time, and the CPU cost of 50 TCP probes.

    python tests/benchmarks/health_bench.py [--trials 5] [--window 30] [--only hang|cpu]

Not part of the test suite (pytest collects nothing here). Needs root (a PID
and network namespace per supervisor, as a container has), Debian's apache2
and monit (``apt-get install apache2 monit``). Prints one table, each figure
beside Monit's measured in the same run; progress goes to stderr.

1. Hang to HTTP 200: apache2 started by its init script, checked with an
   HTTP GET every second, 1 s timeout, restarted after 2 failures in a row:

       watchdog '/etc/init.d/apache2 start' --health-http apache2=http://127.0.0.1/ \\
           --health-interval apache2=1 --health-timeout apache2=1 --health-retries apache2=2 \\
           --backoff-max 0
       # monit: set daemon 1; check process apache2 with pidfile /run/apache2/apache2.pid
       #   if failed host 127.0.0.1 port 80 protocol http request "/" with timeout 1 seconds
       #   for 2 cycles then restart

   Each trial SIGSTOPs every apache2 process and times until a new apache2
   (another main pid) answers 200; the trials' hangs are spread evenly over
   one check interval. Both supervisors stop it the same way: the
   stop signal, then SIGCONT, to every apache2 process (Monit's stop program
   does it with pkill, since the init script's stop waits 60 s for a stopped
   apache2 and fails), and both run as PID 1 of the namespace (Monit under a
   minimal reaper, as with tini, since it reaps only what it started). Monit
   does not test a service until its start program's timeout has passed
   since the start (30 s by default, 5 s here); each trial begins after it.
   Monit restarts at once every time; the watchdog counts a run that hangs
   soon after its start as a failure and backs off, so ``--backoff-max 0``.
2. CPU: 50 listening services, each checked by a TCP connect every second;
   the supervisor's own CPU time (user + system, every thread) over a window
   after all 50 are up and checked, as milliseconds per second. Both run at
   the same time, each with its own 50 services, so both see the same load
   on the machine, and each in a PID namespace of its own, as in a container
   (Monit reads every process in its /proc at each cycle).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

INIT_SCRIPT, APACHE_PIDFILE = "/etc/init.d/apache2", "/run/apache2/apache2.pid"
HTTP_SETTINGS = {"interval": 1, "timeout": 1, "retries": 2}
TCP_RULES = 50
# Monit holds off a service's tests for its start program's timeout after each start (30 s by
# default): the benchmark makes it 5 s and hangs apache2 only after it, so Monit is testing.
MONIT_START_TIMEOUT = 5
TIMEOUT = 120.0  # for anything that should happen: beyond it the run fails
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Run inside the namespace: stop every apache2, time until a new main apache2 answers 200.
HANG_AND_TIME = textwrap.dedent("""
    import os, signal, sys, time, urllib.request
    def named(name):
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if open(f"/proc/{pid}/comm").read().strip() == name:
                    found.append(int(pid))
            except OSError:
                pass
        return found
    def master():
        try:
            return int(open(sys.argv[1]).read().split()[0])
        except (OSError, ValueError, IndexError):
            return None
    old = master()
    began = time.monotonic()
    for pid in named("apache2"):
        os.kill(pid, signal.SIGSTOP)
    while time.monotonic() - began < float(sys.argv[2]):
        try:
            with urllib.request.urlopen("http://127.0.0.1/", timeout=0.2) as answer:
                if answer.status == 200 and master() not in (None, old):
                    print(time.monotonic() - began)
                    sys.exit(0)
        except Exception:
            pass
        time.sleep(0.01)
    sys.exit(1)
""")

# Monit's PID 1 in the namespace, as tini would be: Monit reaps only the programs it starts,
# and an orphaned apache2 left a zombie would look alive to its pidfile check.
REAPER = textwrap.dedent("""
    import os, subprocess, sys
    monit = subprocess.Popen(sys.argv[1:])
    while True:
        pid, _ = os.wait()
        if pid == monit.pid:
            sys.exit(0)
""")

# A service for the CPU run: daemonizes, writes its pidfile, accepts and closes connections.
LISTENER = textwrap.dedent("""
    import ctypes, os, socket, sys
    name, port, pidfile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    sock = socket.create_server(("127.0.0.1", port))
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    ctypes.CDLL(None).prctl(15, name.encode(), 0, 0, 0)
    open(pidfile, "w").write(f"{os.getpid()}\\n")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    while True:
        conn, _ = sock.accept()
        conn.close()
""")


def progress(message: str) -> None:
    print(f"health_bench: {message}", file=sys.stderr, flush=True)


def wait_for(predicate: Callable[[], object], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"health_bench: timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def cpu_seconds(pid: int) -> float:
    """User + system time of ``pid``, every thread included (not its children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def child_of(parent: int) -> int | None:
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1]) == parent:
                return int(pid)
        except (OSError, ValueError):
            continue
    return None


class Namespace:
    """``unshare --pid --fork --mount-proc [--net]``: a container's PID 1 (and its own port 80)."""

    def __init__(self, argv: list[str], log: Path, net: bool = True) -> None:
        self.log = log
        self._out = open(log, "w")
        script = 'ip link set lo up 2>/dev/null; exec "$@"'
        self.unshare = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount-proc", *(["--net"] if net else []),
             "sh", "-c", script, "sh", *argv],
            stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True)
        self.pid1 = 0
        wait_for(self._find_pid1, "the namespace's PID 1", 20)

    def _find_pid1(self) -> bool:
        self.pid1 = child_of(self.unshare.pid) or 0
        return bool(self.pid1)

    def run(self, *argv: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["nsenter", "-t", str(self.pid1), "-p", "-m", "-n", *argv],
                              capture_output=True, text=True, timeout=timeout)

    def http_ok(self) -> bool:
        code = ("import urllib.request as u\ntry:\n print(u.urlopen('http://127.0.0.1/', timeout=1).status)"
                "\nexcept Exception:\n print(0)")
        return self.run(sys.executable, "-c", code).stdout.strip() == "200"

    def close(self) -> None:
        if self.unshare.poll() is None:
            os.kill(self.pid1, signal.SIGKILL)  # PID 1 dying takes the namespace with it
            self.unshare.wait(20)
        self._out.close()


@contextmanager
def namespace(argv: list[str], log: Path, net: bool = True) -> Iterator[Namespace]:
    box = Namespace(argv, log, net)
    try:
        yield box
    finally:
        box.close()


def monitrc(work: Path, checks: str) -> Path:
    path = work / "monitrc"
    path.write_text(textwrap.dedent(f"""\
        set daemon 1
        set logfile {work}/monit.log
        set pidfile {work}/monit.pid
        set idfile {work}/monit.id
        set statefile {work}/monit.state
        """) + checks)
    path.chmod(0o600)  # monit refuses a control file others can read
    return path


def hang_trials(box: Namespace, trials: int, healthy: Callable[[], bool]) -> list[float]:
    times = []
    for trial in range(trials):
        wait_for(lambda: box.http_ok() and healthy(), "apache2 answering and checked healthy")
        # Where in its check cycle a hang lands decides up to one interval: spread the
        # trials evenly over one, so both supervisors get the same mix of luck.
        time.sleep((trial + 0.5) / trials * HTTP_SETTINGS["interval"])
        took = box.run(sys.executable, "-c", HANG_AND_TIME, APACHE_PIDFILE, str(TIMEOUT),
                       timeout=TIMEOUT + 10)
        if took.returncode != 0:
            raise SystemExit(f"health_bench: apache2 did not answer again within {TIMEOUT:.0f} s; "
                             f"see {box.log}")
        times.append(float(took.stdout))
        progress(f"  trial {trial + 1}: {times[-1]:.2f} s")
    return times


def hang_watchdog(work: Path, trials: int) -> list[float]:
    s = HTTP_SETTINGS
    argv = [sys.executable, "-m", "watchdog", f"{INIT_SCRIPT} start", "--status-file",
            str(work / "status.json"), "--backoff-max", "0", "--health-http", "apache2=http://127.0.0.1/",
            "--health-interval", f"apache2={s['interval']}", "--health-timeout",
            f"apache2={s['timeout']}", "--health-retries", f"apache2={s['retries']}"]
    log = work / "watchdog-hang.log"
    with namespace(argv, log) as box:
        def healthy() -> bool:  # a healthy line after the last restart
            text = log.read_text()
            return text.rfind("apache2: healthy (") > text.rfind("apache2: restarting")
        return hang_trials(box, trials, healthy)


def hang_monit(work: Path, trials: int) -> list[float]:
    s = HTTP_SETTINGS
    stop = "/bin/sh -c 'pkill -TERM -x apache2; pkill -CONT -x apache2'"
    rc = monitrc(work, textwrap.dedent(f"""\
        check process apache2 with pidfile {APACHE_PIDFILE}
          start program = "{INIT_SCRIPT} start" with timeout {MONIT_START_TIMEOUT} seconds
          stop program = "{stop}" with timeout 30 seconds
          if failed host 127.0.0.1 port 80 protocol http request "/" with timeout {s['timeout']} seconds
             for {s['retries']} cycles then restart
        """))
    with namespace([sys.executable, "-c", REAPER, "monit", "-I", "-c", str(rc)],
                   work / "monit-hang.log") as box:
        def healthy() -> bool:  # monit tests a service again only once its start timeout is over
            time.sleep(MONIT_START_TIMEOUT + 2 * s["interval"])
            return True
        return hang_trials(box, trials, healthy)


def free_ports(count: int, avoid: Collection[int] = ()) -> list[int]:
    for base in range(21000, 60000, 1000):
        ports = list(range(base, base + count))
        if set(avoid) & set(ports):
            continue
        try:
            for port in ports:
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return ports
    raise SystemExit("health_bench: no block of free ports")


def listeners(work: Path, ports: list[int]) -> list[tuple[str, Path, Path, int]]:
    """(name, executable, pidfile, port) for each listening service."""
    source = work / "listener.py"
    source.write_text(LISTENER)
    made = []
    for i, port in enumerate(ports):
        name = f"hb-{work.name[:6]}-{i:02d}"
        exe, pidfile = work / name, work / f"{name}.pid"
        exe.write_text(f"#!/bin/sh\nexec {sys.executable} {source} {name} {port} {pidfile}\n")
        exe.chmod(0o755)
        made.append((name, exe, pidfile, port))
    return made


Subject = tuple[int, Callable[[], bool]]  # the supervisor's pid, and "all 50 up and checked"


@contextmanager
def watchdog_subject(work: Path, ports: list[int], probes: bool = True) -> Iterator[Subject]:
    services = listeners(work, ports)
    config = work / "watchdog.toml"
    tables = []
    for name, exe, _, port in services:
        checks = (f'health-tcp = "{port}"\nhealth-interval = 1\nhealth-timeout = 1\n' if probes else "")
        tables.append(f'[rules.{name}]\ncommand = "{exe}"\n{checks}')
    config.write_text("\n".join(tables))
    log = work / "watchdog.log"
    argv = [sys.executable, "-m", "watchdog", "--config", str(config),
            "--status-file", str(work / "status.json")]

    def ready() -> bool:
        text = log.read_text()
        return all(f"{name}: {'healthy' if probes else 'running'}" in text for name, *_ in services)

    with namespace(argv, log, net=False) as box:
        yield box.pid1, ready


@contextmanager
def monit_subject(work: Path, ports: list[int]) -> Iterator[Subject]:
    services = listeners(work, ports)
    checks = "".join(textwrap.dedent(f"""\
        check process {name} with pidfile {pidfile}
          start program = "{exe}"
          stop program = "/bin/sh -c 'kill $(cat {pidfile})'"
          if failed host 127.0.0.1 port {port} type tcp with timeout 1 seconds then restart
        """) for name, exe, pidfile, port in services)
    rc = monitrc(work, checks)
    argv = [sys.executable, "-c", REAPER, "monit", "-I", "-c", str(rc)]
    with namespace(argv, work / "monit.out", net=False) as box:  # its services die with it
        wait_for(lambda: child_of(box.pid1), "monit under its reaper", 20)
        monit = child_of(box.pid1)
        assert monit is not None
        yield monit, lambda: all(pidfile.exists() for _, _, pidfile, _ in services)


def cpu_together(subjects: list[Subject], window: float) -> list[float]:
    """Milliseconds of CPU per second of each subject, measured over the same window."""
    for _, ready in subjects:
        wait_for(ready, f"all {TCP_RULES} services up and checked")
    time.sleep(3)  # past the first rounds, into the steady state
    before, began = [cpu_seconds(pid) for pid, _ in subjects], time.monotonic()
    time.sleep(window)
    took = time.monotonic() - began
    return [1000 * (cpu_seconds(pid) - was) / took for (pid, _), was in zip(subjects, before, strict=True)]


def cpu_runs(work: Path, window: float) -> tuple[float, float, float]:
    """Both supervisors at once (the same load on the machine), then the watchdog without probes."""
    for name in ("cpu-wd", "cpu-monit", "cpu-none"):
        (work / name).mkdir()
    ours_ports = free_ports(TCP_RULES)
    peer_ports = free_ports(TCP_RULES, set(ours_ports))
    with watchdog_subject(work / "cpu-wd", ours_ports) as ours, \
            monit_subject(work / "cpu-monit", peer_ports) as peer:
        ours_cpu, peer_cpu = cpu_together([ours, peer], window)
    progress(f"CPU of the same {TCP_RULES} rules without probes, watchdog")
    with watchdog_subject(work / "cpu-none", free_ports(TCP_RULES), probes=False) as none:
        [none_cpu] = cpu_together([none], window)
    return ours_cpu, peer_cpu, none_cpu


def row(measure: str, ours: str, peer: str, ratio: str) -> str:
    return f"{measure:<52} | {ours:>9} | {peer:>9} | {ratio:>6}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=7, help="hangs per supervisor (median)")
    parser.add_argument("--window", type=float, default=30.0, help="seconds of CPU measured")
    parser.add_argument("--only", choices=("hang", "cpu"), help="run one part of the benchmark")
    args = parser.parse_args()
    problems = [what for what, ok in (("root", os.geteuid() == 0), ("monit", shutil.which("monit")),
                                      ("apache2", os.path.exists(INIT_SCRIPT)),
                                      ("unshare", shutil.which("unshare"))) if not ok]
    if problems:
        raise SystemExit(f"health_bench: needs {', '.join(problems)} (apt-get install apache2 monit)")
    subprocess.run(["service", "apache2", "stop"], capture_output=True)
    monit_version = subprocess.run(["monit", "-V"], capture_output=True, text=True).stdout.split("\n")[0]
    with tempfile.TemporaryDirectory(prefix="health-bench-") as tmp:
        work = Path(tmp)
        results = {}
        for name, measure in (("watchdog", hang_watchdog), ("monit", hang_monit)):
            if args.only == "cpu":
                break
            progress(f"hang to HTTP 200, {name}, {args.trials} trials")
            sub = work / f"hang-{name}"
            sub.mkdir()
            results[f"hang {name}"] = statistics.median(measure(sub, args.trials))
        if args.only != "hang":
            progress(f"CPU of {TCP_RULES} TCP probes every 1 s, watchdog and monit side by side, "
                     f"{args.window:.0f} s")
            results["cpu watchdog"], results["cpu monit"], results["cpu none"] = cpu_runs(work, args.window)

    print(f"({os.cpu_count()} cores, Linux {platform.release()}, Python {platform.python_version()}, "
          f"{monit_version.strip()})")
    print(row("measure", "watchdog", "Monit", "ratio"))
    print(row("-" * 52, "-" * 9, "-" * 9, "-" * 6).replace(" | ", "-|-"))
    if "hang watchdog" in results:
        ours, peer = results["hang watchdog"], results["hang monit"]
        print(row(f"hang to HTTP 200 again, apache2, median of {args.trials}", f"{ours:.2f} s",
                  f"{peer:.2f} s", f"{ours / peer:.2f}x"))
    if "cpu watchdog" in results:
        ours, peer = results["cpu watchdog"], results["cpu monit"]
        print(row(f"CPU, {TCP_RULES} rules, TCP probe every 1 s", f"{ours:.1f} ms/s", f"{peer:.1f} ms/s",
                  f"{ours / peer:.2f}x"))
        none = results["cpu none"]
        print(row(f"CPU, the same {TCP_RULES} rules without probes", f"{none:.2f} ms/s", "-", "info"))


if __name__ == "__main__":
    main()
