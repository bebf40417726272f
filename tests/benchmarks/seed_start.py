"""The seed's start: exec of the supervisor as PID 1 until sshd and apache2 both serve.

    python tests/benchmarks/seed_start.py [--trials 15]

Not part of the test suite; needs root, Debian's apache2 and openssh-server,
util-linux's unshare and the project's ``bench`` extra (supervisord). Each
trial runs one supervisor as PID 1 of a fresh PID, mount and network namespace
(``unshare --pid --fork --mount-proc --net``, loopback up), as a container
runtime would, with a private tmpfs on ``/run`` (holding an empty ``/run/sshd``)
and on ``/var/log/apache2``: no pidfile, socket or status file of an earlier
trial, or of anything else on the machine, is seen. From inside that network
namespace the benchmark then tries every ``--poll-ms`` (2 ms) until sshd
answers on port 22 with its banner (``SSH-2.0-``) and apache2 answers an HTTP
request on port 80 (``HTTP/1.``). The time is from the exec of the supervisor
to the later of the two answers. Then PID 1 gets SIGTERM, and the next trial
starts once every process of the namespace is gone.

The "log:" columns are what the supervisor's own log says, to the
millisecond of the wall clock, after the exec: its first line (the watchdog's
"running as PID 1", supervisord's "supervisord started") and each service's
start. Once a round the watchdog's interpreter is also timed alone
(``python -c pass``).

The supervisors, one trial of each per round, in an order that turns each round:

- ``floor``: a shell script as PID 1 that runs the seed's two commands itself
  (``/usr/sbin/sshd; /etc/init.d/apache2 start``) and waits: what the services
  need, so the watchdog's own share is the difference;
- ``watchdog seed``: ``watchdog /usr/sbin/sshd "/etc/init.d/apache2 start"``,
  the seed's container (the installed console script, as its ENTRYPOINT);
- ``supervisord``: two programs, ``/usr/sbin/sshd -D`` and apache2 in the
  foreground (a script that sources ``/etc/apache2/envvars`` and execs
  ``/usr/sbin/apache2 -DFOREGROUND``, as the Docker images of httpd do);
  supervisord cannot keep a daemonizing init script;
- ``watchdog fg``: the watchdog given those same two foreground commands and
  supervisord's model, ``--match child`` (a service is the process it started);
- ``floor fg``: a shell script as PID 1 starting those two in the background.

One round before the timed ones is not counted (it fills the page cache and
writes bytecode). Progress goes to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import math
import os
import platform
import re
import selectors
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType

SSHD, APACHE2, INIT_SCRIPT = "/usr/sbin/sshd", "/usr/sbin/apache2", "/etc/init.d/apache2"
ENVVARS = "/etc/apache2/envvars"
CLONE_NEWNET = 0x40000000
STOP_TIMEOUT = 20.0  # seconds from SIGTERM to the namespace gone; beyond it, SIGKILL
LIBC = ctypes.CDLL(None, use_errno=True)
STARTED = time.perf_counter()


class BenchError(Exception):
    """A trial did not go as it must."""


def progress(message: str) -> None:
    print(f"seed_start [{time.perf_counter() - STARTED:6.1f} s]: {message}", file=sys.stderr, flush=True)


def problem() -> str | None:
    """Why the benchmark cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (a PID and network namespace per trial, sshd and apache2 on ports 22 and 80)"
    missing = [path for path in (SSHD, APACHE2, INIT_SCRIPT, ENVVARS) if not os.path.exists(path)]
    if missing:
        return f"needs Debian's apache2 and openssh-server ({', '.join(missing)} absent)"
    for tool in ("unshare", "ip", "mount"):
        if shutil.which(tool) is None:
            return f"needs {tool} (util-linux, iproute2)"
    if find_beside("supervisord") is None:
        return "supervisord not found: install the bench extra (pip install '.[bench]')"
    return None


def find_beside(program: str) -> str | None:
    """``program`` next to this interpreter (the same venv), else on PATH."""
    beside = Path(sys.executable).parent / program
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(program)


# --- the supervisors ------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    label: str
    argv: list[str]


