from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from helpers import Watchdog


@pytest.fixture
def watchdog(tmp_path: Path) -> Iterator[Callable[..., Watchdog]]:
    """Start real watchdogs; kill them and every process under tmp_path afterwards."""
    started: list[Watchdog] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Watchdog:
        wd = Watchdog(list(args), tmp_path, env)
        started.append(wd)
        return wd

    yield start
    for wd in started:
        wd.kill_everything()
    kill_programs_under(tmp_path)
    # Every real run also checks the rule-run model: no change of state outside its arrows.
    for wd in started:
        assert "unexpected change of state" not in wd.log(), wd.log()


def kill_programs_under(path: Path) -> None:
    """Kill leftovers started from the test's own copies of programs."""
    for proc in psutil.process_iter(["exe", "cmdline"]):
        exe = proc.info["exe"] or ""
        cmdline = " ".join(proc.info["cmdline"] or [])
        if exe.startswith(str(path)) or str(path) in cmdline:
            if proc.pid != os.getpid():
                try:
                    proc.send_signal(signal.SIGKILL)
                except psutil.Error:
                    pass
