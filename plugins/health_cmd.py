"""Check ``health_cmd``: ``--health-cmd NAME=COMMAND``, healthy when COMMAND exits 0.

COMMAND is split like the rule commands (no shell unless ``--shell``) and
runs in a session of its own, stdin from /dev/null, its output kept for the
log (the last line of a failure). The check runs on the loop: the command is
a child whose exit the engine reports (``engine.watch_child``), its output a
pipe the loop reads, ``--health-timeout`` a timer. It runs as the rule's
command does (``--user``, ``--env``, ``--directory``...: ``watchdog.launch``),
as Docker's HEALTHCHECK and Kubernetes' exec probes run inside the container
as its user.

When the check ends (the command exited, timed out, or the rule stopped),
whatever the command left running is killed: its process group, and what left
the group but carries the probe's mark (``watchdog.probetree``). A check does
not leave daemons behind; a command meant to start one belongs in a rule.
"""

from __future__ import annotations

import itertools
import os
import signal
from typing import TYPE_CHECKING

import click

from watchdog import hookimpl, processes
from watchdog.config import Config
from watchdog.health import Cancel, Done, Result, Target, add_probe, seconds_text
from watchdog.launch import Launch
from watchdog.probetree import MARK, probe_processes
from watchdog.rules import check_executable, split_command

if TYPE_CHECKING:
    from watchdog.api import EngineAPI

FLAG = "--health-cmd"
OUTPUT_KEPT = 4096  # bytes of the command's output kept for the detail, as Docker keeps


class CommandProbe:
    """COMMAND exits 0 (one made for the rule's run)."""

    def __init__(self, argv: tuple[str, ...], launch: Launch | None = None) -> None:
        self.argv = argv
        self.launch = launch or Launch()  # the rule's user, environment, directory...
        self.runs = itertools.count()

    def start(self, target: Target, engine: EngineAPI, done: Done) -> Cancel:
        token = f"{os.getpid()}.{id(self):x}.{next(self.runs)}"  # one run of this probe
        return CommandCheck(self.argv, self.launch, token, target.timeout, engine, done).cancel


class CommandCheck:
    """One run of the command, followed on the loop until it ends or the timer fires."""

    def __init__(self, argv: tuple[str, ...], launch: Launch, token: str, timeout: float,
                 engine: EngineAPI, done: Done) -> None:
        self.argv = argv
        self.token = token
        self.timeout = timeout
        self.engine = engine
        self.done = done
        self.finished = False
        self.output = b""
        self.pid: int | None = None
        self.timer = None
        self.output_r: int | None = None
        output_r, output_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            self.pid = processes.spawn(argv, output_w, output_w, {MARK: token}, launch=launch)
        except OSError as exc:
            os.close(output_r)
            self.end(Result(False, f"cannot run {argv[0]}: {exc.strerror or exc}"))
            return
        finally:
            os.close(output_w)  # the command holds it now: EOF comes when all of it is done
        self.output_r = output_r
        engine.add_reader(output_r, self.read)
        engine.watch_child(self.pid, self.exited)
        self.timer = engine.call_later(timeout, self.timed_out)

    def read(self) -> None:
        if self.output_r is None:
            return
        while True:
            try:
                chunk = os.read(self.output_r, 65536)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:  # every writer is gone
                self.close_output()
                return
            self.output = (self.output + chunk)[-OUTPUT_KEPT:]

    def exited(self, returncode: int) -> None:
        if self.finished:
            return
        self.read()  # what it wrote before it ended; what its leftovers hold open does not matter
        lines = self.output.decode(errors="replace").strip().splitlines()
        said = f": {lines[-1][:200]}" if lines and returncode else ""
        if returncode < 0:
            self.end(Result(False, f"killed by {signal_name(-returncode)}{said}"))
        else:
            self.end(Result(returncode == 0, f"exit {returncode}{said}"))

    def timed_out(self) -> None:
        self.end(Result(False, f"timed out after {seconds_text(self.timeout)}"))

    def end(self, result: Result) -> None:
        if not self.finished:
            self.cancel()
            self.done(result)

    def cancel(self) -> None:
        """Stop following it and kill what is left of it."""
        self.finished = True
        if self.timer is not None:
            self.timer.cancel()
        self.close_output()
        if self.pid is not None:
            processes.signal_group(self.pid, signal.SIGKILL)
            processes.kill_each(probe_processes(self.pid, self.token), signal.SIGKILL)

    def close_output(self) -> None:
        if self.output_r is not None:
            self.engine.remove_reader(self.output_r)
            os.close(self.output_r)
            self.output_r = None


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


@hookimpl
def watchdog_add_options() -> list[click.Option]:
    return [click.Option([FLAG], multiple=True, metavar="NAME=COMMAND",
                         help="Health check of rule NAME: COMMAND exits 0 (split like the rule "
                              "commands; /bin/sh -c with --shell).")]


@hookimpl
def watchdog_configure(config: Config) -> None:
    shell = bool(config.options.get("shell"))
    for rule, text in config.per_rule(FLAG, config.options.get("health_cmd") or ()):
        try:
            words = split_command(text)
            if not shell:
                check_executable(words[0], text)
        except click.UsageError as exc:
            raise click.UsageError(f"{FLAG} {rule.name}={text}: {exc.message}") from None
        add_probe(rule, CommandProbe(("/bin/sh", "-c", text) if shell else tuple(words), rule.launch))
