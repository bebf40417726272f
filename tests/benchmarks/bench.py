"""Benchmark the watchdog beside supervisord: restart latency, check cost, idle CPU, memory, start-up.

    python tests/benchmarks/bench.py [--quick] [--profile]

Not part of the test suite (pytest collects nothing here). It needs the
project installed with its ``bench`` extra (supervisord) and prints one table:
each figure is a median of repeated runs, beside its peer measured in the same
run, with the target it should meet. Progress goes to stderr. ``--quick``
makes fewer repetitions (about a minute instead of about three);
``--profile`` adds the top cProfile entries of the 50-rule check.

Every process started here (watchdogs, supervisord, their services, the
2,000 background processes) is stopped in ``finally`` blocks, on Ctrl-C and
SIGTERM too; programs run from a temporary directory, and whatever is still
running from it at the end is killed.
"""

from __future__ import annotations

import argparse
import cProfile
import ctypes
import functools
import io
import math
import os
import platform
import pstats
import re
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

try:
    import psutil
    from watchdog.plugins import basename as basename_plugin
    from watchdog.plugins import pidfile as pidfile_plugin
    from watchdog.plugins import regex as regex_plugin

    from watchdog.config import Config
    from watchdog.manager import make_plugin_manager
    from watchdog.matchers import Matchers
    from watchdog.pidwindow import read_cursor
    from watchdog.rules import Rule, make_rule
    from watchdog.snapshot import CommandLineCache, Snapshot, read_proc_file, take_snapshot
    from watchdog.snapshot import read_stat as read_stat_record
    from watchdog.tracker import Tracker
except ImportError as missing:
    print(f"bench: {missing}: run it with the interpreter of an environment holding the "
          "project and its bench extra (pip install '.[bench]')", file=sys.stderr)
    raise SystemExit(2) from None

HERE = Path(__file__).resolve().parent
POLL_SECONDS = 0.0005  # how often the benchmark looks at /proc while it waits
TIMEOUT_SECONDS = 15.0  # for anything expected to happen: beyond it the run fails
STABLE_AFTER = 0.5  # the watchdog's --stable-after during the latency runs
KILL_SPACING = 0.6  # seconds from a restart to the next kill of the same service
LATENCY_INTERVAL = 60  # the watchdog's --interval during the latency runs
SERVICE_COUNT = 10  # programs in the idle, memory and start-up runs
LOAD_COUNT = 2000  # extra processes during the large-table latency runs and the check-cost run
LOAD_SETTLE = 2.0  # seconds from starting them to starting the supervisors that see them
RULE_KINDS = {"basename": 17, "regex": 17, "pidfile": 16}  # the 50 rules of the check
FOREVER = "86400"  # the argument of every sleep: longer than any run
T = TypeVar("T")
LIBC = ctypes.CDLL(None, use_errno=True)


class BenchError(Exception):
    """Something the benchmark waited for did not happen."""


@dataclass(frozen=True)
class Mode:
    """How many repetitions a run makes."""

    name: str
    kills: int  # per restart-latency case
    check_rounds: int
    idle_window: float  # seconds
    startup_runs: int  # per supervisor
    probe_runs: int  # per exec-probe command, and per start-up phase


# The idle window spans two of the watchdog's default 60 s intervals, so it holds its
# backstop scans; a shorter one would catch none and report zero.
FULL = Mode("full", kills=50, check_rounds=15, idle_window=125.0, startup_runs=10, probe_runs=20)
QUICK = Mode("quick", kills=10, check_rounds=5, idle_window=65.0, startup_runs=5, probe_runs=10)
SECTIONS = ("latency", "check", "idle", "startup", "probe")


BENCH_STARTED = time.perf_counter()


def progress(message: str) -> None:
    elapsed = time.perf_counter() - BENCH_STARTED
    print(f"bench [{elapsed:5.1f} s]: {message}", file=sys.stderr, flush=True)


# --- the process table, read directly -------------------------------------------


@dataclass(frozen=True, slots=True)
class Stat:
    """What /proc/PID/stat says of one process."""

    pid: int
    name: str
    state: str


