"""Matcher ``pidfile``: the process whose pid a daemon wrote to a file.

``--pidfile NAME=PATH`` sets the file of rule NAME (and makes it a pidfile
rule); ``--match pidfile`` without one reads ``/run/NAME.pid``. The rule is
running when the file holds the pid of a live, non-zombie process that can
have written it: a process that started after the file was last changed
cannot have, so a pid reused after a crash is not mistaken for the service
(and is never signalled). A missing, empty, unreadable, oversized or garbled
file means "not running"; the reason is logged once each time it changes.

Its first line is the pid (PostgreSQL's ``postmaster.pid`` goes on with more).

A pidfile decides which process the watchdog signals, so it must come from
someone entitled to name that process, or any user who can write it could
point the watchdog at any process. It is trusted only when:

- it is not a symlink (not followed), and neither its group nor others may
  write it;
- it belongs to root, to the watchdog's user or to the user of the process it
  names;
- no directory that leads to it (each one up to ``/``, along the path as
  given and as resolved) may be written by its group or others, or belongs
  to anyone else: a file in a world-writable directory such as ``/tmp``,
  sticky or not, can have been put there by another user first.

Those, a directory, and a file too large to be a pidfile are warnings, not
just "not running"; and when the file turns so while the process it named
earlier still runs (the same pid and start time), that process stays matched.
"""

from __future__ import annotations

import errno
import os
import stat

from watchdog import hookimpl
from watchdog.logs import logger
from watchdog.matchers import Matcher
from watchdog.rules import Rule
from watchdog.snapshot import Proc, Snapshot

STRATEGY = "pidfile"
MATCHED = "pidfile.matched"  # rule.state key: (pid, start ticks) of the last match
MAX_SIZE = 4096  # a pid on its first line, maybe more lines (postmaster.pid: ~100 bytes)
WRITABLE_BY_OTHERS = stat.S_IWGRP | stat.S_IWOTH
# Start times come in clock ticks and mtimes in the kernel's coarse clock:
# allow for both before calling a process too young to have written the file.
CLOCK_SLACK = 0.05


def default_path(rule: Rule) -> str:
    """``--match pidfile`` without ``--pidfile``: ``/run/NAME.pid``."""
    return f"/run/{rule.name}.pid"


def path_of(rule: Rule) -> str:
    return str(rule.settings[STRATEGY])


class Reading:
    """What a pidfile said: a pid, or the reason there is none (``warn``: a safety matter)."""

    def __init__(self, pid: int | None = None, mtime: float = 0.0, owner: int = 0, problem: str = "",
                 warn: bool = False) -> None:
        self.pid = pid
        self.mtime = mtime
        self.owner = owner
        self.problem = problem
        self.warn = warn


def read_pidfile(path: str) -> Reading:
    try:
        # O_NOFOLLOW: a symlink could name any file, written by anyone.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return Reading(problem=f"{path} does not exist")
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return Reading(problem=f"{path} is a symlink: not followed (point --pidfile at the file)",
                           warn=True)
        return Reading(problem=f"{path} cannot be read: {exc.strerror}", warn=True)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            return Reading(problem=f"{path} is a directory, not a pidfile", warn=True)
        if not stat.S_ISREG(info.st_mode):
            return Reading(problem=f"{path} is not a regular file", warn=True)
        if info.st_size > MAX_SIZE:
            return Reading(problem=f"{path} is {info.st_size} bytes, too large for a pidfile",
                           warn=True)
        if info.st_mode & WRITABLE_BY_OTHERS:
            return Reading(problem=f"{path} can be written by its group or others "
                                   f"(mode {stat.S_IMODE(info.st_mode):04o}): not trusted", warn=True)
        text = os.read(fd, MAX_SIZE + 1)
    except OSError as exc:
        return Reading(problem=f"{path} cannot be read: {exc.strerror}", warn=True)
    finally:
        os.close(fd)
    first_line = text.split(b"\n", 1)[0].strip()
    if not text.strip():
        return Reading(problem=f"{path} is empty")
    if not first_line.isdigit() or int(first_line) <= 0:
        return Reading(problem=f"{path} holds no pid on its first line: {text[:20]!r}")
    return Reading(pid=int(first_line), mtime=info.st_mtime, owner=info.st_uid)


