"""A service that leaks memory for the limit tests: grows STEP MiB every 0.1 s up to a cap.

    hog.py --name NAME --step-mib 10 --cap-mib 600 --record FILE

Writes ``PID MIB`` to FILE after each step (resident, touched pages), so a
test can see how far each process got before it was stopped.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import time

PR_SET_NAME = 15


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--home", help="ignored: lets a test's clean-up find it")
    parser.add_argument("--step-mib", type=int, default=10)
    parser.add_argument("--cap-mib", type=int, default=600)
    parser.add_argument("--record", required=True)
    args = parser.parse_args()
    ctypes.CDLL(None).prctl(PR_SET_NAME, args.name.encode()[:15], 0, 0, 0)
    held = []
    while True:
        if len(held) * args.step_mib < args.cap_mib:
            held.append(b"\1" * (args.step_mib * 1024 * 1024))  # written, so resident
            with open(args.record, "a") as f:
                f.write(f"{os.getpid()} {len(held) * args.step_mib}\n")
        time.sleep(0.1)


if __name__ == "__main__":
    main()
