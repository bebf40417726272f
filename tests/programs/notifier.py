"""A stand-in for a daemon speaking systemd's notify protocol, for the tests.

    notifier.py --name NAME [--ready-after SECONDS] [--status TEXT]
                [--ping-every SECONDS] [--pings N] [--main-child] [--send RAW]...

Names itself NAME, waits, sends ``READY=1`` (with ``STATUS=``) to
``$NOTIFY_SOCKET``, then pings ``WATCHDOG=1`` every SECONDS, N times (then
stops pinging but keeps running). ``--main-child`` forks a child that sends
``MAINPID`` of itself and stays, while the parent exits. ``--send`` sends RAW
bytes (Python escapes) first, to test what is dropped.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import socket
import sys
import time

PR_SET_NAME = 15


def send(message: bytes) -> None:
    path = os.environ["NOTIFY_SOCKET"]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(message, path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--home", help="ignored: lets a test's clean-up find it")
    parser.add_argument("--ready-after", type=float, default=0.0)
    parser.add_argument("--status", default="")
    parser.add_argument("--ping-every", type=float)
    parser.add_argument("--pings", type=int, default=0)
    parser.add_argument("--main-child", action="store_true")
    parser.add_argument("--send", action="append", default=[])
    args = parser.parse_args()
    ctypes.CDLL(None).prctl(PR_SET_NAME, args.name.encode()[:15], 0, 0, 0)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"{args.name}: NOTIFY_SOCKET={os.environ.get('NOTIFY_SOCKET')} "
          f"WATCHDOG_USEC={os.environ.get('WATCHDOG_USEC')}", flush=True)
    for raw in args.send:
        send(raw.encode().decode("unicode_escape").encode("latin-1"))
    time.sleep(args.ready_after)
    if args.main_child:
        if os.fork():
            time.sleep(0.5)  # the child's MAINPID arrives while its parent still runs
            os._exit(0)
        send(f"MAINPID={os.getpid()}".encode())
    send(b"READY=1\nSTATUS=" + args.status.encode())
    for _ in range(args.pings):
        time.sleep(args.ping_every or 1.0)
        send(b"WATCHDOG=1")
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
