"""Shared by the tests: run real watchdogs, read the real process table."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import psutil
import pytest

PROGRAMS = Path(__file__).parent / "programs"
STRESS = Path(__file__).parent / "stress"
T = TypeVar("T")
# Every process this run starts inherits the mark (the watchdogs pass their environment
# on to their services), so the tests find theirs by name without meeting another run's
# processes of that name, or a busy machine's.
RUN_MARK = "WATCHDOG_TESTS_RUN"
os.environ.setdefault(RUN_MARK, f"{os.getpid()}.{time.time_ns()}")
# For a test whose watchdog looks at the whole host (--scope host): a name no other
# run's watchdog takes for its own, nor this one for another run's.
RUN_TAG = format(zlib.crc32(os.environ[RUN_MARK].encode()) % 36**4, "04x")[-4:]


def unique(name: str) -> str:
    """``name`` with this run's tag: at most 15 bytes, the kernel's whole process name."""
    tagged = f"{name}-{RUN_TAG}"
    assert len(tagged.encode()) <= 15, f"{tagged!r} is longer than a process name"
    return tagged


def of_this_run(proc: psutil.Process) -> bool:
    """Whether ``proc`` was started by this test run: below it, or carrying its mark (a
    daemon re-parented elsewhere; nginx rewrites its environment's memory, but stays below)."""
    try:
        if any(parent.pid == os.getpid() for parent in proc.parents()):
            return True
        return proc.environ().get(RUN_MARK) == os.environ[RUN_MARK]
    except psutil.Error:
        return False


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, what: str = "condition") -> T:
    """Poll ``predicate`` until it returns something truthy (tests may poll; the watchdog may not)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


# The scripts service() wrote. While sh runs one, before its exec of python, the
# process already carries the service's name; a daemon's starter then forks and exits,
# so a test that took that pid for the daemon's would signal a process about to vanish.
WRAPPERS: set[str] = set()


def is_named_now(proc: psutil.Process, name: str) -> bool:
    """Whether ``proc`` is the program named ``name`` now, and not the sh of a service()
    script. Its arguments are read before its name: an exec changes both, and a name
    read earlier (as process_iter's) may be the sh's."""
    try:
        argv = proc.cmdline()
        with open(f"/proc/{proc.pid}/comm", "rb") as comm:
            current = comm.read().rstrip(b"\n").decode("utf-8", "surrogateescape")
    except (psutil.Error, OSError):
        return False
    return current == name[:15] and not (len(argv) >= 2 and argv[1] in WRAPPERS)


def live(name: str) -> list[psutil.Process]:
    """Non-zombie processes of this run whose name (comm) is ``name``, service() wrappers
    left out."""
    found = []
    for proc in psutil.process_iter(["name", "status"]):
        if proc.info["name"] == name[:15] and proc.info["status"] != psutil.STATUS_ZOMBIE \
                and is_named_now(proc, name) and of_this_run(proc):
            found.append(proc)
    return found


def pids(name: str) -> set[int]:
    return {proc.pid for proc in live(name)}


def ready_since(record: Path, other_than: set[int]) -> list[int]:
    """Pids that programs/service.py wrote as READY to ``record`` (a copy is named by
    then; between its exec and its prctl it is not), leaving out ``other_than``."""
    lines = record.read_text().splitlines() if record.exists() else []
    return [int(line.split()[0]) for line in lines
            if line.endswith(" READY") and int(line.split()[0]) not in other_than]


def program(tmp_path: Path, name: str, source: str = "/bin/sleep") -> Path:
    """A copy of ``source`` called ``name``: a process name no other test uses."""
    path = tmp_path / name
    shutil.copy(source, path)
    path.chmod(0o755)
    return path


def service(tmp_path: Path, name: str, *args: str) -> Path:
    """An executable called ``name`` that runs programs/service.py as a process named ``name``."""
    path = tmp_path / name
    quoted = " ".join(f"'{arg}'" for arg in args)
    path.write_text(
        f"#!/bin/sh\nexec {sys.executable} {PROGRAMS / 'service.py'} --name {name} --home {tmp_path} "
        f"{quoted} \"$@\"\n"
    )
    path.chmod(0o755)
    WRAPPERS.add(str(path))
    return path


def install_package(package: Path, work: Path) -> dict[str, str]:
    """Install the plugin package at ``package`` into a directory of its own under ``work``;
    return the environment under which ``python -m watchdog`` sees it installed.

    Put first on PYTHONPATH, its entry point is found through the installed
    metadata exactly as it would be in site-packages, while the environment every
    other test (and every other run) shares is left as it was.
    """
    source, target = work / "source", work / "site"
    # A copy: setuptools writes build/ and *.egg-info beside the sources it builds.
    shutil.copytree(package, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    install = [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet",
               "--target", str(target), str(source)]
    # Offline first, with the setuptools at hand; it cannot build a wheel without
    # the wheel package (setuptools < 70.1), and then pip fetches a build backend.
    built = subprocess.run([*install, "--no-build-isolation"], capture_output=True, text=True)
    if built.returncode != 0:
        built = subprocess.run(install, capture_output=True, text=True)
    assert built.returncode == 0, f"pip install {package.name} failed:\n{built.stderr[-3000:]}"
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")]))}


class CheckCounts:
    """The watchdog's own count of its checks (stress/check_counter.py), so that a test
    proving that nothing happens waits for checks to pass rather than for time to."""

    args = ("-p", "check_counter:CheckCounter")

    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "check-counts"

    def env(self) -> dict[str, str]:
        path = os.pathsep.join(filter(None, [str(STRESS), os.environ.get("PYTHONPATH")]))
        return {"PYTHONPATH": path, "STRESS_COUNTS_FILE": str(self.path), "STRESS_COUNTS_EVERY": "1"}

    def checks(self) -> int:
        try:
            return int(self.path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return 0

    def wait(self, more: int) -> None:
        """Until the watchdog has made ``more`` checks after now."""
        target = self.checks() + more
        wait_for(lambda: self.checks() >= target, what=f"{more} more checks")


class Watchdog:
    """A watchdog running as a real subprocess, its log captured to a file."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None = None,
                 preexec_setsid: bool = True) -> None:
        self.log_path = cwd / f"watchdog-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "watchdog", *args], cwd=cwd, stdout=self._log,
            stderr=subprocess.STDOUT,
            # Each test's watchdog keeps its status apart from any other on the machine.
            env={**os.environ, "WATCHDOG_STATUS_FILE": str(self.log_path.with_suffix(".status")),
                 **(env or {})},
            start_new_session=preexec_setsid,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_log(self, text: str, timeout: float = 10.0) -> str:
        wait_for(lambda: text in self.log(), timeout, f"{text!r} in the log")
        return self.log()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def kill_everything(self) -> None:
        """Clean-up after a test: stop the watchdog the way a user would, then make sure."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@contextmanager
def empty_command_line() -> Iterator[subprocess.Popen[str]]:
    """A live process whose /proc/PID/cmdline reads empty, as a kernel thread's does,
    and as any process's does in the middle of an exec (SIGUSR1 gives it back)."""
    proc = subprocess.Popen([sys.executable, str(PROGRAMS / "empty_cmdline.py")],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        said = proc.stdout.readline().strip()
        if said != "ready":
            pytest.skip(f"cannot empty a process's command line here ({said})")
        yield proc
    finally:
        proc.kill()
        proc.wait()
