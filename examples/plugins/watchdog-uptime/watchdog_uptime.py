"""Matcher ``port``: a rule is running while one of its processes listens on a TCP port.

``watchdog /usr/sbin/sshd --port sshd=22`` keeps sshd alive by its socket,
whatever its processes are called. A plugin in miniature (hooks: ``watchdog/hookspecs.py``):

1. ``pyproject.toml`` registers this module in the entry-point group ``watchdog``
   as ``uptime``, the name ``watchdog --disable uptime`` blocks.
2. ``watchdog_matchers`` registers the matcher: its name (a choice of
   ``--match``), how it matches and describes a rule, and its per-rule flag
   ``--port NAME=PORT``, which the core adds and parses with ``parse`` (a
   ValueError becomes a one-line usage error, exit status 2) into
   ``rule.settings["port"]``. No ``default``: ``--match port`` needs a port per rule.
3. ``match`` is called only for the rules that use this matcher; matches come
   from ``snapshot.processes()`` (no zombies, no watchdogs).

Sockets are the watchdog's network namespace's, and a process counts only if its
``/proc/PID/fd`` is readable: run as root, as in a container.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from watchdog import hookimpl
from watchdog.matchers import Matcher
from watchdog.rules import Rule
from watchdog.snapshot import Proc, Snapshot

NAME = "port"
LISTEN = "0A"  # TCP_LISTEN in the "st" column of /proc/net/tcp


def parse(text: str) -> int:
    # isascii: int() would also take " 80", "8_0" and other scripts' digits.
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= 65535):
        raise ValueError("a port is a number from 1 to 65535")
    return int(text)


def listening_sockets(proc_root: str, port: int) -> set[str]:
    """``socket:[INODE]`` links of the IPv4 and IPv6 sockets listening on ``port``."""
    sockets = set()
    for table in ("tcp", "tcp6"):
        try:
            with open(f"{proc_root}/net/{table}") as f:
                rows = [line.split() for line in f.readlines()[1:]]  # past the header
        except OSError:  # a kernel without IPv6
            continue
        for row in rows:  # sl local_address rem_address st ... uid timeout inode
            if row[3] == LISTEN and int(row[1].rpartition(":")[2], 16) == port:
                sockets.add(f"socket:[{row[9]}]")
    return sockets


def fd_links(fd_dir: str) -> Iterator[str]:
    try:
        names = os.listdir(fd_dir)
    except OSError:  # gone, or another user's process and we are not root
        return
    for name in names:
        try:
            yield os.readlink(f"{fd_dir}/{name}")
        except OSError:  # closed since the listing
            continue


def match(rule: Rule, snapshot: Snapshot) -> list[Proc]:
    sockets = listening_sockets(snapshot.proc_root, rule.settings[NAME])
    if not sockets:  # nobody listens: spare reading every process's descriptors
        return []
    root = snapshot.proc_root
    return [proc for proc in snapshot.processes()
            if not sockets.isdisjoint(fd_links(f"{root}/{proc.pid}/fd"))]


def describe(rule: Rule) -> str:
    return f"a process listening on TCP port {rule.settings[NAME]}"


@hookimpl
def watchdog_matchers() -> list[Matcher]:
    return [Matcher(NAME, match, describe, flag="--port", metavar="NAME=PORT",
                    help="Match rule NAME by a process listening on TCP PORT.", parse=parse)]