def foreground_script(space: Path) -> Path:
    """apache2 in the foreground with Debian's environment: what ``apache2ctl`` would set."""
    script = space / "apache2-foreground"
    script.write_text(
        "#!/bin/sh\n"
        f". {ENVVARS}\n"
        'mkdir -p "$APACHE_RUN_DIR" "$APACHE_LOCK_DIR" "$APACHE_LOG_DIR"\n'
        f"exec {APACHE2} -DFOREGROUND\n"
    )
    script.chmod(0o755)
    return script


def supervisord_config(space: Path, apache2_fg: Path) -> Path:
    config = space / "supervisord.conf"
    config.write_text("\n".join([
        # loglevel=info: its "spawned:" lines time its starts; nodaemon copies them to stdout.
        "[supervisord]", "nodaemon=true", f"logfile={space}/supervisord.log",
        f"pidfile={space}/supervisord.pid", f"childlogdir={space}", "loglevel=info", "",
        "[program:sshd]", f"command={SSHD} -D", "autorestart=true", "",
        "[program:apache2]", f"command={apache2_fg}", "autorestart=true", "",
    ]))
    return config


def floor_script(space: Path, name: str, body: str) -> Path:
    """A shell as PID 1: runs ``body``, then waits until SIGTERM (PID 1 needs a handler for it)."""
    script = space / name
    script.write_text(f"#!/bin/sh\ntrap 'exit 0' TERM\n{body}\nsleep 86400 &\nwait\n")
    script.chmod(0o755)
    return script


def cases(space: Path, watchdog: str) -> list[Case]:
    supervisord = find_beside("supervisord")
    assert supervisord is not None
    apache2_fg = foreground_script(space)
    return [
        Case("floor", [str(floor_script(space, "floor.sh", f"{SSHD}\n{INIT_SCRIPT} start"))]),
        Case("watchdog seed", [watchdog, SSHD, f"{INIT_SCRIPT} start"]),
        Case("supervisord", [supervisord, "-c", str(supervisord_config(space, apache2_fg))]),
        Case("watchdog fg", [watchdog, "--match", "child", f"{SSHD} -D", "--rule", f"apache2={apache2_fg}"]),
        Case("floor fg", [str(floor_script(space, "floor-fg.sh", f"{SSHD} -D &\n{apache2_fg} &"))]),
    ]


# --- one trial --------------------------------------------------------------------

# Runs inside the new namespaces, before the clock starts: loopback up, a private /run
# and apache2 log directory, then "ready" on stdout, then the exec once told to.
PREPARE = """\
set -e
ip link set lo up
mount -t tmpfs -o mode=0755 seed-run /run
mkdir -p /run/sshd /run/lock
mount -t tmpfs -o mode=0750 seed-log /var/log/apache2
echo ready
read go
exec "$@" </dev/null >>"$LOG" 2>&1
"""


@dataclass
class Probe:
    """Tries a port until it gives the expected first bytes."""

    port: int
    request: bytes
    expect: bytes
    sock: socket.socket | None = None
    received: bytes = b""
    next_try: float = 0.0
    answered: float | None = None
    attempts: int = 0

    def drop(self, selector: selectors.BaseSelector, retry_at: float) -> None:
        if self.sock is not None:
            selector.unregister(self.sock)
            self.sock.close()
        self.sock, self.received, self.next_try = None, b"", retry_at

    def try_connect(self, selector: selectors.BaseSelector, now: float, poll: float) -> None:
        self.attempts += 1
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        result = sock.connect_ex(("127.0.0.1", self.port))
        if result not in (0, errno.EINPROGRESS):
            sock.close()
            self.next_try = now + poll
            return
        self.sock = sock
        selector.register(sock, selectors.EVENT_WRITE if result else selectors.EVENT_READ, self)
        if result == 0:
            self._connected(selector)

    def _connected(self, selector: selectors.BaseSelector) -> None:
        assert self.sock is not None
        if self.request:
            self.sock.send(self.request)
        selector.modify(self.sock, selectors.EVENT_READ, self)

    def ready(self, selector: selectors.BaseSelector, events: int, now: float, poll: float) -> None:
        assert self.sock is not None
        if events & selectors.EVENT_WRITE:
            if self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                self.drop(selector, now + poll)
            else:
                self._connected(selector)
            return
        try:
            data = self.sock.recv(256)
        except OSError:
            data = b""
        if not data:  # refused late, reset, closed: a service still starting
            self.drop(selector, now + poll)
            return
        self.received += data
        if len(self.received) >= len(self.expect):
            if self.received.startswith(self.expect):
                self.answered = now
                self.drop(selector, math.inf)
            else:
                raise BenchError(f"port {self.port} answered {self.received[:40]!r}")


