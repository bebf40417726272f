"""Whether the memory of dropped ``events`` clients is given back: the watchdog's RSS over rounds.

    python tests/benchmarks/dropped_clients.py [--rules 8000] [--rounds 5] [--clients 50]

Not part of the test suite. A watchdog keeps ``--rules`` rules running that
all find one process (its child) through pidfiles of their own under /run
(so nothing is started; should it start anything, the script stops it) and
serves its control socket. Each round, ``--clients`` clients ask for
``GET /v1/events`` and read nothing: the opening ``current`` lines (one per
rule, about 2 MB) pile up past the 1 MiB a client may leave unread, and each
client is dropped. After each round the watchdog's RSS is printed beside the
peer figure measured in the same run: its RSS after a round of clients that
read everything. Memory given back means the RSS after round N stays near
round 1's instead of climbing with N.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import psutil

T = TypeVar("T")
REQUEST = b"GET /v1/events HTTP/1.1\r\nHost: watchdog\r\n\r\n"


def wait_for(predicate: Callable[[], T], what: str, timeout: float = 120.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise SystemExit(f"dropped-clients bench: timed out waiting for {what}")


def rss_mb(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss) / 2**20


# Forks the one process every rule finds, writes its pid to every rule's pidfile, then
# becomes the watchdog: the process is the watchdog's child, so within its scope.
LAUNCHER = """
import os, sys
host = os.fork()
if host == 0:
    os.execv("/bin/sleep", ["sleep", "100000"])
pidfiles, rules = sys.argv[1], int(sys.argv[2])
for i in range(rules):
    with open(os.path.join(pidfiles, str(i)), "w") as f:
        f.write(f"{host}\\n")
os.execv(sys.executable, [sys.executable, "-m", "watchdog", *sys.argv[3:]])
"""


def config(directory: Path, rules: int) -> Path:
    """Every rule finds the one shared process through a pidfile of its own: all running,
    none started (thousands of processes would swamp the machine)."""
    pidfiles = directory / "p"
    pidfiles.mkdir()
    path = directory / "watchdog.toml"
    path.write_text("".join(f'[rules.r{i}]\ncommand="/bin/true"\npidfile="{pidfiles}/{i}"\n'
                            for i in range(rules)))  # short: the file has a limit
    return path


def round_of(sock: Path, clients: int, read: bool, log: Path, dropped_before: int) -> None:
    opened = []
    for _ in range(clients):
        client = socket.socket(socket.AF_UNIX)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.connect(str(sock))
        client.sendall(REQUEST)
        opened.append(client)
    if read:  # take everything until the first rule's "current" lines are all in
        for client in opened:
            client.settimeout(60)
            taken = b""
            while taken.count(b'"current"') < 100:
                taken += client.recv(1 << 20)
    else:
        wait_for(lambda: dropped(log) >= dropped_before + clients,
                 f"the clients to be dropped ({dropped(log) - dropped_before} of {clients}): "
                 f"{log.read_text()[-600:]}")
    for client in opened:
        client.close()


def status_written(path: Path, rules: int) -> bool:
    try:
        return path.read_text().count('"state": "running"') == rules
    except OSError:
        return False


def dropped(log: Path) -> int:
    return log.read_text().count("took none of its last")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=8000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so that the finally below runs
    # Pidfiles are trusted only under directories no other user can change: not /tmp.
    trusted = "/run" if os.geteuid() == 0 else os.environ.get("XDG_RUNTIME_DIR")
    directory = Path(tempfile.mkdtemp(prefix="wd-dropped-bench-", dir=trusted))
    log = directory / "log"
    sock = directory / "control.sock"
    path = config(directory, args.rules)
    with open(log, "w") as out:
        wd = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(directory / "p"), str(args.rules),
                               "--config", str(path), "--status-file", str(directory / "status.json"),
                               "--control-socket", str(sock), "-q"],
                              stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: sock.exists() or wd.poll() is not None, "the control socket")
        if wd.poll() is not None:
            raise SystemExit(f"dropped-clients bench: the watchdog ended: {log.read_text()[-1000:]}")
        host = int((directory / "p" / "0").read_text())

        def all_running() -> bool:
            # A rule that does not find the host would start its command: thousands would follow.
            if any(child.pid != host for child in psutil.Process(wd.pid).children()):
                raise SystemExit("dropped-clients bench: the watchdog started a process; stopping")
            return status_written(directory / "status.json", args.rules)

        wait_for(all_running, "every rule running")
        print(f"{args.rules} rules running; {args.clients} clients a round", file=sys.stderr)
        print(f"{'round':>5}  {'RSS after non-reading clients':>30}  "
              f"{'RSS after reading clients (peer)':>33}")
        print(f"{'start':>5}  {rss_mb(wd.pid):>28.1f}MB  {'':>33}", flush=True)
        for number in range(1, args.rounds + 1):
            round_of(sock, args.clients, False, log, dropped(log))
            time.sleep(1)
            dropping = rss_mb(wd.pid)
            round_of(sock, args.clients, True, log, dropped(log))
            time.sleep(1)
            print(f"{number:>5}  {dropping:>28.1f}MB  {rss_mb(wd.pid):>31.1f}MB", flush=True)
    finally:
        # SIGKILL to its process group at once, the shared process with it: it started
        # nothing, and a stop would signal that one process 8,000 times.
        if wd.poll() is None:
            os.killpg(wd.pid, signal.SIGKILL)
        wd.wait()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