def untrusted_directory(path: str, owners: set[int]) -> str | None:
    """The first directory leading to ``path`` that its group or others may write, or
    that belongs to none of ``owners``; None when every one is trusted."""
    directories = set()
    for start in (os.path.abspath(path), os.path.realpath(path)):
        directory = os.path.dirname(start)
        while directory not in directories:
            directories.add(directory)
            directory = os.path.dirname(directory)
    for directory in sorted(directories):
        try:
            info = os.stat(directory)
        except OSError:
            return directory
        if info.st_uid not in owners or info.st_mode & WRITABLE_BY_OTHERS:
            return directory
    return None


def process_owner(snapshot: Snapshot, pid: int) -> int | None:
    try:
        return os.stat(f"{snapshot.proc_root}/{pid}").st_uid
    except OSError:
        return None


def find(rule: Rule, snapshot: Snapshot) -> tuple[Proc | None, str, bool]:
    """The service's process, or why there is none and whether that deserves a warning."""
    path = path_of(rule)
    reading = read_pidfile(path)
    pid = reading.pid
    if pid is None:
        return None, reading.problem, reading.warn
    proc = snapshot.get(pid)
    if proc is None:
        return None, f"{path} names pid {pid}, which is not running", False
    if snapshot.start_time(proc) > reading.mtime + CLOCK_SLACK:
        return None, (
            f"{path} names pid {pid}, but that process started after the file was "
            "written: a reused pid, not the service"
        ), False
    owner = process_owner(snapshot, pid)
    if reading.owner not in (0, os.geteuid(), owner):
        return None, (
            f"{path} belongs to uid {reading.owner} but names pid {pid} of uid {owner}: "
            "not trusted (a pidfile must be root's, the watchdog's or the process owner's)"
        ), True
    trusted_owners = {0, os.geteuid()} | ({owner} if owner is not None else set())
    directory = untrusted_directory(path, trusted_owners)
    if directory is not None:
        return None, (
            f"{path} lies in {directory}, which others may write or which belongs to another "
            "user: not trusted (keep pidfiles in a directory such as /run)"
        ), True
    return proc, "", False


def match(rule: Rule, snapshot: Snapshot) -> list[Proc]:
    proc, problem, warn = find(rule, snapshot)
    if proc is None and warn:
        kept = still_matched(rule, snapshot)
        if kept is not None:
            proc = kept
            problem += f"; keeping pid {kept.pid}, matched earlier and still running"
    # The very process matched last (same pid and start time, so never a reused pid).
    rule.state[MATCHED] = (proc.pid, proc.start_ticks) if proc else None
    if problem != rule.state.get(STRATEGY, ""):
        rule.state[STRATEGY] = problem
        if problem:
            log = logger.warning if warn else logger.info
            log(problem, extra={"rule": rule.name, "event": "pidfile"})
    return [proc] if proc else []


def still_matched(rule: Rule, snapshot: Snapshot) -> Proc | None:
    """The process this rule matched at the last check, if it still runs.

    A pidfile that turns untrusted (replaced by a symlink or a FIFO) names nobody
    new, but it does not make the daemon it named earlier any less alive: calling
    the rule missing would start a second copy beside it.
    """
    matched = rule.state.get(MATCHED)
    if matched is None:
        return None
    pid, start_ticks = matched
    proc = snapshot.get(pid)
    return proc if proc is not None and proc.start_ticks == start_ticks else None


def describe(rule: Rule) -> str:
    return f"a live process whose pid is in {path_of(rule)}"


@hookimpl
def watchdog_matchers() -> list[Matcher]:
    return [Matcher(STRATEGY, match, describe, flag="--pidfile", metavar="NAME=PATH",
                    help="Match rule NAME by the pid written in PATH.", default=default_path,
                    proves_ownership=True)]
