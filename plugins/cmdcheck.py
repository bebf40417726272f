"""The ``health_cmd`` plugin's check (not a plugin itself): one run of COMMAND, followed on the loop.

The plugin imports this module once a rule has ``--health-cmd``.
"""

from __future__ import annotations

import itertools
import os
import signal
from typing import TYPE_CHECKING

from watchdog import processes
from watchdog.health import Cancel, Done, Result, Target, seconds_text
from watchdog.launch import Launch
from watchdog.probetree import MARK, probe_processes

if TYPE_CHECKING:
    from watchdog.api import EngineAPI

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
