"""Rules: one per command the watchdog keeps alive, built from the command line."""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from typing import Any

import click

from watchdog.escapes import has_control
from watchdog.launch import Launch

# Restart policies (--restart NAME=POLICY), in systemd's and Docker's words.
ALWAYS, ON_FAILURE, NO = "always", "on-failure", "no"
RESTART_POLICIES = (ALWAYS, ON_FAILURE, NO)

# What the watchdog passes on to services when it receives them (``docker kill -s HUP``).
FORWARDABLE_SIGNALS = (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH)


class Rule:
    """What to keep alive, and how to recognise it in the process table.

    ``settings`` holds per-rule values that plugins read from their flags (a
    regex, a pidfile path); ``state`` is scratch memory plugins keep between
    checks. Both are keyed by whatever the owning plugin chooses.
    """

    def __init__(
        self, name: str, command: str, argv: tuple[str, ...], program: str, strategy: str = "",
        stop_signal: signal.Signals = signal.SIGTERM,
        forward_signals: frozenset[signal.Signals] = frozenset(FORWARDABLE_SIGNALS),
        after: tuple[str, ...] = (), env: dict[str, str] | None = None, launch: Launch | None = None,
        grace: float | None = None, priority: int | None = None, autostart: bool = True,
        uid: int | None = None, restart: str = ALWAYS, success_exit: frozenset[int] = frozenset({0}),
        start_timeout: float | None = None, settings: dict[str, Any] | None = None,
        state: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.command = command
        self.argv = argv
        self.program = program
        self.strategy = strategy
        self.stop_signal = stop_signal
        self.forward_signals = forward_signals
        self.after = after  # rules that must be ready before this one starts (--after)
        self.env = {} if env is None else env  # set by the watchdog for it (NOTIFY_SOCKET...)
        # user, environment, directory, limits (watchdog.launch)
        self.launch = Launch() if launch is None else launch
        self.grace = grace  # its own --grace; None: the default for all
        self.priority = priority  # start order, low first; stop order reversed (--priority)
        self.autostart = autostart  # False: stopped until started by request (--autostart NAME=false)
        # The uid its processes run as (--user, else the watchdog's own): one of another uid, matched
        # by name, is not the rule's unless it descends from what the rule started (watchdog/ownership.py).
        self.uid = os.geteuid() if uid is None else uid
        self.restart = restart  # when its command ends by itself: start it again always, on failure, or no
        self.success_exit = success_exit  # statuses that count as success (128+N: signal N)
        self.start_timeout = start_timeout  # not ready this long after a start: the start failed
        self.settings: dict[str, Any] = {} if settings is None else settings
        self.state: dict[str, Any] = {} if state is None else state

    def __repr__(self) -> str:
        return f"Rule({self.name!r}, {self.command!r}, strategy={self.strategy!r})"


# What shlex treats specially: quotes and backslashes; and its blanks, the only
# whitespace it splits at (str.split splits at any).
SHLEX_QUOTING = frozenset("'\"\\")
SHLEX_BLANKS = frozenset(" \t\r\n")


def plain_command(command: str) -> bool:
    """No quote, no backslash, no whitespace but shlex's blanks: str.split gives shlex's words."""
    return not any(char in SHLEX_QUOTING or (char.isspace() and char not in SHLEX_BLANKS)
                   for char in command)


def split_command(command: str) -> list[str]:
    """Split ``command`` like a POSIX shell would, without running one."""
    if plain_command(command):  # the common case, ten times quicker than shlex
        words = command.split()
        if not words:
            raise click.UsageError("empty command: each argument must be a command line to run")
        return words
    import shlex  # here: the common command needs none (plain_command)

    try:
        words = shlex.split(command)
    except ValueError as exc:  # shlex says "No closing quotation"
        raise click.UsageError(f"command {command!r}: {str(exc).lower()}") from None
    if not words:
        raise click.UsageError("empty command: each argument must be a command line to run")
    return words


def make_rule(command: str, *, name: str | None = None, shell: bool = False,
              checked: set[str] | None = None) -> Rule:
    """Build the rule for one command line; its name defaults to the program's basename.

    ``checked`` holds the programs already found runnable by this start-up (or
    reload): thousands of rules of one program look it up once.
    """
    words = split_command(command)
    program = os.path.basename(words[0])
    if not program:
        raise click.UsageError(f"command {command!r}: the first word names no program")
    argv = ("/bin/sh", "-c", command) if shell else tuple(words)
    if not shell and (checked is None or words[0] not in checked):
        check_executable(words[0], command)
        if checked is not None:
            checked.add(words[0])
    return Rule(name=name or program, command=command, argv=argv, program=program)


def check_executable(program: str, command: str) -> None:
    """Fail at start-up, not at the first respawn, when a program cannot run."""
    if "/" in program:
        if os.path.isdir(program):
            raise click.UsageError(f"command {command!r}: {program} is a directory")
        if not os.path.isfile(program):
            raise click.UsageError(f"command {command!r}: {program} does not exist")
        if not os.access(program, os.X_OK):
            raise click.UsageError(f"command {command!r}: {program} is not executable")
    elif which(program) is None:
        raise click.UsageError(f"command {command!r}: {program} is not found on PATH")


def make_rules(
    commands: Sequence[str], named: Sequence[str], *, shell: bool, from_file: Sequence[str] = ()
) -> list[Rule]:
    """Rules for the positional commands, each ``--rule NAME=COMMAND``, then the config
    file's rules whose NAME the command line did not take."""
    checked: set[str] = set()
    rules = [make_rule(command, shell=shell, checked=checked) for command in commands]
    for name, command in (split_assignment("--rule", value) for value in named):
        rules.append(make_rule(command, name=name, shell=shell, checked=checked))
    taken = {rule.name for rule in rules}
    for name, command in (split_assignment("[rules]", value) for value in from_file):
        if name not in taken:
            rules.append(make_rule(command, name=name, shell=shell, checked=checked))
    if not rules:
        raise click.UsageError("no command given: try watchdog /usr/sbin/sshd '/etc/init.d/apache2 start'")
    seen: dict[str, Rule] = {}
    for rule in rules:
        check_name(rule)
        if rule.name in seen:
            raise click.UsageError(
                f"two commands are named {rule.name!r} ({seen[rule.name].command!r} and "
                f"{rule.command!r}); name one with --rule NAME=COMMAND"
            )
        seen[rule.name] = rule
    return rules


def check_name(rule: Rule) -> None:
    """A rule's name is printed as it is (log lines, ``--prefix`` labels, the status
    table): a newline in it would forge a line of its own, an escape sequence would
    drive the terminal."""
    if has_control(rule.name):
        raise click.UsageError(
            f"rule name {rule.name!r} (command {rule.command!r}): control characters such as "
            "newline, tab or escape are not allowed in a rule's name"
        )


def split_assignment(flag: str, value: str) -> tuple[str, str]:
    """Split a ``NAME=VALUE`` flag value; NAME is non-blank and VALUE is non-empty."""
    name, sep, rest = value.partition("=")
    if not sep or not name.strip() or not rest:
        raise click.UsageError(f"{flag} {value!r}: expected NAME=VALUE")
    return name.strip(), rest


def parse_signal(flag: str, text: str) -> signal.Signals:
    """A signal given as ``TERM``, ``SIGTERM`` or ``15``."""
    spelled = text.strip().upper()
    try:
        if spelled.isdigit():
            return signal.Signals(int(spelled))
        return signal.Signals[spelled if spelled.startswith("SIG") else "SIG" + spelled]
    except (KeyError, ValueError):
        raise click.UsageError(f"{flag}: {text!r} is not a signal name or number") from None


def parse_forwarded(flag: str, text: str) -> frozenset[signal.Signals]:
    """``HUP,USR1`` or ``none``: which of the forwardable signals a rule receives."""
    if text.strip().lower() == "none":
        return frozenset()
    chosen = {parse_signal(flag, word) for word in text.split(",") if word.strip()}
    wrong = sorted(sig.name for sig in chosen if sig not in FORWARDABLE_SIGNALS)
    if wrong or not chosen:
        allowed = ", ".join(sig.name.removeprefix("SIG") for sig in FORWARDABLE_SIGNALS)
        raise click.UsageError(f"{flag}: {text!r}: give some of {allowed}, or none")
    return frozenset(chosen)


def which(program: str) -> str | None:
    import shutil  # here: what it imports (compression modules) costs start-up 4 ms

    return shutil.which(program)
