"""Matcher ``port``: a rule is running while one of its processes listens on a TCP port.

``watchdog /usr/sbin/sshd --port sshd=22`` keeps sshd alive by its socket,
whatever its processes are called. A plugin in miniature (hooks: ``watchdog/hookspecs.py``):

1. ``pyproject.toml`` registers this module in the entry-point group ``watchdog``
   as ``uptime``, the name ``watchdog --disable uptime`` blocks.
2. ``watchdog_add_options`` returns click options (per-rule flags: ``NAME=VALUE``,
   ``multiple=True``); ``watchdog_strategies`` names the matcher for ``--match``.
3. ``watchdog_configure`` parses with ``config.per_rule``, keeps the value in
   ``rule.settings`` and claims the rule with ``config.use_strategy``; bad input
   raises ``click.UsageError`` (one line, exit status 2).
4. ``watchdog_match`` and ``watchdog_describe`` return None for another strategy's
   rule; matches come from ``snapshot.processes()`` (no zombies, no watchdogs).

Sockets are the watchdog's network namespace's, and a process counts only if its
``/proc/PID/fd`` is readable: run as root, as in a container.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import click
from watchdog import hookimpl
from watchdog.config import Config
from watchdog.rules import Rule
from watchdog.snapshot import Proc, Snapshot

STRATEGY = "port"
FLAG = "--port"
LISTEN = "0A"  # TCP_LISTEN in the "st" column of /proc/net/tcp


@hookimpl
def watchdog_add_options() -> list[click.Option]:
    return [click.Option([FLAG], multiple=True, metavar="NAME=PORT",
                         help="Match rule NAME by a process listening on TCP PORT.")]


@hookimpl
def watchdog_strategies() -> list[str]:
    return [STRATEGY]


@hookimpl
def watchdog_configure(config: Config) -> None:
    for rule, text in config.per_rule(FLAG, config.options.get("port", ())):
        # isascii: int() would also take " 80", "8_0" and other scripts' digits.
        if not (text.isascii() and text.isdigit() and 1 <= int(text) <= 65535):
            raise click.UsageError(f"{FLAG} {rule.name}={text}: a port is a number from 1 to 65535")
        rule.settings[STRATEGY] = int(text)
        config.use_strategy(rule, STRATEGY, FLAG)
    # --match is applied after this hook, so a rule it would make ours needs a port now.
    if config.options.get("match") == STRATEGY:
        for rule in config.rules:
            if rule.name not in config.strategy_flags:
                raise click.UsageError(f"--match port: rule {rule.name!r} needs {FLAG} "
                                       f"{rule.name}=PORT")


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


@hookimpl
def watchdog_match(rule: Rule, snapshot: Snapshot) -> list[Proc] | None:
    if rule.strategy != STRATEGY:
        return None
    sockets = listening_sockets(snapshot.proc_root, rule.settings[STRATEGY])
    if not sockets:  # nobody listens: spare reading every process's descriptors
        return []
    root = snapshot.proc_root
    return [proc for proc in snapshot.processes()
            if not sockets.isdisjoint(fd_links(f"{root}/{proc.pid}/fd"))]


@hookimpl
def watchdog_describe(rule: Rule) -> str | None:
    if rule.strategy != STRATEGY:
        return None
    return f"a process listening on TCP port {rule.settings[STRATEGY]}"
