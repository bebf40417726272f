"""Shared by the stress scripts: uniquely named services, the process table, one real watchdog.

Nothing here is a test: pytest collects no file in this directory (no name
starts with ``test_``). ``storm.py`` and ``longrun.py`` import this module
from their own directory, and ``tests/test_stress.py`` puts that directory on
``sys.path``.

Every program runs from a temporary directory made by :func:`workspace`; on
leaving it, whatever still runs a program from there (a service, a daemon a
watchdog left behind, the watchdog itself) is SIGKILLed and the directory
removed, after failures and Ctrl-C too.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
SERVICE_PY = HERE.parent / "programs" / "service.py"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
DEAD_STATES = frozenset("ZXx")
FOREVER = "86400"  # the argument of every sleep: longer than any run
BOOTING = "booting"  # daemon.c's first argument until it is the daemon proper


# --- the process table, read directly ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Seen:
    """One process as /proc/PID/stat showed it."""

    pid: int
    ppid: int
    name: str  # the kernel's comm: at most 15 characters
    state: str
    start_ticks: int  # clock ticks after boot

    @property
    def identity(self) -> tuple[int, int]:
        """(pid, start time): unlike a pid, never shared by two processes of one run."""
        return (self.pid, self.start_ticks)

    @property
    def alive(self) -> bool:
        """Neither a zombie nor dead."""
        return self.state not in DEAD_STATES

    def age(self) -> float:
        """Seconds since the process started (to the clock tick)."""
        return time.clock_gettime(time.CLOCK_BOOTTIME) - self.start_ticks / CLOCK_TICKS


def read_stat(pid: int | str) -> Seen | None:
    """The process's stat line, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    open_paren, close_paren = raw.find(b"("), raw.rfind(b")")
    fields = raw[close_paren + 2 :].split()
    try:
        return Seen(
            pid=int(pid), ppid=int(fields[1]),
            name=raw[open_paren + 1 : close_paren].decode("utf-8", "replace"),
            state=fields[0].decode(), start_ticks=int(fields[19]),
        )
    except (IndexError, ValueError):
        return None


def process_table() -> list[Seen]:
    """Every process now, zombies included."""
    table = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            seen = read_stat(entry)
            if seen is not None:
                table.append(seen)
    return table


def cmdline(pid: int) -> list[str]:
    """The process's arguments; empty when unreadable, gone, a zombie or a kernel thread."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.rstrip(b"\0").split(b"\0")] if raw else []


def read_pidfile(path: Path) -> int | None:
    try:
        text = path.read_text()
    except OSError:
        return None
    return int(text) if text.strip().isdigit() else None


def sigkill(seen: Seen) -> bool:
    """SIGKILL exactly the process ``seen`` (never one that reused its pid); False if gone.

    The pidfd is opened first and the start time checked after, so the signal
    goes to the process that had the pid when the pidfd was opened, and only if
    that is still the process that was seen.
    """
    try:
        fd = os.pidfd_open(seen.pid)
    except ProcessLookupError:
        return False
    try:
        now = read_stat(seen.pid)
        if now is None or now.start_ticks != seen.start_ticks or not now.alive:
            return False
        signal.pidfd_send_signal(fd, signal.SIGKILL)
        return True
    except ProcessLookupError:
        return False
    finally:
        os.close(fd)


# --- services ---------------------------------------------------------------------


@dataclass(frozen=True)
class Service:
    """One rule of the watchdog: the command, how to match it, how to tell the service proper.

    ``mark``, when set, is an argument that only the daemon proper carries in
    its command line (not the intermediate forks that share its name while it
    daemonizes); without one, every live process of the name is the service.
    """

    name: str
    kind: str  # "foreground", "daemon" (matched by basename) or "pidfile"
    command: str
    pidfile: Path | None = None
    mark: str | None = None

    def watchdog_args(self) -> list[str]:
        """The watchdog's arguments for this rule."""
        args = [self.command]
        if self.pidfile is not None:
            args += ["--pidfile", f"{self.name}={self.pidfile}"]
        return args

    def is_proper(self, seen: Seen) -> bool:
        """Whether ``seen`` is a copy of this service, not a stage of its daemonizing."""
        if seen.name != self.name[:15] or not seen.alive:
            return False
        return self.mark is None or self.mark in cmdline(seen.pid)


