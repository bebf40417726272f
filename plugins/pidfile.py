"""Matcher ``pidfile``: the process whose pid a daemon wrote to a file.

``--pidfile NAME=PATH`` sets the file of rule NAME (and makes it a pidfile
rule); ``--match pidfile`` without one reads ``/run/NAME.pid``. The rule is
running when the file holds the pid of a live, non-zombie process that can
have written it: a process that started after the file was last changed
cannot have, so a pid reused after a crash is not mistaken for the service
(and is never signalled). A missing, empty, unreadable, oversized or garbled
file means "not running"; the reason is logged once each time it changes.
"""

from __future__ import annotations

import os
import stat

import click

from watchdog import hookimpl
from watchdog.config import Config
from watchdog.logs import logger
from watchdog.rules import Rule
from watchdog.snapshot import Proc, Snapshot

STRATEGY = "pidfile"
FLAG = "--pidfile"
MAX_SIZE = 64  # a pid and a newline; anything larger is not a pidfile
# Start times come in clock ticks and mtimes in the kernel's coarse clock:
# allow for both before calling a process too young to have written the file.
CLOCK_SLACK = 0.05


@hookimpl
def watchdog_add_options() -> list[click.Option]:
    return [
        click.Option(
            [FLAG], multiple=True, metavar="NAME=PATH",
            help="Match rule NAME by the pid written in PATH.",
        )
    ]


@hookimpl
def watchdog_strategies() -> list[str]:
    return [STRATEGY]


@hookimpl
def watchdog_configure(config: Config) -> None:
    for rule, path in config.per_rule(FLAG, config.options.get("pidfile", ())):
        rule.settings[STRATEGY] = path
        config.use_strategy(rule, STRATEGY, FLAG)


def path_of(rule: Rule) -> str:
    return str(rule.settings.get(STRATEGY, f"/run/{rule.name}.pid"))


def read_pidfile(path: str) -> tuple[int | None, float, str]:
    """``(pid, mtime, problem)``: a pid and when the file changed, or why there is none."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None, 0.0, f"{path} does not exist"
    except OSError as exc:
        return None, 0.0, f"{path} cannot be read: {exc.strerror}"
    if not stat.S_ISREG(info.st_mode):
        return None, 0.0, f"{path} is not a regular file"
    if info.st_size > MAX_SIZE:
        return None, 0.0, f"{path} is {info.st_size} bytes, too large for a pidfile"
    try:
        with open(path, "rb") as f:
            text = f.read(MAX_SIZE + 1)
    except OSError as exc:
        return None, 0.0, f"{path} cannot be read: {exc.strerror}"
    words = text.split()
    if not words:
        return None, 0.0, f"{path} is empty"
    if not words[0].isdigit() or int(words[0]) <= 0:
        return None, 0.0, f"{path} holds no pid: {text[:20]!r}"
    return int(words[0]), info.st_mtime, ""


def find(rule: Rule, snapshot: Snapshot) -> tuple[Proc | None, str]:
    path = path_of(rule)
    pid, mtime, problem = read_pidfile(path)
    if pid is None:
        return None, problem
    proc = snapshot.get(pid)
    if proc is None:
        return None, f"{path} names pid {pid}, which is not running"
    if snapshot.start_time(proc) > mtime + CLOCK_SLACK:
        return None, (
            f"{path} names pid {pid}, but that process started after the file was "
            "written: a reused pid, not the service"
        )
    return proc, ""


@hookimpl(trylast=True)
def watchdog_match(rule: Rule, snapshot: Snapshot) -> list[Proc] | None:
    if rule.strategy != STRATEGY:
        return None
    proc, problem = find(rule, snapshot)
    if problem != rule.state.get(STRATEGY, ""):
        rule.state[STRATEGY] = problem
        if problem:
            logger.info(problem, extra={"rule": rule.name, "event": "pidfile"})
    return [proc] if proc else []


@hookimpl(trylast=True)
def watchdog_describe(rule: Rule) -> str | None:
    if rule.strategy != STRATEGY:
        return None
    return f"a live process whose pid is in {path_of(rule)}"
