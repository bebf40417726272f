"""A stand-in service for the tests: names itself, optionally daemonizes, records signals.

    service.py --name NAME [--daemon] [--pidfile PATH] [--record FILE]
               [--ignore-term] [--exit-after SECONDS] [--exit-code N] [--workers N]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys
import time

PR_SET_NAME = 15
RECORDED = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGUSR1,
            signal.SIGUSR2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--home", help="ignored: lets a test's clean-up find its daemons")
    parser.add_argument("--daemon", action="store_true")
    parser.add_argument("--pidfile")
    parser.add_argument("--record")
    parser.add_argument("--ignore-term", action="store_true")
    parser.add_argument("--exit-after", type=float)
    parser.add_argument("--exit-code", type=int, default=0)
    parser.add_argument("--new-master-on-usr2", action="store_true",
                        help="on SIGUSR2, fork a new main process and end the old one (nginx-style)")
    parser.add_argument("--workers", type=int, default=0,
                        help="fork N workers of the same name that outlive a killed main process")
    parser.add_argument("--stop-workers", action="store_true",
                        help="on SIGTERM, stop the workers and wait for them before exiting (nginx-style)")
    args = parser.parse_args()

    if args.daemon:  # the classic double fork: the starter exits, the daemon is orphaned
        if os.fork():
            os._exit(0)
        os.setsid()
        if os.fork():
            os._exit(0)

    def write_pidfile() -> None:
        if args.pidfile:
            tmp = f"{args.pidfile}.tmp"
            with open(tmp, "w") as f:
                f.write(f"{os.getpid()}\n")
            os.rename(tmp, args.pidfile)

    workers: list[int] = []

    def record(signum: int, frame: object) -> None:
        if signum == signal.SIGUSR2 and args.new_master_on_usr2:
            if os.fork():
                os._exit(0)  # the old main process ends; the new one carries on
            write_pidfile()
            return
        if args.record:
            with open(args.record, "a") as f:
                f.write(f"{os.getpid()} {signal.Signals(signum).name}\n")
        if signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT) and not args.ignore_term:
            if args.stop_workers:
                for pid in workers:
                    os.kill(pid, signal.SIGTERM)
                for pid in workers:  # a stopped worker acts on it only once continued
                    os.waitpid(pid, 0)
            sys.exit(0)

    for sig in RECORDED:
        signal.signal(sig, record)
    # Named only once its handlers are in place: a test that finds it by name may
    # signal it at once.
    ctypes.CDLL(None).prctl(PR_SET_NAME, args.name.encode()[:15], 0, 0, 0)
    write_pidfile()
    for _ in range(args.workers):  # like nginx's or gunicorn's: they do not notice the master's death
        pid = os.fork()
        if pid == 0:
            for sig in RECORDED:
                signal.signal(sig, signal.SIG_DFL)
            while True:
                signal.pause()
        workers.append(pid)
    if args.record:
        with open(args.record, "a") as f:
            f.write(f"{os.getpid()} READY\n")
    if args.exit_after is not None:
        time.sleep(args.exit_after)
        sys.exit(args.exit_code)
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
