"""Run a watchdog as PID 1 of a new PID namespace, the way a container runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from helpers import is_named_now, wait_for


def namespace_problem() -> str | None:
    """Why a PID namespace cannot be made here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root to create a PID namespace (CI runs as root)"
    if shutil.which("unshare") is None or shutil.which("nsenter") is None:
        return "needs unshare and nsenter (util-linux)"
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "--net", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return f"unshare --pid --fork --mount-proc --net fails here: {probe.stderr.strip()}"
    return None


def prepare_sshd() -> None:
    """What Debian's sshd needs before it starts: its privilege-separation directory, host keys."""
    os.makedirs("/run/sshd", exist_ok=True)
    if not any(Path("/etc/ssh").glob("ssh_host_*_key")):
        subprocess.run(["ssh-keygen", "-A"], check=True, capture_output=True)


needs_namespace = pytest.mark.skipif(namespace_problem() is not None,
                                     reason=str(namespace_problem()))


class Container:
    """``unshare --pid --fork --mount-proc --net`` running ``watchdog ARGS`` as PID 1.

    A network namespace of its own keeps ports 22 and 80 free of the host's.
    """

    def __init__(self, args: list[str], cwd: Path) -> None:
        self.log_path = cwd / f"container-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "w")
        script = 'ip link set lo up 2>/dev/null; exec "$@"'
        self.unshare = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount-proc", "--net", "sh", "-c", script, "sh",
             sys.executable, "-m", "watchdog", *args],
            cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.pid1 = wait_for(self._watchdog_pid, 10, "the namespace's PID 1")
        self.ns = os.readlink(f"/proc/{self.pid1}/ns/pid")

    def _watchdog_pid(self) -> int | None:
        try:
            for child in psutil.Process(self.unshare.pid).children():
                if "watchdog" in child.cmdline():
                    return child.pid
        except psutil.Error:
            pass
        return None

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_log(self, text: str, timeout: float = 10.0) -> str:
        wait_for(lambda: text in self.log(), timeout, f"{text!r} in the log")
        return self.log()

    def processes(self) -> list[psutil.Process]:
        """Every process in the namespace but its PID 1, as the host sees them."""
        found = []
        for proc in psutil.process_iter():
            try:
                if proc.pid != self.pid1 and os.readlink(f"/proc/{proc.pid}/ns/pid") == self.ns:
                    found.append(proc)
            except OSError:
                pass
        return found

    def named(self, name: str) -> list[psutil.Process]:
        alive = []
        for proc in self.processes():
            try:
                if proc.name() == name and proc.status() != psutil.STATUS_ZOMBIE \
                        and is_named_now(proc, name):
                    alive.append(proc)
            except psutil.Error:
                pass
        return alive

    def zombies(self) -> list[psutil.Process]:
        found = []
        for proc in self.processes():
            try:
                if proc.status() == psutil.STATUS_ZOMBIE:
                    found.append(proc)
            except psutil.Error:
                pass
        return found

    def run(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a command inside the namespace (its PIDs, mounts and network)."""
        return subprocess.run(["nsenter", "-t", str(self.pid1), "-p", "-m", "-n", *argv],
                              capture_output=True, text=True, timeout=timeout)

    def signal(self, sig: int) -> None:
        os.kill(self.pid1, sig)

    def wait(self, timeout: float = 20) -> int:
        return self.unshare.wait(timeout)

    def close(self) -> None:
        if self.unshare.poll() is None:
            os.kill(self.pid1, 9)  # PID 1 dying takes the whole namespace with it
            self.unshare.wait(10)
        self._log.close()
