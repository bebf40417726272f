"""Check ``health_cmd``: ``--health-cmd NAME=COMMAND``, healthy when COMMAND exits 0.

COMMAND is split like the rule commands (no shell unless ``--shell``) and
runs in a session of its own, stdin from /dev/null, its output kept for the
log (the last line of a failure). It runs under a small ``/bin/sh`` that
waits for it and writes its exit status to a pipe: the watchdog reaps every
child it has (it is PID 1 or a subreaper), so the status must not depend
on reaping the command itself. At ``--health-timeout`` the command's whole
process group is killed. It runs as the rule's command does (``--user``,
``--env``, ``--directory``...: ``watchdog.launch``), as Docker's HEALTHCHECK
and Kubernetes' exec probes run inside the container as its user.
"""

from __future__ import annotations

import os
import selectors
import signal
import time
from dataclasses import dataclass, field

import click

from watchdog import hookimpl, processes
from watchdog.config import Config
from watchdog.health import Result, Target, add_probe, seconds_text
from watchdog.launch import Launch
from watchdog.rules import check_executable, split_command

FLAG = "--health-cmd"
# The command's output goes to the wrapper's stderr, its exit status to the wrapper's stdout.
WRAPPER = ["/bin/sh", "-c", '"$@" >&2; echo "$?"', "sh"]
OUTPUT_KEPT = 4096  # bytes of the command's output kept for the detail, as Docker keeps


@dataclass(frozen=True)
class CommandProbe:
    argv: tuple[str, ...]
    launch: Launch = field(default_factory=Launch, hash=False)  # the rule's

    def __call__(self, target: Target) -> Result:
        status_r, status_w = os.pipe()
        output_r, output_w = os.pipe()
        try:
            try:
                pid = processes.spawn([*WRAPPER, *self.argv], status_w, output_w, launch=self.launch)
            except OSError as exc:
                return Result(False, f"cannot run {self.argv[0]}: {exc.strerror or exc}")
            finally:
                os.close(status_w)
                os.close(output_w)
            status, output = collect(status_r, output_r, time.monotonic() + target.timeout)
            if status is None:
                processes.signal_group(pid, signal.SIGKILL)
                return Result(False, f"timed out after {seconds_text(target.timeout)}")
        finally:
            os.close(status_r)
            os.close(output_r)
        if not status.isdigit():
            return Result(False, "ended without an exit status")
        code = int(status)
        lines = output.decode(errors="replace").strip().splitlines()
        said = f": {lines[-1][:200]}" if lines and code else ""
        return Result(code == 0, f"exit {code}{said}")


def collect(status_r: int, output_r: int, deadline: float) -> tuple[str | None, bytes]:
    """The wrapper's status line (None at the deadline) and the command's output so far."""
    status, output = b"", b""
    with selectors.DefaultSelector() as selector:
        selector.register(status_r, selectors.EVENT_READ)
        selector.register(output_r, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None, output
            for key, _ in selector.select(left):
                chunk = os.read(key.fd, 65536)
                if key.fd == output_r:
                    if chunk:
                        output = (output + chunk)[-OUTPUT_KEPT:]
                    else:  # closed: only the status is still to come
                        selector.unregister(output_r)
                elif chunk:
                    status += chunk
                else:  # the wrapper is gone; what its command left open does not matter
                    return status.decode().strip(), output


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