@dataclass
class Workspace:
    """A temporary directory holding every program a stress run starts."""

    path: Path
    prefix: str
    python_daemon: bool = False  # use tests/programs/service.py even where a C compiler is
    tag: str = field(default_factory=lambda: str(os.getpid() % 100000))
    notes: list[str] = field(default_factory=list)
    _daemon_binary: Path | None = None

    def name(self, suffix: str) -> str:
        """A process name unique to this run (at most 15 characters, the kernel's limit)."""
        name = f"{self.prefix}{self.tag}-{suffix}"
        assert len(name) <= 15, name
        return name

    def foreground(self, suffix: str) -> Service:
        """A copy of sleep that runs in the foreground: the watchdog's own child."""
        name = self.name(suffix)
        path = self.path / name
        shutil.copy(shutil.which("sleep") or "/bin/sleep", path)
        path.chmod(0o755)
        return Service(name, "foreground", f"{path} {FOREVER}")

    def daemon(self, suffix: str, pidfile: bool = False) -> Service:
        """A double-forking daemon, matched by its name or (``pidfile``) by the pid it writes."""
        name = self.name(suffix)
        path = self.path / name
        pidfile_path = self.path / f"{name}.pid" if pidfile else None
        binary = None if self.python_daemon else self._compiled_daemon()
        if binary is not None:
            shutil.copy(binary, path)
            path.chmod(0o755)
            command = f"{path} {BOOTING}" + (f" {pidfile_path}" if pidfile_path else "")
            # daemon.c turns its first argument into "running" once it is the daemon proper.
            return Service(name, "pidfile" if pidfile else "daemon", command, pidfile_path, "running")
        # service.py names itself only once it is the daemon proper (the forks before
        # are named after the interpreter); this wrapper bears the name until it execs,
        # and has no service.py in its command line.
        extra = f" --pidfile '{pidfile_path}'" if pidfile_path else ""
        path.write_text(
            f"#!/bin/sh\nexec '{sys.executable}' '{SERVICE_PY}' --name {name} --home '{self.path}'"
            f" --daemon{extra}\n"
        )
        path.chmod(0o755)
        return Service(name, "pidfile" if pidfile else "daemon", str(path), pidfile_path,
                       str(SERVICE_PY))

    def _compiled_daemon(self) -> Path | None:
        """daemon.c compiled into the workspace once; None (and a note) without a compiler."""
        if self._daemon_binary is not None:
            return self._daemon_binary
        compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
        if compiler is None:
            self.python_daemon = True
            self.notes.append("no C compiler: the daemons are tests/programs/service.py --daemon")
            return None
        binary = self.path / ".daemon"
        result = subprocess.run([compiler, "-O2", "-o", str(binary), str(HERE / "daemon.c")],
                                capture_output=True, text=True)
        if result.returncode != 0:
            self.python_daemon = True
            self.notes.append(f"compiling daemon.c failed, the daemons are service.py: "
                              f"{result.stderr.strip()[:200]}")
            return None
        self._daemon_binary = binary
        return binary

    def describe_daemons(self) -> str:
        if self.python_daemon:
            return "tests/programs/service.py --daemon (Python)"
        return "tests/stress/daemon.c (compiled)"

    def kill_leftovers(self) -> int:
        """SIGKILL every process running a program from the workspace; how many there were."""
        root = str(self.path)
        killed = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                exe = os.readlink(f"/proc/{entry}/exe")
            except OSError:
                exe = ""
            if exe.startswith(root) or any(root in arg for arg in cmdline(int(entry))):
                try:
                    os.kill(int(entry), signal.SIGKILL)
                    killed += 1
                except OSError:
                    pass
        return killed


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
def workspace(prefix: str, python_daemon: bool = False) -> Iterator[Workspace]:
    """A temporary directory for one run: on the way out, kill what runs from it, remove it."""
    path = Path(tempfile.mkdtemp(prefix=f"watchdog-{prefix}-", dir=trusted_parent()))
    space = Workspace(path, prefix, python_daemon)
    try:
        yield space
    finally:
        space.kill_leftovers()
        shutil.rmtree(path, ignore_errors=True)


class ExtraProcesses:
    """``count`` sleeping copies of sleep, in a process group of their own: a large table.

    They are this process's children, SIGKILLed and reaped on the way out (and,
    as they run from the workspace, killed by its clean-up too).
    """

    def __init__(self, space: Workspace, count: int) -> None:
        self.pids: list[int] = []
        self._group = 0
        if count:
            program = space.path / space.name("ld")
            shutil.copy(shutil.which("sleep") or "/bin/sleep", program)
            program.chmod(0o755)
            try:
                for _ in range(count):
                    pid = os.posix_spawn(program, [str(program), FOREVER], os.environ,
                                         setpgroup=self._group)
                    self._group = self._group or pid
                    self.pids.append(pid)
            except BaseException:
                self.close()
                raise

    def close(self) -> None:
        if self._group:
            try:
                os.killpg(self._group, signal.SIGKILL)
            except OSError:
                pass
        for pid in self.pids:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        self.pids = []

    def __enter__(self) -> ExtraProcesses:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- the watchdog -------------------------------------------------------------------


class Watchdog:
    """A real ``python -m watchdog`` subprocess in the workspace, its output in a file."""

    def __init__(self, args: Sequence[str], space: Workspace,
                 env: dict[str, str] | None = None) -> None:
        self.log_path = space.path / "watchdog.log"
        self._log = open(self.log_path, "wb")
        # Its own status file: the default (/run/watchdog/status.json for root)
        # belongs to whichever watchdog the machine runs.
        argv = [sys.executable, "-m", "watchdog", *args,
                "--status-file", str(space.path / "status.json")]
        self.popen = subprocess.Popen(
            argv, cwd=space.path, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **(env or {})},
        )
        self.process = psutil.Process(self.popen.pid)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def rss(self) -> int:
        """Resident memory in bytes."""
        return int(self.process.memory_info().rss)

    def fds(self) -> int:
        """Open file descriptors."""
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def zombie_children(self) -> list[Seen]:
        """Children of the watchdog that have exited and not been reaped."""
        return [seen for seen in process_table() if seen.ppid == self.pid and not seen.alive]

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, as ``docker stop`` does; the exit status, or None if it had to be killed."""
        if self.popen.poll() is None:
            self.popen.terminate()
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.close()
            return None

    def close(self) -> None:
        """Make sure it is gone (SIGKILL if it still runs) and its log closed."""
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()
        self._log.close()


def fail_if_not_running(watchdog: Watchdog) -> None:
    """Raise with the end of its log when the watchdog has exited."""
    if not watchdog.running():
        tail = watchdog.log_text()[-3000:]
        raise RuntimeError(f"the watchdog exited with status {watchdog.popen.returncode}:\n{tail}")


def install_stop_handlers() -> None:
    """Make SIGTERM (and SIGHUP) raise KeyboardInterrupt, so ``finally`` blocks clean up."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)


def kb(value: float) -> str:
    """Bytes as kilobytes with a sign, for tables."""
    return f"{value / 1024:+,.0f} KB"


def elapsed_since(start: float) -> float:
    return time.monotonic() - start
