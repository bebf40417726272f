#!/usr/bin/env python3
"""Fallback for tests/stress/daemon.c where no C compiler is found (its start-up is Python's).

    daemonize.py booting [PIDFILE]

The benchmark copies this file under the daemon's name with its own
interpreter in the first line, so the kernel names the process after the copy.
"""

from __future__ import annotations

import os
import signal
import sys


def write_pidfile(path: str) -> None:
    """Write our pid through a temporary file and a rename: never half a pid."""
    tmp_path = f"{path}.tmp"
    with open(tmp_path, "w") as f:
        f.write(f"{os.getpid()}\n")
    os.rename(tmp_path, path)


def main() -> None:
    if os.fork():
        os._exit(0)  # the starter
    os.setsid()
    if os.fork():
        os._exit(0)  # the session leader
    if len(sys.argv) > 2:  # argv[1] is "booting", as for daemon.c
        write_pidfile(sys.argv[2])
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
