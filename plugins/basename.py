"""Matcher ``basename`` (the default): a process whose name is the program's basename.

``/etc/init.d/apache2 start`` is kept alive by any process named ``apache2``.
Names compare whole and literally (``c++`` and ``node.js`` are not patterns,
``cp`` does not match ``scp``). The kernel keeps only 15 bytes of a process
name (fewer letters when they are not ASCII), so a longer program name matches
on those 15 bytes plus the basename of the executable or of the first argument
that names a file. The process name survives a program rewriting its command
line, as sshd does.
"""

from __future__ import annotations

import os

from watchdog import hookimpl
from watchdog.matchers import Matcher
from watchdog.rules import Rule
from watchdog.snapshot import Proc, Snapshot

COMM_LENGTH = 15


def match(rule: Rule, snapshot: Snapshot) -> list[Proc]:
    name = comm_of(rule.program)
    candidates = snapshot.named(name)
    if name == rule.program:
        return candidates
    return [proc for proc in candidates if runs_program(snapshot, proc, rule.program)]


def comm_of(program: str) -> str:
    """The name the kernel gives a process running ``program``: its first 15 *bytes*.

    A cut may fall inside a UTF-8 sequence (``сторожевойпёс`` is 26 bytes); the
    leftover byte is decoded as the snapshot decodes comm, so the two compare equal.
    """
    return program.encode("utf-8", "surrogateescape")[:COMM_LENGTH].decode("utf-8", "surrogateescape")


def runs_program(snapshot: Snapshot, proc: Proc, program: str) -> bool:
    """Whether a process whose name was cut to 15 characters runs ``program``."""
    exe = snapshot.exe(proc.pid)
    if exe is not None and os.path.basename(exe.removesuffix(" (deleted)")) == program:
        return True
    argv = snapshot.cmdline(proc.pid) or []
    # A script's interpreter comes first: ``python3 /usr/bin/long-named-service``.
    return any(os.path.basename(arg) == program for arg in argv[:2])


def describe(rule: Rule) -> str:
    return f"a process named {rule.program!r}"


@hookimpl
def watchdog_matchers() -> list[Matcher]:
    return [Matcher("basename", match, describe)]