def setns(fd: int) -> None:
    if LIBC.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns(CLONE_NEWNET)")


@contextmanager
def inside_network(pid: int) -> Iterator[None]:
    """This thread in the network namespace of ``pid``; back in its own afterwards."""
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    other = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    try:
        setns(other)
        try:
            yield
        finally:
            setns(own)
    finally:
        os.close(own)
        os.close(other)


def wait_serving(began: float, poll: float, timeout: float) -> tuple[float, float]:
    """(sshd's banner, apache2's answer), seconds after ``began``; sockets made in this netns."""
    probes = [Probe(22, b"", b"SSH-2.0-"),
              Probe(80, b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n", b"HTTP/1.")]
    deadline = began + timeout
    with selectors.DefaultSelector() as selector:
        try:
            while any(probe.answered is None for probe in probes):
                now = time.perf_counter()
                if now > deadline:
                    silent = [f"port {p.port}" for p in probes if p.answered is None]
                    raise BenchError(f"not serving within {timeout:g} s: {', '.join(silent)}")
                for probe in probes:
                    if probe.answered is None and probe.sock is None and probe.next_try <= now:
                        probe.try_connect(selector, now, poll)
                waits = [p.next_try for p in probes if p.answered is None and p.sock is None]
                timeout_now = max(0.0, min(waits) - time.perf_counter()) if waits else poll * 10
                for key, events in selector.select(timeout_now):
                    key.data.ready(selector, events, time.perf_counter(), poll)
        finally:
            for probe in probes:
                probe.drop(selector, math.inf)
    ssh, http = (probe.answered for probe in probes)
    assert ssh is not None and http is not None
    return ssh - began, http - began


@dataclass
class Trial:
    ssh: float
    http: float
    stop: float
    marks: dict[str, float]  # what its own log says, seconds after the exec (see MARKS)

    @property
    def both(self) -> float:
        return max(self.ssh, self.http)


# Lines of the supervisors' own logs that time their phases: (mark, pattern, time format).
# Their clocks are the wall clock to the millisecond; a line missing (another log format)
# leaves its mark out.
WATCHDOG_TIME = r"(?P<at>\d{4}-\d\d-\d\dT[\d:.]+[+-]\d\d:\d\d) watchdog: "
SUPERVISORD_TIME = r"(?P<at>\d{4}-\d\d-\d\d [\d:]+,\d{3}) \w+ "
MARKS = [
    ("first line", re.compile(WATCHDOG_TIME + r"running as PID 1")),
    ("first line", re.compile(SUPERVISORD_TIME + r"supervisord started")),
    ("sshd started", re.compile(WATCHDOG_TIME + r"sshd: started ")),
    ("sshd started", re.compile(SUPERVISORD_TIME + r"spawned: 'sshd'")),
    ("apache2 started", re.compile(WATCHDOG_TIME + r"apache2: started ")),
    ("apache2 started", re.compile(SUPERVISORD_TIME + r"spawned: 'apache2'")),
]
MARK_NAMES = ["first line", "sshd started", "apache2 started"]


def read_marks(log: Path, began_wall: float) -> dict[str, float]:
    marks: dict[str, float] = {}
    for line in log.read_text(errors="replace").splitlines():
        for mark, pattern in MARKS:
            found = pattern.match(line)
            if found and mark not in marks:
                at = found["at"]
                when = datetime.fromisoformat(at) if "T" in at else \
                    datetime.strptime(at, "%Y-%m-%d %H:%M:%S,%f")  # supervisord: local time
                marks[mark] = when.timestamp() - began_wall
    return marks


def namespace_members(ns: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") == ns:
                    found.append(int(entry))
            except OSError:
                pass
    return found


def child_of(pid: int) -> int:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        children = f.read().split()
    if len(children) != 1:
        raise BenchError(f"unshare (pid {pid}) has children {children}, expected one")
    return int(children[0])


def trial(case: Case, space: Path, log: Path, poll: float, timeout: float) -> Trial:
    env = {**os.environ, "LOG": str(log)}
    with log.open("a") as errors:
        unshare = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount-proc", "--net", "sh", "-c", PREPARE, "prepare",
             *case.argv],
            cwd=space, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors,
            start_new_session=True,
        )
    assert unshare.stdin is not None and unshare.stdout is not None
    pid1 = None
    try:
        if unshare.stdout.readline() != b"ready\n":
            raise BenchError(f"{case.label}: the namespace could not be prepared (see {log})")
        pid1 = child_of(unshare.pid)
        ns = os.readlink(f"/proc/{pid1}/ns/pid")
        with inside_network(pid1):
            began_wall, began = time.time(), time.perf_counter()
            unshare.stdin.write(b"go\n")
            unshare.stdin.flush()
            ssh, http = wait_serving(began, poll, timeout)
        if unshare.poll() is not None:
            raise BenchError(f"{case.label}: PID 1 ended while its services served (see {log})")
        stopping = time.perf_counter()
        os.kill(pid1, signal.SIGTERM)
        try:
            unshare.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise BenchError(f"{case.label}: still running {STOP_TIMEOUT:g} s after SIGTERM") from None
        while namespace_members(ns):  # PID 1's end kills the rest: wait until it has
            time.sleep(poll)
        stop = time.perf_counter() - stopping
        return Trial(ssh, http, stop, read_marks(log, began_wall))
    finally:
        if unshare.poll() is None:
            if pid1 is not None:
                os.kill(pid1, signal.SIGKILL)  # takes the whole namespace with it
            unshare.kill()
            unshare.wait(10)
        unshare.stdin.close()
        unshare.stdout.close()


# --- the table --------------------------------------------------------------------


def p90(values: Sequence[float]) -> float:
    """The nearest-rank 90th percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def table(results: dict[str, list[Trial]]) -> str:
    header = ("supervisor as PID 1", "both serving, median", "p90", "sshd banner", "apache2 HTTP",
              "stop", *(f"log: {mark}" for mark in MARK_NAMES))
    rows = [header]
    for label, trials in results.items():
        both = [t.both for t in trials]
        marks = [[t.marks[mark] for t in trials if mark in t.marks] for mark in MARK_NAMES]
        rows.append((label, ms(statistics.median(both)), ms(p90(both)),
                     ms(statistics.median(t.ssh for t in trials)),
                     ms(statistics.median(t.http for t in trials)),
                     ms(statistics.median(t.stop for t in trials)),
                     *(ms(statistics.median(found)) if found else "-" for found in marks)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return " | ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                          for i, (cell, w) in enumerate(zip(row, widths, strict=True)))

    out = [line(rows[0]), "-+-".join("-" * w for w in widths), *(line(row) for row in rows[1:])]
    return "\n".join(out)


def paired(results: dict[str, list[Trial]], label: str, peer: str) -> str:
    """The watchdog against a peer: medians, and the median of the per-round differences."""
    mine = [t.both for t in results[label]]
    theirs = [t.both for t in results[peer]]
    differences = [a - b for a, b in zip(mine, theirs, strict=True)]
    return (f"{label} - {peer}: {ms(statistics.median(mine) - statistics.median(theirs))} "
            f"between medians, {ms(statistics.median(differences))} median of per-round differences, "
            f"ratio of medians {statistics.median(mine) / statistics.median(theirs):.2f}")


def versions() -> str:
    supervisord = find_beside("supervisord")
    assert supervisord is not None
    sup = subprocess.run([supervisord, "--version"], capture_output=True, text=True).stdout.strip()
    ssh = subprocess.run([SSHD, "-V"], capture_output=True, text=True).stderr.strip().split(",")[0]
    apache = subprocess.run([APACHE2, "-v"], capture_output=True, text=True,
                            env={**os.environ, "APACHE_RUN_DIR": "/tmp", "APACHE_LOCK_DIR": "/tmp",
                                 "APACHE_LOG_DIR": "/tmp"}).stdout.split("\n")[0]
    return f"{apache.removeprefix('Server version: ')}, {ssh}, supervisord {sup or '?'}"


def interpreter_of(program: str) -> str | None:
    """The interpreter a console script's ``#!`` line names, or None."""
    try:
        with open(program, "rb") as f:
            first = f.readline(512)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode(errors="replace").split()
    return words[0] if words and "python" in Path(words[0]).name else None


def bare_interpreter(python: str) -> float:
    """``python -c pass``, exec to exit: what any supervisor written in Python pays first."""
    began = time.perf_counter()
    subprocess.run([python, "-c", "pass"], check=True)
    return time.perf_counter() - began


def interrupt(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C or SIGTERM: unwind through the trial's clean-up, which a second signal must not cut."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=15, help="timed trials per supervisor (15)")
    parser.add_argument("--poll-ms", type=float, default=2.0, help="how often a closed port is tried (2)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds a trial may take to serve")
    parser.add_argument("--only", action="append", metavar="LABEL",
                        help="run only this supervisor (repeatable): floor, 'watchdog seed', ...")
    parser.add_argument("--watchdog", metavar="PROGRAM",
                        help="the watchdog program to run (default: the console script beside this "
                             "interpreter); e.g. that of a venv with a regular, not editable, install")
    args = parser.parse_args(argv)
    if args.trials < 1:
        parser.error("--trials must be at least 1")
    why = problem()
    watchdog = args.watchdog or find_beside("watchdog")
    if why is None and (watchdog is None or not os.access(watchdog, os.X_OK)):
        why = f"no watchdog program {'at ' + args.watchdog if args.watchdog else 'beside ' + sys.executable}"
    if why is not None:
        print(f"seed_start: {why}", file=sys.stderr)
        return 2
    assert watchdog is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, interrupt)
    # An installed watchdog has its bytecode compiled: measure that, not the compiler.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.makedirs("/run/sshd", exist_ok=True)
    if not any(Path("/etc/ssh").glob("ssh_host_*_key")):
        subprocess.run(["ssh-keygen", "-A"], check=True, capture_output=True)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="seed-start-") as tmp:
        space = Path(tmp)
        everything = cases(space, watchdog)
        labels = [case.label for case in everything]
        for label in args.only or ():
            if label not in labels:
                parser.error(f"--only {label!r}: not one of {', '.join(labels)}")
        chosen = [case for case in everything if not args.only or case.label in args.only]
        results: dict[str, list[Trial]] = {case.label: [] for case in chosen}
        python = interpreter_of(watchdog)
        bare: list[float] = []
        log = space / "none.log"
        poll = args.poll_ms / 1000
        try:
            for round_no in range(args.trials + 1):  # round 0: warm-up, not counted
                turn = round_no % len(chosen)
                for case in chosen[turn:] + chosen[:turn]:
                    log = space / f"round{round_no}-{case.label.replace(' ', '-')}.log"
                    log.write_text(f"--- round {round_no}: {case.label}: {shlex.join(case.argv)}\n")
                    result = trial(case, space, log, poll, args.timeout)
                    if round_no:
                        results[case.label].append(result)
                    progress(f"round {round_no}{' (warm-up)' if not round_no else ''}: "
                             f"{case.label}: both serving {ms(result.both)} "
                             f"(sshd {ms(result.ssh)}, apache2 {ms(result.http)}), stop {ms(result.stop)}")
                if python is not None and round_no:
                    bare.append(bare_interpreter(python))
        except BenchError as exc:
            print(f"seed_start: {exc}; the end of its log:", file=sys.stderr)
            print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("seed_start: interrupted; the namespace of the trial was ended", file=sys.stderr)
            return 130
    lines = [
        "command: " + shlex.join([sys.executable, *sys.argv]),
        f"machine: {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, load average at start {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f}; {versions()}",
        f"watchdog: {watchdog}",
        f"{args.trials} trials each (after one warm-up round), round-robin; exec -> sshd's banner "
        f"on 22 and apache2's HTTP answer on 80, ports tried every {args.poll_ms:g} ms",
        "",
        table(results),
        "",
        *([] if not bare else [
            f"the watchdog's interpreter alone ({python} -c pass, exec to exit, once a round): "
            f"median {ms(statistics.median(bare))}"]),
    ]
    for label, peer in (("watchdog seed", "floor"), ("watchdog fg", "floor fg"),
                        ("watchdog fg", "supervisord"), ("watchdog seed", "supervisord")):
        if label in results and peer in results:
            lines.append(paired(results, label, peer))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