def read_stat(pid: int | str) -> Stat | None:
    """The process's stat line, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    close_paren = raw.rfind(b")")
    fields = raw[close_paren + 2 :].split()
    name = raw[raw.find(b"(") + 1 : close_paren].decode("utf-8", "replace")
    return Stat(int(pid), name, fields[0].decode())


def is_alive(stat: Stat) -> bool:
    """Neither a zombie nor dead."""
    return stat.state not in "ZX"


def proc_entries() -> set[str]:
    """Every entry of /proc now: the baseline that later new processes are told from."""
    return set(os.listdir("/proc"))


def new_processes(baseline: set[str]) -> Iterator[Stat]:
    """Live processes whose pid is not in ``baseline``."""
    for entry in os.listdir("/proc"):
        if entry not in baseline and entry.isdigit():
            stat = read_stat(entry)
            if stat is not None and is_alive(stat):
                yield stat


def live_named(names: set[str]) -> list[Stat]:
    """Every live process whose name is in ``names``."""
    return [stat for stat in new_processes(set()) if stat.name in names]


def read_pidfile(path: Path) -> int | None:
    try:
        text = path.read_text()
    except OSError:
        return None
    return int(text) if text.strip().isdigit() else None


def poll_until(probe: Callable[[], T | None], what: str,
               timeout: float = TIMEOUT_SECONDS) -> tuple[T, float]:
    """Call ``probe`` every POLL_SECONDS until it returns a value: (value, perf_counter then)."""
    deadline = time.perf_counter() + timeout
    while True:
        value = probe()
        now = time.perf_counter()
        if value is not None:
            return value, now
        if now > deadline:
            raise BenchError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(POLL_SECONDS)


def wait_for_names(names: set[str], baseline: set[str]) -> tuple[dict[str, int], float]:
    """Wait until a new live process bears each name: ({name: pid}, when the last appeared)."""
    found: dict[str, int] = {}

    def probe() -> dict[str, int] | None:
        for stat in new_processes(baseline):
            if stat.name in names:
                found.setdefault(stat.name, stat.pid)
        return found if len(found) == len(names) else None

    return poll_until(probe, f"processes named {sorted(names - found.keys())}")


def cpu_seconds(pid: int) -> float:
    """CPU time used by the process so far, to the nanosecond where the kernel allows.

    The process CPU clock (clock_getcpuclockid) counts scheduler nanoseconds;
    utime+stime (psutil) advance in 10 ms ticks, too coarse for an idle minute.
    """
    clock_id = ctypes.c_int()
    if LIBC.clock_getcpuclockid(pid, ctypes.byref(clock_id)) == 0:
        try:
            return time.clock_gettime(clock_id.value)
        except OSError:
            pass
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


# --- the workspace: programs, supervisors, clean-up ---------------------------------


@dataclass
class Workspace:
    """A temporary directory holding every program the benchmark runs."""

    path: Path
    tag: str = field(default_factory=lambda: str(os.getpid() % 100000))
    notes: list[str] = field(default_factory=list)

    def name(self, suffix: str) -> str:
        """A process name unique to this run (at most 15 characters, the kernel's limit)."""
        name = f"w{self.tag}-{suffix}"
        assert len(name) <= 15, name
        return name

    def copy_program(self, source: Path | str, name: str) -> Path:
        """A copy of ``source`` called ``name``: a process name nothing else uses."""
        path = self.path / name
        shutil.copy(source, path)
        path.chmod(0o755)
        return path

    def sleep_copy(self, suffix: str) -> Path:
        return self.copy_program(shutil.which("sleep") or "/bin/sleep", self.name(suffix))

    def kill_leftovers(self) -> None:
        """SIGKILL every process still running a program from the workspace."""
        root = str(self.path)
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                exe = os.readlink(f"/proc/{entry}/exe")
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().decode("utf-8", "replace")
            except OSError:
                continue
            if exe.startswith(root) or root in cmdline:
                try:
                    os.kill(int(entry), signal.SIGKILL)
                except OSError:
                    pass


def trusted_parent() -> str | None:
    """A directory for pidfiles the watchdog trusts: only root or we may write it or any
    directory above it (/tmp is not one: anyone may put a file there first)."""
    for candidate in (os.environ.get("XDG_RUNTIME_DIR"), "/run" if os.geteuid() == 0 else None,
                      os.path.expanduser("~/.cache")):
        if not candidate:
            continue
        try:
            os.makedirs(candidate, exist_ok=True)
            path = os.path.realpath(candidate)
            chain = [path]
            while chain[-1] != "/":
                chain.append(os.path.dirname(chain[-1]))
            if all((info := os.stat(part)).st_uid in (0, os.geteuid()) and not info.st_mode & 0o022
                   for part in chain):
                return path
        except OSError:
            continue
    return None


@contextmanager
def workspace() -> Iterator[Workspace]:
    path = Path(tempfile.mkdtemp(prefix="watchdog-bench-", dir=trusted_parent()))
    space = Workspace(path)
    try:
        yield space
    finally:
        space.kill_leftovers()
        shutil.rmtree(path, ignore_errors=True)


class Supervisor:
    """The watchdog or supervisord, running as a real subprocess with its output in a file."""

    def __init__(self, label: str, argv: Sequence[str], space: Workspace) -> None:
        self.label = label
        self.log_path = space.path / f"{label}-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "w")
        self.started_at = time.perf_counter()
        self.popen = subprocess.Popen(
            list(argv), cwd=space.path, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def check_running(self) -> None:
        if self.popen.poll() is not None:
            log = self.log_text()[-2000:]
            raise BenchError(f"{self.label} exited with status {self.popen.returncode}:\n{log}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (it stops its services), SIGKILL after ``timeout``."""
        try:
            if self.popen.poll() is None:
                self.popen.terminate()
                try:
                    self.popen.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.popen.kill()
                    self.popen.wait()
        finally:
            self._log.close()

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def watchdog_argv(*args: str, python: str = sys.executable) -> list[str]:
    return [python, "-m", "watchdog", *args]


def regular_install(space: Workspace) -> str:
    """The interpreter of a venv holding the project as ``pip install .`` puts it there.

    This environment's install is usually editable: setuptools' import hook then runs at
    every interpreter start and is asked about every import, about 15 ms of a start that
    an installed watchdog (a container's) does not pay. The dependencies are this
    environment's, reached through a path file; pip fetches only the build back-end.
    """
    venv = space.path / "regular-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    built = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
                            site, str(HERE.parent.parent)], capture_output=True, text=True)
    if built.returncode:
        raise BenchError(f"pip could not install the project: {built.stderr.strip()[-500:]}")
    dependencies = sysconfig.get_paths()["purelib"]
    Path(site, "bench-dependencies.pth").write_text(dependencies + "\n")
    return str(python)


def supervisord_config(space: Workspace, label: str, programs: dict[str, str],
                       control: bool = False) -> Path:
    """A supervisord.conf keeping each ``{name: command}`` alive as a foreground child.

    With ``control``, the RPC socket that ``supervisorctl`` talks to as well.
    """
    lines = [
        "[supervisord]", "nodaemon=true", f"logfile={space.path}/{label}.supervisord.log",
        f"pidfile={space.path}/{label}.supervisord.pid", f"childlogdir={space.path}",
        "loglevel=warn", "",
    ]
    if control:
        lines += [
            "[unix_http_server]", f"file={space.path}/{label}.sock", "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
            "[supervisorctl]", f"serverurl=unix://{space.path}/{label}.sock", "",
        ]
    for name, command in programs.items():
        lines += [
            f"[program:{name}]", f"command={command}", "autorestart=true", "startsecs=0",
            "stdout_logfile=NONE", "stderr_logfile=NONE", "stopwaitsecs=2", "",
        ]
    # One group: supervisord stops a group per turn of its 1 s loop, 10 groups take 10 s.
    lines += ["[group:services]", f"programs={','.join(programs)}", ""]
    path = space.path / f"{label}.conf"
    path.write_text("\n".join(lines))
    return path


def start_supervisord(supervisord: str, space: Workspace, label: str,
                      programs: dict[str, str], control: bool = False) -> Supervisor:
    config = supervisord_config(space, label, programs, control)
    return Supervisor(f"supervisord-{label}", [supervisord, "-n", "-c", str(config)], space)


def find_supervisord() -> str | None:
    """supervisord next to this interpreter (the same venv), else on PATH."""
    beside = Path(sys.executable).parent / "supervisord"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("supervisord")


DAEMON_C = HERE.parent / "stress" / "daemon.c"  # shared with the stress scripts


def build_daemonizer(space: Workspace) -> Path:
    """Compile tests/stress/daemon.c into the workspace; without a compiler, use daemonize.py.

    Both take ``booting [PIDFILE]``.
    """
    binary = space.path / "daemonize"
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is not None:
        result = subprocess.run(
            [compiler, "-O2", "-o", str(binary), str(DAEMON_C)], capture_output=True, text=True,
        )
        if result.returncode == 0:
            space.notes.append(
                f"The daemon is tests/stress/daemon.c, compiled with {Path(compiler).name}."
            )
            return binary
        progress(f"compiling daemon.c failed:\n{result.stderr}")
    script = (HERE / "daemonize.py").read_text().split("\n", 1)[1]
    binary.write_text(f"#!{sys.executable}\n{script}")
    binary.chmod(0o755)
    space.notes.append(
        "NO C COMPILER: the daemon of (b) and (c) is daemonize.py, so their latency "
        "includes ~20-30 ms of Python start-up."
    )
    return binary


# --- 1. restart latency ------------------------------------------------------------


def children_of(pid: int) -> list[int] | None:
    """The process's children, from every thread's list; None where the kernel keeps none."""
    try:
        children = []
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children", "rb") as f:
                children += [int(word) for word in f.read().split()]
        return children
    except FileNotFoundError:  # gone, or a kernel without CONFIG_PROC_CHILDREN
        return None


class ForegroundFinder:
    """The service is every live process called ``name``: new ones are found in /proc.

    With ``parent`` (the supervisor's pid), a new one is looked for among its
    children only: polling a listing of /proc would cost the benchmark a
    millisecond per look with 2,000 extra processes, on the same cores as
    the supervisor it times.
    """

    def __init__(self, name: str, parent: int | None = None) -> None:
        self.name = name
        self.parent = parent

    def targets(self) -> set[int]:
        """The pids to kill: all of the service, should a supervisor have started two."""
        return {stat.pid for stat in live_named({self.name})}

    def candidates(self, baseline: set[str]) -> Iterator[Stat]:
        children = children_of(self.parent) if self.parent is not None else None
        if children is None:
            yield from new_processes(baseline)
            return
        for pid in children:
            if str(pid) not in baseline and (stat := read_stat(pid)) is not None and is_alive(stat):
                yield stat

    def find(self, killed: set[int], baseline: set[str]) -> tuple[int, float]:
        """Wait for a live process called ``name`` that is not in ``baseline``."""

        def probe() -> int | None:
            return next((s.pid for s in self.candidates(baseline) if s.name == self.name), None)

        return poll_until(probe, f"a new process named {self.name}")


class DaemonFinder(ForegroundFinder):
    """The service is a daemon called ``name`` that writes its pid to ``pidfile``.

    With ``by_pidfile``, only the pid in the file is the service (a second daemon
    the supervisor started is a leak, not part of it); otherwise every process
    called ``name`` is, as the basename matcher sees it.
    """

    def __init__(self, name: str, pidfile: Path, by_pidfile: bool) -> None:
        super().__init__(name)
        self.pidfile = pidfile
        self.by_pidfile = by_pidfile

    def targets(self) -> set[int]:
        pid = read_pidfile(self.pidfile)
        return {pid} if self.by_pidfile and pid is not None else super().targets()

    def find(self, killed: set[int], baseline: set[str]) -> tuple[int, float]:
        """Wait for the pidfile to name a live daemon called ``name`` that was not killed."""

        def probe() -> int | None:
            pid = read_pidfile(self.pidfile)
            if pid is None or pid in killed:
                return None
            stat = read_stat(pid)
            return pid if stat is not None and is_alive(stat) and stat.name == self.name else None

        return poll_until(probe, f"{self.pidfile} to name a new daemon {self.name}")


@dataclass
class LatencyCase:
    """One service killed again and again, and how long each replacement took to appear."""

    label: str
    supervisor: Supervisor
    finder: ForegroundFinder
    ready_at: float = 0.0
    latencies: list[float] = field(default_factory=list)  # inf: no replacement in time
    crowded_kills: int = 0  # kills that found more than one process to kill

    @property
    def active(self) -> bool:
        """False once a kill went unanswered: killing on would only wait out more timeouts."""
        return math.inf not in self.latencies

    def wait_first(self) -> None:
        _, found_at = self.finder.find(set(), set())
        self.ready_at = found_at + KILL_SPACING

    def kill_once(self) -> None:
        """Wait out the spacing, SIGKILL the service, time its replacement."""
        delay = self.ready_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        self.supervisor.check_running()
        targets = self.finder.targets()
        self.crowded_kills += len(targets) > 1
        baseline = proc_entries()
        killed_at = time.perf_counter()
        for pid in targets:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # gone by itself since we looked: its replacement is still timed
        try:
            _, found_at = self.finder.find(targets, baseline)
        except BenchError as exc:
            progress(f"restart latency, {self.label}: {exc}; no more kills of it")
            self.latencies.append(math.inf)
            return
        self.latencies.append(found_at - killed_at)
        self.ready_at = found_at + KILL_SPACING


@dataclass
class LatencyFigures:
    latencies: dict[str, list[float]]  # seconds, by case
    log_summary: str  # what the watchdogs' logs say they did

    def add(self, other: LatencyFigures) -> None:
        """Take in another pass of the same table size."""
        for case, values in other.latencies.items():
            self.latencies.setdefault(case, []).extend(values)
        self.log_summary = "\n".join(filter(None, (self.log_summary, other.log_summary)))


def measure_latency(space: Workspace, supervisord: str, daemonizer: Path, kills: int,
                    extra: int, part: int) -> LatencyFigures:
    """Kill each case's service ``kills`` times, round-robin, all supervisors running.

    ``extra`` is how many other processes the table holds meanwhile (for the
    names of this pass's programs and the progress lines only: the caller runs them).
    """
    size = f"{'l' if extra else 's'}{part}"  # programs of each pass have names of their own
    foreground = space.sleep_copy(f"fg{size}")
    by_name = space.copy_program(daemonizer, space.name(f"dm{size}"))
    by_pidfile = space.copy_program(daemonizer, space.name(f"pf{size}"))
    peer_program = space.sleep_copy(f"sv{size}")
    dm_pidfile, pf_pidfile = space.path / f"dm{size}.pid", space.path / f"pf{size}.pid"
    fast = ["--interval", str(LATENCY_INTERVAL), "--stable-after", str(STABLE_AFTER)]
    with ExitStack() as stack:
        def start(label: str, argv: list[str]) -> Supervisor:
            return stack.enter_context(Supervisor(f"{label}-{size}", argv, space))

        ours = start("wd-fg", watchdog_argv(*fast, f"{foreground} {FOREVER}"))
        peer = stack.enter_context(start_supervisord(
            supervisord, space, f"latency-{size}", {"sv": f"{peer_program} {FOREVER}"}))
        cases = [
            LatencyCase("foreground", ours, ForegroundFinder(foreground.name, ours.pid)),
            LatencyCase("daemon/basename",
                        start("wd-dm", watchdog_argv(*fast, f"{by_name} booting {dm_pidfile}")),
                        DaemonFinder(by_name.name, dm_pidfile, by_pidfile=False)),
            LatencyCase("daemon/pidfile", start("wd-pf", watchdog_argv(
                *fast, "--pidfile", f"{by_pidfile.name}={pf_pidfile}", f"{by_pidfile} booting {pf_pidfile}")),
                        DaemonFinder(by_pidfile.name, pf_pidfile, by_pidfile=True)),
            LatencyCase("supervisord", peer, ForegroundFinder(peer_program.name, peer.pid)),
        ]
        for case in cases:
            case.wait_first()
        for round_number in range(kills):
            if round_number % 10 == 0:
                progress(f"restart latency, +{extra} procs, part {part + 1}: "
                         f"kill round {round_number + 1}/{kills}")
            for case in cases:
                if case.active:
                    case.kill_once()
        time.sleep(0.3)  # let a stray second start show, if there is one
        summary = restart_counts(cases[:3])
    indent, rest = summary[:2], summary[2:]
    return LatencyFigures({case.label: case.latencies for case in cases},
                          f"{indent}+{extra} procs, part {part + 1}, {rest}")


def restart_counts(cases: list[LatencyCase]) -> str:
    """What each watchdog did, from its log and the process table; WARNING if not ideal."""
    parts = []
    ideal = True
    for case in cases:
        log = case.supervisor.log_text()
        kills, starts = len(case.latencies), log.count(": started ")
        waits, alive = log.count(": restarting in "), len(live_named({case.finder.name}))
        ideal = ideal and (starts, waits, case.crowded_kills, alive) == (kills + 1, 0, 0, 1)
        parts.append(
            f"{case.label}: {kills} kills, {starts} starts, {waits} backoff waits, "
            f"{case.crowded_kills} kills found 2+ processes, {alive} alive at the end"
        )
    return ("  " if ideal else "  WARNING: ") + "watchdog logs (ideal: one start per kill plus " \
        "the first, no backoff wait, one process per kill, 1 alive at the end): " \
        + "; ".join(parts) + "."


# --- 2. the cost of one check ---------------------------------------------------------


class BackgroundProcesses:
    """Sleeping processes in one process group of their own, killed and reaped on exit."""

    def __init__(self) -> None:
        self.pids: list[int] = []
        self.group = 0

    def spawn(self, argv: Sequence[str]) -> int:
        pid = os.posix_spawn(argv[0], list(argv), os.environ, setpgroup=self.group)
        if not self.group:
            self.group = pid
        self.pids.append(pid)
        return pid

    def __enter__(self) -> BackgroundProcesses:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.group:
            try:
                os.killpg(self.group, signal.SIGKILL)
            except OSError:
                pass
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        for pid in self.pids:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def configured_rules(pm: Any, commands: dict[str, str], regexes: dict[str, str],
                     pidfiles: dict[str, str]) -> list[Rule]:
    """Rules as the command line would make them (the recipe of tests/test_matching.py)."""
    rules = [make_rule(command, name=name) for name, command in commands.items()]
    options = {
        "regex": tuple(f"{name}={pattern}" for name, pattern in regexes.items()),
        "pidfile": tuple(f"{name}={path}" for name, path in pidfiles.items()),
    }
    config = Config(rules=rules, options=options)
    matchers_of(pm).configure(config, "basename")
    pm.hook.watchdog_configure(config=config)
    return rules


@functools.cache
def matchers_of(pm: Any) -> Matchers:
    """The matcher registry the engine dispatches through, as the command line builds it."""
    return Matchers.of(pm)


def start_check_services(space: Workspace, background: BackgroundProcesses,
                         pm: Any) -> list[Rule]:
    """One running service per rule, 50 rules: ~17 basename, ~17 regex, ~16 pidfile."""
    commands: dict[str, str] = {}
    regexes: dict[str, str] = {}
    pidfiles: dict[str, str] = {}
    for kind, count in RULE_KINDS.items():
        for index in range(count):
            name = space.name(f"{kind[0]}{index:02d}")
            program = space.sleep_copy(f"{kind[0]}{index:02d}")
            pid = background.spawn([str(program), FOREVER])
            commands[name] = f"{program} {FOREVER}"
            if kind == "regex":
                regexes[name] = rf"/{re.escape(name)} \d+$"
            elif kind == "pidfile":
                pidfile = space.path / f"{name}.pid"
                pidfile.write_text(f"{pid}\n")
                pidfiles[name] = str(pidfile)
    return configured_rules(pm, commands, regexes, pidfiles)


def time_floor() -> float:
    """The least any check can do: list /proc and read every /proc/PID/stat.

    With the same raw os calls the watchdog uses (``open()``'s buffered reader
    costs three times as much), so the floor is not one the watchdog beats by
    reading files more cheaply than the floor does.
    """
    started = time.perf_counter()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fd = os.open(f"/proc/{entry}/stat", os.O_RDONLY)
            except OSError:
                continue
            try:
                os.read(fd, 4096)
            except OSError:
                pass
            finally:
                os.close(fd)
    return time.perf_counter() - started


def time_check(pm: Any, rules: list[Rule], cache: CommandLineCache | None = None) -> float:
    """One check as the engine makes it: a snapshot, then every rule's matcher.

    Without ``cache`` the check is cold: every command line a rule needs is read.
    With one kept from check to check, as the engine keeps it, lines of processes
    that have not changed come from the previous checks (``warm``).
    """
    started = time.perf_counter()
    snapshot = take_snapshot(cache=cache)
    for rule in rules:
        matchers_of(pm).match(rule, snapshot)
    return time.perf_counter() - started


def verify_matches(pm: Any, rules: list[Rule]) -> None:
    """Each rule must match its one service, or the check would time nothing real."""
    snapshot = take_snapshot()
    for rule in rules:
        count = len(matchers_of(pm).match(rule, snapshot))
        if count != 1:
            raise BenchError(f"rule {rule.name} ({rule.strategy}) matches {count} processes, not 1")


@dataclass
class CheckFigures:
    timings: dict[str, list[float]]  # seconds: "floor", "1 rule", "50 rules"
    entries: int  # /proc entries while measuring
    profile: str  # top cProfile entries of the 50-rule check, when asked for
    phases: str = ""  # where a cold and an event check spend their time


def start_load(space: Workspace, background: BackgroundProcesses) -> None:
    """LOAD_COUNT sleeping processes: the large table of the latency and check runs."""
    load = space.sleep_copy("load")
    progress(f"starting {LOAD_COUNT} background processes")
    for _ in range(LOAD_COUNT):
        background.spawn([str(load), FOREVER])


def time_event_check(pm: Any, rules: list[Rule], tracker: Tracker) -> float:
    """One check as the engine makes it on an event: an incremental snapshot, every matcher."""
    started = time.perf_counter()
    snapshot = tracker.take()
    for rule in rules:
        tracker.follow(matchers_of(pm).match(rule, snapshot))
    return time.perf_counter() - started


def measure_check(space: Workspace, mode: Mode, profile: bool,
                  background: BackgroundProcesses) -> CheckFigures:
    """Floor, 1-rule and 50-rule checks, interleaved, with the LOAD_COUNT processes of ``background``."""
    pm = make_plugin_manager()
    timings: dict[str, list[float]] = {
        "floor": [], "1 rule": [], "3 rules": [], "50 rules": [], "50 rules, warm": [],
        "50 rules, event": [],
    }
    rules = start_check_services(space, background, pm)
    verify_matches(pm, rules)
    one_rule = [rules[0]]
    warm_cache = CommandLineCache(ttl=60.0)  # the engine's, at the default interval
    tracker = Tracker(backstop=60.0)  # the engine's, at the default interval
    time_event_check(pm, rules, tracker)  # the full read the events build on
    one_per_kind = [next(rule for rule in rules if rule.strategy == kind) for kind in RULE_KINDS]
    timers: dict[str, Callable[[], float]] = {
        "floor": time_floor,
        "1 rule": lambda: time_check(pm, one_rule),
        "3 rules": lambda: time_check(pm, one_per_kind),
        "50 rules": lambda: time_check(pm, rules),
        "50 rules, warm": lambda: time_check(pm, rules, warm_cache),
        "50 rules, event": lambda: time_event_check(pm, rules, tracker),
    }
    entries = len(os.listdir("/proc"))
    progress(f"check cost: {mode.check_rounds} rounds over {entries} /proc entries")
    for timer in timers.values():
        timer()  # warm-up: caches, compiled patterns
    for round_number in range(mode.check_rounds):
        labels = list(timers)
        shift = round_number % len(labels)
        for label in labels[shift:] + labels[:shift]:  # no measure always goes first
            timings[label].append(timers[label]())
    profiled = profile_check(pm, rules, mode.check_rounds) if profile else ""
    progress("check cost: phases")
    return CheckFigures(timings, entries, profiled, measure_phases(pm, rules, mode.check_rounds))


def median_ms(action: Callable[[], object], rounds: int) -> float:
    """Median milliseconds of ``action`` over ``rounds`` runs."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def measure_phases(pm: Any, rules: list[Rule], rounds: int) -> str:
    """A table of what a cold 50-rule check and an event's check spend their time on.

    Each phase is timed on its own, median of ``rounds`` (so the phases need
    not add up exactly to the whole). Matching is the plugins' functions called
    directly, dispatch what the registry adds to them.
    """
    plugins = {"basename": basename_plugin, "regex": regex_plugin, "pidfile": pidfile_plugin}
    self_pid = os.getpid()
    entries = [entry for entry in os.listdir("/proc") if entry.isdigit()]
    procs = {proc.pid: proc for proc in (read_stat_record("/proc", e) for e in entries) if proc}

    def raw_reads() -> None:
        for entry in entries:
            data = read_proc_file(f"/proc/{entry}/stat")
            del data

    def with_lines() -> Snapshot:
        snapshot = Snapshot(procs, self_pid)
        snapshot.command_lines()
        return snapshot

    prepared = with_lines()

    def direct() -> None:
        for rule in rules:
            plugins[rule.strategy].match(rule, prepared)

    def hooked() -> None:
        for rule in rules:
            matchers_of(pm).match(rule, prepared)

    floor = median_ms(time_floor, rounds)
    listing = median_ms(lambda: os.listdir("/proc"), rounds)
    raw = median_ms(raw_reads, rounds)
    parsed = median_ms(lambda: [read_stat_record("/proc", e) for e in entries], rounds)
    build = median_ms(lambda: Snapshot(procs, self_pid), rounds)
    lines = median_ms(with_lines, rounds) - build
    matching = median_ms(direct, rounds)
    hooks = median_ms(hooked, rounds) - matching
    whole = median_ms(lambda: time_check(pm, rules), rounds)
    tracker = Tracker(backstop=3600.0)
    time_event_check(pm, rules, tracker)
    cursor = median_ms(read_cursor, rounds)
    take = median_ms(tracker.take, rounds)
    event_lines = median_ms(lambda: tracker.take().command_lines(), rounds) - take
    event = median_ms(lambda: time_event_check(pm, rules, tracker), rounds)
    rows = [
        ("cold: list /proc", listing), ("cold: read every stat (raw os calls)", raw),
        ("cold: parse stat into records", parsed - raw), ("cold: build the snapshot", build),
        ("cold: read every command line", lines), ("cold: match 50 rules (plugin code)", matching),
        ("cold: dispatch by matcher name", hooks), ("cold: the whole check", whole),
        ("event: read the pid cursor", cursor),
        (f"event: take() ({tracker.last_reads} stat reads)", take),
        ("event: command lines from the cache", event_lines),
        ("event: the whole check, 50 rules", event),
    ]
    width = max(len(label) for label, _ in rows)
    lines_out = [f"Where a check's time goes ({len(entries)} processes, medians of {rounds}; "
                 f"floor {floor:.1f} ms):", f"{'phase':<{width}} | {'ms':>6} | x floor"]
    lines_out += [f"{label:<{width}} | {value:6.2f} | {value / floor:5.2f}" for label, value in rows]
    return "\n".join(lines_out)


def profile_check(pm: Any, rules: list[Rule], rounds: int, top: int = 15) -> str:
    """The functions a 50-rule check spends its time in, by own time."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(rounds):
        time_check(pm, rules)
    profiler.disable()
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(top)
    lines = stream.getvalue().strip().splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    return "\n".join([f"cProfile of {rounds} checks with 50 rules, top {top} by own time:",
                      *lines[start:]])


# --- 3, 4. idle CPU and memory -----------------------------------------------------------


def programs_for(space: Workspace, prefix: str) -> dict[str, str]:
    """SERVICE_COUNT sleep copies: {name: command}."""
    return {
        space.name(f"{prefix}{index}"): f"{space.sleep_copy(f'{prefix}{index}')} {FOREVER}"
        for index in range(SERVICE_COUNT)
    }


@dataclass
class IdleFigures:
    cpu_per_minute: dict[str, float]
    rss_mib: dict[str, list[float]]


def measure_idle(space: Workspace, supervisord: str, mode: Mode) -> IdleFigures:
    """Both supervisors side by side with 10 services each: CPU over a window, RSS."""
    ours, theirs = programs_for(space, "i"), programs_for(space, "s")
    baseline = proc_entries()
    with ExitStack() as stack:
        supervisors = {
            "watchdog": stack.enter_context(
                Supervisor("wd-idle", watchdog_argv(*ours.values()), space)),
            "supervisord": stack.enter_context(
                start_supervisord(supervisord, space, "idle", theirs)),
        }
        wait_for_names(set(ours) | set(theirs), baseline)
        time.sleep(1.0)  # start-up done: what follows is idle
        progress(f"idle CPU and memory: {mode.idle_window:.0f} s window")
        cpu_before = {label: cpu_seconds(s.pid) for label, s in supervisors.items()}
        window_start = time.perf_counter()
        rss_mib: dict[str, list[float]] = {label: [] for label in supervisors}
        while time.perf_counter() - window_start < mode.idle_window:
            for label, supervisor in supervisors.items():
                supervisor.check_running()
                rss_mib[label].append(psutil.Process(supervisor.pid).memory_info().rss / 2**20)
            time.sleep(1.0)
        elapsed = time.perf_counter() - window_start
        cpu_after = {label: cpu_seconds(s.pid) for label, s in supervisors.items()}
    per_minute = {label: (cpu_after[label] - cpu_before[label]) * 60 / elapsed for label in cpu_before}
    return IdleFigures(per_minute, rss_mib)


# --- 5. start-up ------------------------------------------------------------------


def time_startup(start: Callable[[], Supervisor], names: set[str]) -> float:
    """From exec of the supervisor until every service is in the process table."""
    baseline = proc_entries()
    with start() as supervisor:
        _, found_at = wait_for_names(names, baseline)
        return found_at - supervisor.started_at


def measure_startup(space: Workspace, supervisord: str, mode: Mode,
                    installed: str) -> dict[str, list[float]]:
    """Alternate watchdog and supervisord start-ups, 10 services each.

    The watchdog runs twice per round: from ``installed`` (a regular install, what a
    container runs) and from this environment (``EDITABLE``, usually the development one).
    """
    ours, theirs, edited = programs_for(space, "u"), programs_for(space, "v"), programs_for(space, "e")
    starts: dict[str, tuple[Callable[[], Supervisor], set[str]]] = {
        "watchdog": (lambda: Supervisor("wd-up", watchdog_argv(*ours.values(), python=installed), space),
                     set(ours)),
        "supervisord": (lambda: start_supervisord(supervisord, space, "up", theirs), set(theirs)),
        EDITABLE: (lambda: Supervisor("wd-up-dev", watchdog_argv(*edited.values()), space), set(edited)),
    }
    times: dict[str, list[float]] = {label: [] for label in starts}
    for run in range(mode.startup_runs):
        progress(f"start-up: run {run + 1}/{mode.startup_runs}")
        for label, (start, names) in starts.items():
            times[label].append(time_startup(start, names))
            wait_gone(names)
    return times


def wait_gone(names: set[str]) -> None:
    """The services of a stopped supervisor must be gone before the next start."""
    poll_until(lambda: True if not live_named(names) else None, f"{sorted(names)} to stop")


# --- 6. start-up phases and the exec probe ---------------------------------------------


def run_once(argv: Sequence[str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of one run of ``argv``, its output thrown away."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


Timings = dict[str, list[tuple[float, float]]]  # by label: (wall, CPU) seconds of each run


def time_commands(commands: dict[str, Sequence[str]], runs: int, what: str) -> Timings:
    """Every command ``runs`` times, round-robin so that load drifts weigh on all alike."""
    times: Timings = {label: [] for label in commands}
    for run in range(runs):
        progress(f"{what}: run {run + 1}/{runs}")
        for label, argv in commands.items():
            times[label].append(run_once(argv))
    return times


def script_or_module(script: str, function: str) -> list[str]:
    """The installed console script (what a HEALTHCHECK runs), else the same entry point via -c."""
    beside = Path(sys.executable).parent / script
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    return [sys.executable, "-c", f"from watchdog.execprobe import {function}; {function}()"]


BARE = "python -c pass"


def is_editable() -> bool:
    """Whether this environment's watchdog is an editable install (its source not in site-packages)."""
    source = Path(sys.modules["watchdog"].__file__ or "").resolve()
    return not source.is_relative_to(Path(sysconfig.get_paths()["purelib"]).resolve())


# The start-up runs from this environment's own install of the project.
EDITABLE = "this environment's install" + (" (editable)" if is_editable() else "")
PHASES = {  # each runs the one before and more; the last is a whole --check of the rules
    "interpreter (python -c pass)": ["-c", "pass"],
    "+ imports (import watchdog.cli)": ["-c", "import watchdog.cli"],
    "+ plugins and options": ["-c", "from watchdog.cli import make_cli\n"
                              "from watchdog.manager import make_plugin_manager\n"
                              "make_cli(make_plugin_manager(), None, [])"],
}


def measure_startup_phases(space: Workspace, mode: Mode, installed: str) -> Timings:
    """Start-up cut in cumulative phases: the interpreter, the imports, the plugins, one check."""
    commands = {label: [installed, *args] for label, args in PHASES.items()}
    rules = programs_for(space, "c")
    commands[f"+ one check of {SERVICE_COUNT} rules (--check)"] = watchdog_argv(
        "--check", "--status-file", str(space.path / "phases.json"), *rules.values(), python=installed)
    return time_commands(commands, mode.probe_runs, "start-up phases")


def measure_probe(space: Workspace, supervisord: str, mode: Mode) -> Timings:
    """The exec probe of a running watchdog and of a running supervisord, and bare Python."""
    status_file = space.path / "probe-status.json"
    ours, theirs = programs_for(space, "p"), programs_for(space, "q")
    supervisorctl = str(Path(supervisord).with_name("supervisorctl"))
    config = space.path / "probe.conf"
    with Supervisor("wd-probe", watchdog_argv("--status-file", str(status_file), *ours.values()), space), \
            start_supervisord(supervisord, space, "probe", theirs, control=True):
        commands = {
            BARE: [sys.executable, "-c", "pass"],
            "watchdog --status": [*script_or_module("watchdog", "watchdog_main"), "--status",
                                  "--status-file", str(status_file)],
            "watchdogctl status": [*script_or_module("watchdogctl", "watchdogctl_main"), "--socket",
                                   str(space.path / "control.sock"), "status"],
            "supervisorctl status": [supervisorctl, "-c", str(config), "status"],
        }
        for label in ("watchdog --status", "watchdogctl status", "supervisorctl status"):
            argv = commands[label]
            poll_until(lambda argv=argv: subprocess.run(argv, capture_output=True).returncode == 0 or None,
                       f"{label} to say every service runs")
        return time_commands(commands, mode.probe_runs, "exec probe")


# --- the table -----------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    measure: str
    ours: str
    peer: str
    ratio: str
    target: str
    met: str


def p95(values: list[float]) -> float:
    """Nearest-rank 95th percentile."""
    ordered = sorted(values)
    return ordered[max(0, -(-95 * len(ordered) // 100) - 1)]


def ratio_text(ours: float, peer: float) -> str:
    if peer <= 0 or not math.isfinite(ours) or not math.isfinite(peer):
        return "-"
    ratio = ours / peer
    return f"1/{1 / ratio:.0f}" if 0 < ratio < 0.1 else f"{ratio:.2f}x"


def yes_no(met: bool) -> str:
    return "yes" if met else "NO"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if math.isfinite(seconds) else "timeout"


LATENCY_LABELS = {"foreground": "(a) foreground child", "daemon/basename": "(b) daemon, basename",
                  "daemon/pidfile": "(c) daemon, --pidfile"}


def latency_rows(small: LatencyFigures, large: LatencyFigures) -> list[Row]:
    """Each kind with a small table, then with LOAD_COUNT more processes, each beside its peer."""
    rows = []
    for extra, figures in ((0, small), (LOAD_COUNT, large)):
        peer = figures.latencies["supervisord"]
        peer_median, peer_p95 = statistics.median(peer), p95(peer)
        for key, label in LATENCY_LABELS.items():
            median, tail = statistics.median(figures.latencies[key]), p95(figures.latencies[key])
            rows.append(Row(
                f"restart {label}, +{extra} procs, median", ms(median), ms(peer_median),
                ratio_text(median, peer_median), "<= 10 ms, <= 1/50 peer",
                yes_no(median <= 0.010 and median <= peer_median / 50),
            ))
            rows.append(Row(
                f"restart {label}, +{extra} procs, p95", ms(tail), ms(peer_p95),
                ratio_text(tail, peer_p95), "<= 30 ms", yes_no(tail <= 0.030),
            ))
    for key, label in LATENCY_LABELS.items():
        before, after = (statistics.median(f.latencies[key]) for f in (small, large))
        rows.append(Row(
            f"restart {label}, +{LOAD_COUNT} (peer: +0 procs)", ms(after), ms(before),
            ratio_text(after, before), "<= 2x peer", yes_no(after <= 2 * before),
        ))
    return rows


def check_rows(figures: CheckFigures) -> list[Row]:
    timings = figures.timings
    floor, one, three, fifty, warm, event = (
        statistics.median(timings[key])
        for key in ("floor", "1 rule", "3 rules", "50 rules", "50 rules, warm", "50 rules, event")
    )
    return [
        Row(f"check, 1 rule, +{LOAD_COUNT} procs (peer: floor)", ms(one), ms(floor),
            ratio_text(one, floor), "<= 2x peer", yes_no(one <= 2 * floor)),
        Row(f"check, 50 rules, +{LOAD_COUNT} procs (peer: floor)", ms(fifty), ms(floor),
            ratio_text(fifty, floor), "<= 1.5x peer", yes_no(fifty <= 1.5 * floor)),
        Row("check, 50 rules (peer: same check, 1 rule)", ms(fifty), ms(one),
            ratio_text(fifty, one), "<= 1.2x peer", yes_no(fifty <= 1.2 * one)),
        # The first regex rule makes the snapshot read every command line; what
        # an index must keep small is the cost of each rule after that.
        Row("check, 50 rules (peer: 3 rules, one per kind)", ms(fifty), ms(three),
            ratio_text(fifty, three), "(marginal rules)", "info"),
        # Between two checks within one interval, command lines of unchanged
        # processes are not read again (CommandLineCache).
        Row(f"check warm, 50 rules, +{LOAD_COUNT} procs (peer: floor)", ms(warm), ms(floor),
            ratio_text(warm, floor), "<= 2x peer", yes_no(warm <= 2 * floor)),
        Row("check warm, 50 rules (peer: same check, 1 rule)", ms(warm), ms(one),
            ratio_text(warm, one), "<= 1.2x peer", yes_no(warm <= 1.2 * one)),
        # What the engine does on a death: only what can have changed is read again.
        Row(f"check on an event, 50 rules, +{LOAD_COUNT} procs (peer: floor)", ms(event), ms(floor),
            ratio_text(event, floor), "(what a death costs)", "info"),
    ]


def idle_rows(idle: IdleFigures) -> list[Row]:
    cpu, peer_cpu = idle.cpu_per_minute["watchdog"], idle.cpu_per_minute["supervisord"]
    rss = statistics.median(idle.rss_mib["watchdog"])
    peer_rss = statistics.median(idle.rss_mib["supervisord"])
    return [
        Row(f"idle CPU per minute, {SERVICE_COUNT} rules",
            f"{cpu * 1000:.2f} ms", f"{peer_cpu * 1000:.2f} ms",
            ratio_text(cpu, peer_cpu), "<= 1/5 peer", yes_no(cpu <= peer_cpu / 5)),
        Row(f"RSS after start, {SERVICE_COUNT} rules", f"{rss:.1f} MiB", f"{peer_rss:.1f} MiB",
            ratio_text(rss, peer_rss), "<= peer", yes_no(rss <= peer_rss)),
    ]


def startup_rows(times: dict[str, list[float]]) -> list[Row]:
    ours, peer = statistics.median(times["watchdog"]), statistics.median(times["supervisord"])
    edited = statistics.median(times[EDITABLE])
    return [Row(f"start-up to {SERVICE_COUNT} commands visible, median", ms(ours), ms(peer),
                ratio_text(ours, peer), "<= 100 ms", yes_no(ours <= 0.100)),
            Row(f"start-up to {SERVICE_COUNT} commands visible, {EDITABLE}", ms(edited), ms(peer),
                ratio_text(edited, peer), "-", "-")]


def wall(figures: list[tuple[float, float]]) -> float:
    return statistics.median(wall for wall, _ in figures)


def cpu(figures: list[tuple[float, float]]) -> float:
    return statistics.median(cpu for _, cpu in figures)


def phase_rows(times: Timings) -> list[Row]:
    """Cumulative: each phase's figure holds the ones before it (peer: the phase before)."""
    rows, before = [], None
    for label, figures in times.items():
        ours = wall(figures)
        rows.append(Row(f"start-up phase: {label}, wall (CPU {ms(cpu(figures))})", ms(ours),
                        "-" if before is None else ms(before),
                        "-" if before is None else ratio_text(ours, before), "-", "-"))
        before = ours
    return rows


def probe_rows(times: Timings) -> list[Row]:
    bare, peer = times[BARE], times["supervisorctl status"]
    rows = [Row(f"exec probe: {BARE} (reference)", ms(wall(bare)), "-", "-", "-", "-")]
    for label in ("watchdog --status", "watchdogctl status"):
        ours = times[label]
        rows.append(Row(f"exec probe: {label}, wall (peer supervisorctl status)", ms(wall(ours)),
                        ms(wall(peer)), ratio_text(wall(ours), wall(peer)), "<= 2x python -c pass",
                        yes_no(wall(ours) <= 2 * wall(bare))))
        rows.append(Row(f"exec probe: {label}, CPU (peer supervisorctl status)", ms(cpu(ours)),
                        ms(cpu(peer)), ratio_text(cpu(ours), cpu(peer)), "<= 2x python -c pass",
                        yes_no(cpu(ours) <= 2 * cpu(bare))))
    return rows


def format_table(rows: list[Row]) -> str:
    header = Row("measure", "watchdog", "peer", "ratio", "target", "met?")
    cells = [[row.measure, row.ours, row.peer, row.ratio, row.target, row.met]
             for row in (header, *rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header.__dict__))]
    numeric = {1, 2, 3}  # right-aligned columns

    def line(values: list[str]) -> str:
        return " | ".join(
            value.rjust(width) if i in numeric else value.ljust(width)
            for i, (value, width) in enumerate(zip(values, widths, strict=True))
        ).rstrip()

    rule = "-+-".join("-" * width for width in widths)
    return "\n".join([line(cells[0]), rule, *(line(values) for values in cells[1:])])


# --- main -------------------------------------------------------------------------------


def describe_machine(supervisord: str) -> list[str]:
    version = subprocess.run([supervisord, "--version"], capture_output=True, text=True)
    return [
        "command: " + shlex.join([sys.executable, *sys.argv]),
        f"machine: {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, supervisord {version.stdout.strip() or '?'}",
    ]


def notes(space: Workspace, mode: Mode, latency: list[LatencyFigures],
          check: CheckFigures | None, sections: Sequence[str]) -> list[str]:
    """How each figure was taken, wrapped to the width of a terminal."""
    check_note = "" if check is None else (
        f"Check: in-process take_snapshot() + the rule's matcher per rule, {check.entries} /proc "
        f"entries ({LOAD_COUNT} extra sleeping processes); 50 rules = "
        f"{RULE_KINDS['basename']} basename + {RULE_KINDS['regex']} regex + "
        f"{RULE_KINDS['pidfile']} pidfile, each matching one service; 1 rule = basename; "
        f"{mode.check_rounds} interleaved rounds. The check on an event is the engine's "
        "Tracker.take() after a full read, with every matcher: what a death costs to look at.")
    paragraphs = [
        "Notes. Peer: supervisord in the same run, except in the check rows (a bare /proc "
        "scan, or the same check with 1 rule). Every figure is a median.",
        *([] if "latency" not in sections else [
            f"Restart latency: SIGKILL -> replacement visible in /proc (polled every "
            f"{POLL_SECONDS * 1000:g} ms), {mode.kills} kills per case, the four cases round-robin "
            f"with every supervisor running; with the table as it is (+0) and with {LOAD_COUNT} "
            f"extra sleeping processes in it, in turns (+0, +{LOAD_COUNT}, +0, +{LOAD_COUNT}), each "
            f"pass with fresh supervisors started {LOAD_SETTLE:g} s after the extra processes.",
            f"  The watchdog runs with --interval {LATENCY_INTERVAL} (exits wake it, not the "
            f"interval) and --stable-after {STABLE_AFTER}; kills are spaced >= {KILL_SPACING} s "
            "after each restart, so no death falls within --stable-after of its start and every "
            "kill should get the immediate first restart, not the crash-loop backoff.",
            "  (a) a copy of sleep; (b) a double-forking daemon matched by basename; (c) the same "
            "daemon matched by --pidfile; supervisord: a copy of sleep, autorestart=true "
            "startsecs=0. The peer of (b) and (c) is supervisord's foreground figure.",
            *(f"  {note}" for note in space.notes),
            *(line for figures in latency for line in figures.log_summary.split("\n")),
        ]),
        check_note,
        "" if "idle" not in sections else
        f"Idle CPU: both supervisors side by side, {SERVICE_COUNT} sleep copies each, the "
        f"watchdog at its default interval; CPU time from the kernel's per-process CPU clock "
        f"(ns) over {mode.idle_window:.0f} s, scaled to a minute. RSS: median of samples taken "
        "every second over that window.",
        "" if "startup" not in sections else
        f"Start-up: exec of the supervisor -> all {SERVICE_COUNT} commands in /proc, "
        f"{mode.startup_runs} alternating runs each; the watchdog as a regular install (pip "
        "install ., bytecode compiled), and again from this environment's install, which in "
        "development is editable (setuptools' import hook at every start). Phases (the regular "
        "install): whole processes, each doing what "
        "the one before does and more (wall and CPU, user + system), round-robin, "
        f"{mode.probe_runs} runs each; the last one is watchdog --check of {SERVICE_COUNT} rules "
        "(everything but starting them).",
        "" if "probe" not in sections else
        f"Exec probe: what a HEALTHCHECK runs, against a watchdog and a supervisord each keeping "
        f"{SERVICE_COUNT} sleep copies, and bare Python in the same environment; the installed "
        f"console scripts; {mode.probe_runs} round-robin runs each, wall and CPU (user + system).",
    ]
    return [wrap(paragraph) for paragraph in paragraphs if paragraph]


def wrap(paragraph: str, width: int = 100) -> str:
    """Wrap a note, keeping its indentation on every line."""
    indent = paragraph[: len(paragraph) - len(paragraph.lstrip())]
    return textwrap.fill(paragraph.strip(), width, initial_indent=indent,
                         subsequent_indent=indent + "  ")


def interrupt(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C or SIGTERM: unwind through every clean-up, which a second signal must not cut short."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt(f"signal {signum}")


def run(mode: Mode, supervisord: str, profile: bool, sections: Sequence[str] = SECTIONS) -> str:
    """Every measure asked for, in turn; the report to print."""
    rows: list[Row] = []
    tail: list[str] = []
    with workspace() as space:
        started = time.perf_counter()
        latency: list[LatencyFigures] = []
        check: CheckFigures | None = None
        if "latency" in sections or "check" in sections:
            daemonizer = build_daemonizer(space)
            # The two table sizes take turns, each in halves, so that a machine whose
            # load drifts during the run weighs on both alike.
            small, large = LatencyFigures({}, ""), LatencyFigures({}, "")
            halves = (mode.kills // 2, mode.kills - mode.kills // 2)
            for part, kills in enumerate(halves):
                if "latency" in sections:
                    small.add(measure_latency(space, supervisord, daemonizer, kills, 0, part))
                    space.kill_leftovers()  # daemons a supervisor left behind must not weigh on what follows
                with BackgroundProcesses() as background:
                    start_load(space, background)
                    # Fresh supervisors find the load already old, as a long-running one
                    # would: what follows is the steady state, not the births' cost.
                    time.sleep(LOAD_SETTLE)
                    if "latency" in sections:
                        large.add(measure_latency(space, supervisord, daemonizer, kills, LOAD_COUNT, part))
                    if part == len(halves) - 1 and "check" in sections:
                        check = measure_check(space, mode, profile, background)
                space.kill_leftovers()
            if "latency" in sections:
                latency = [small, large]
                rows += latency_rows(small, large)
            if check is not None:
                rows += check_rows(check)
                tail += ["", check.phases, *(["", check.profile] if check.profile else [])]
        if "idle" in sections:
            rows += idle_rows(measure_idle(space, supervisord, mode))
            space.kill_leftovers()
        if "startup" in sections:
            progress("start-up: a regular install of the project")
            installed = regular_install(space)
            rows += startup_rows(measure_startup(space, supervisord, mode, installed))
            rows += phase_rows(measure_startup_phases(space, mode, installed))
            space.kill_leftovers()
        if "probe" in sections:
            rows += probe_rows(measure_probe(space, supervisord, mode))
        elapsed = time.perf_counter() - started
        return "\n".join([
            f"watchdog benchmark ({mode.name} mode, {elapsed:.0f} s, {', '.join(sections)})",
            *describe_machine(supervisord),
            "",
            format_table(rows),
            "",
            *notes(space, mode, latency, check, sections),
            *tail,
        ])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (about a minute)")
    parser.add_argument("--profile", action="store_true",
                        help="also print a cProfile of the 50-rule check")
    parser.add_argument("--only", action="append", choices=SECTIONS, metavar="SECTION",
                        help=f"measure only this part (repeatable): {', '.join(SECTIONS)}")
    args = parser.parse_args(argv)
    supervisord = find_supervisord()
    if supervisord is None:
        print("bench: supervisord not found; install the bench extra: pip install '.[bench]'",
              file=sys.stderr)
        return 2
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, interrupt)
    # An installed watchdog has its bytecode compiled: measure that, not the compiler. The first
    # import of each module writes it (a source tree may have it stale, or none yet).
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    try:
        report = run(QUICK if args.quick else FULL, supervisord, args.profile,
                     [section for section in SECTIONS if section in (args.only or SECTIONS)])
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted; every process started was stopped", file=sys.stderr)
        return 130
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
