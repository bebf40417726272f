"""A double-forking daemon whose stages wait for a test's word: when to fork, when to write its pidfile.

    late_pidfile.py NAME PIDFILE HOLD

HOLD is a FIFO. The starter waits until a writer opens it, then forks a
session leader that forks the daemon and exits, as any double-forking
daemon's does. The daemon, named NAME, is re-parented to the watchdog at
once, but writes PIDFILE only when a writer opens HOLD again. Until then it
is a process that its pidfile rule cannot match yet: an orphan of the
watchdog that no rule claims. The starter exits 0 once the pidfile is
written (the daemon closes the pipe it shares with it), as a daemon that
reports readiness through its starter does.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_NAME = 15


def wait_for_word(hold: str) -> None:
    """Block until a writer opens the FIFO (opening it for reading waits for one)."""
    os.close(os.open(hold, os.O_RDONLY))


def main() -> None:
    name, pidfile, hold = sys.argv[1:4]
    wait_for_word(hold)
    done_r, done_w = os.pipe()
    if os.fork() == 0:
        os.close(done_r)
        os.setsid()
        if os.fork():
            os._exit(0)  # the session leader: the daemon is orphaned now
        ctypes.CDLL(None).prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)
        wait_for_word(hold)
        with open(f"{pidfile}.tmp", "w") as f:
            f.write(f"{os.getpid()}\n")
        os.rename(f"{pidfile}.tmp", pidfile)
        os.close(done_w)
        while True:
            signal.pause()
    os.close(done_w)
    os.wait()  # the session leader
    while os.read(done_r, 64):  # EOF: the daemon wrote its pidfile
        pass
    os._exit(0)


if __name__ == "__main__":
    main()
