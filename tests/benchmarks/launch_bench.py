"""What a rule's start-up settings cost a start, beside supervisord's way of doing the same.

    python tests/benchmarks/launch_bench.py [--runs N]

Not part of the test suite. Each figure is the median time from asking for a
start until the program (``/bin/true``) has run and been reaped, which is the
part of a restart's latency the way of starting decides: the watchdog's
``processes.spawn`` for a rule with no settings (posix_spawn), with
``--directory`` and ``--umask`` (subprocess, no Python in the child), with
``--user`` too (subprocess forks: no vfork for a user switch), and with
``--rlimit`` as well (a pre-exec function in Python); the peer is
what supervisord does for a program with ``user=``: ``os.fork``, then
``setgroups``/``setgid``/``setuid``, ``chdir``, ``umask`` and ``execve`` in
Python in the child. ``--user`` cases need root and are left out otherwise.
Run in the same process, one after another, interleaved, so that machine load
falls on all of them alike.
"""

from __future__ import annotations

import argparse
import os
import pwd
import statistics
import sys
import time
from collections.abc import Callable

import watchdog.cli  # noqa: F401  (the watchdog's own size: a fork copies its page tables)
from watchdog import processes
from watchdog.identity import resolve
from watchdog.launch import Launch

TRUE = "/bin/true"


def timed(start: Callable[[], int]) -> float:
    began = time.perf_counter()
    pid = start()
    os.waitpid(pid, 0)
    return time.perf_counter() - began


def supervisord_way(uid: int | None, gid: int | None, directory: str, umask: int) -> int:
    """supervisord's ``Subprocess._spawn_as_child``, reduced to what matters here."""
    pid = os.fork()
    if pid:
        return pid
    try:
        os.setpgid(0, 0)
        if uid is not None and gid is not None:
            os.setgroups([gid])
            os.setgid(gid)
            os.setuid(uid)
        os.chdir(directory)
        os.umask(umask)
        os.execve(TRUE, [TRUE], dict(os.environ))
    finally:
        os._exit(127)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=400)
    runs = parser.parse_args().runs
    root = os.geteuid() == 0
    place = Launch(directory="/tmp", umask=0o027)
    cases: dict[str, Callable[[], int]] = {
        "no settings (posix_spawn)": lambda: processes.spawn([TRUE]),
        "--directory --umask (subprocess)": lambda: processes.spawn([TRUE], launch=place),
        "supervisord's way, no user": lambda: supervisord_way(None, None, "/tmp", 0o027),
    }
    if root:
        nobody = pwd.getpwnam("nobody")
        user = Launch(identity=resolve("--user", "nobody"), directory="/tmp", umask=0o027)
        full = Launch(identity=resolve("--user", "nobody"), directory="/tmp", umask=0o027,
                      limits={"nofile": (1024, 4096), "core": (0, 0)})
        cases["--user --directory --umask (subprocess, fork)"] = lambda: processes.spawn([TRUE], launch=user)
        cases["--user --rlimit --directory --umask (fork, pre-exec)"] = \
            lambda: processes.spawn([TRUE], launch=full)
        cases["supervisord's way, user=nobody"] = \
            lambda: supervisord_way(nobody.pw_uid, nobody.pw_gid, "/tmp", 0o027)
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, start in cases.items():
            times[name].append(timed(start))
    width = max(map(len, cases))
    print(f"{'start of /bin/true until reaped':<{width}}  median    p95   (runs: {runs}, "
          f"python {sys.version.split()[0]}, {os.cpu_count()} cpus)")
    for name, values in times.items():
        values.sort()
        p95 = values[int(len(values) * 0.95)]
        print(f"{name:<{width}}  {statistics.median(values) * 1e3:5.2f} ms  {p95 * 1e3:5.2f} ms")
    if not root:
        print("(not root: the --user cases need root)")


if __name__ == "__main__":
    main()
