"""The exec probe (``watchdog --status``, ``watchdogctl status``): what a health check runs.

A HEALTHCHECK runs it every few seconds in every container, so its path must
not grow: the guard below fails when it imports anything but the standard
library and the watchdog's own lean modules, whichever option or plugin is
added to the full command later. Its speed is measured by
``tests/benchmarks/bench.py`` beside ``python -c pass``, never asserted here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import Watchdog, service, wait_for

Start = Callable[..., Watchdog]
# The programs as installed: the console scripts call these two functions.
WATCHDOG = [sys.executable, "-c", "from watchdog.execprobe import watchdog_main; watchdog_main()"]
WATCHDOGCTL = [sys.executable, "-c", "from watchdog.execprobe import watchdogctl_main; watchdogctl_main()"]
FULL_WATCHDOG = [sys.executable, "-c", "from watchdog.cli import main; main()"]
FULL_WATCHDOGCTL = [sys.executable, "-m", "watchdog.ctl"]
# Modules of the full commands that the probe must never need.
HEAVY = {"click", "pluggy", "psutil", "watchdog.engine", "watchdog.cli", "watchdog.ctl",
         "watchdog.manager", "watchdog.hooks", "watchdog.plugins",
         # and standard modules of several milliseconds each that a status query needs none of
         "logging", "dataclasses", "secrets", "tempfile", "subprocess", "watchdog.logs", "watchdog.state"}


@pytest.fixture
def running(tmp_path: Path, watchdog: Start) -> Iterator[tuple[Path, Path]]:
    """A watchdog with one running service: its status file and its control socket."""
    status_file = tmp_path / "status.json"
    exe = service(tmp_path, "wd-probe-svc")
    wd = watchdog(str(exe), "--status-file", str(status_file))
    wd.wait_log("wd-probe-svc: running")
    sock = tmp_path / "control.sock"
    wait_for(lambda: status_file.exists() and sock.exists(), what="the status file and the socket")
    yield status_file, sock


def run(argv: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*argv, *args], capture_output=True, text=True, timeout=60)


def imported(argv: list[str], *args: str, tmp: Path) -> set[str]:
    """Every module loaded when the command exits (``-c`` commands: their ``sys.modules``)."""
    assert argv[1] == "-c"
    out = tmp / "modules"
    record = ("import atexit, os, sys; atexit.register(lambda: open(os.environ['MODULES_OUT'], 'w')"
              ".write(chr(10).join(sys.modules)))\n")
    done = subprocess.run([argv[0], "-c", record + argv[2], *argv[3:], *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "MODULES_OUT": str(out)})
    names = set(out.read_text().split())
    assert names, done.stderr
    return names


def foreign(modules: set[str], baseline: set[str]) -> set[str]:
    """Modules neither of the standard library nor the watchdog's, beyond what start-up loads."""
    return {name for name in modules - baseline
            if name.split(".")[0] not in sys.stdlib_module_names and name.split(".")[0] != "watchdog"}


def test_the_exec_probe_imports_no_click_pluggy_psutil_or_engine(running: tuple[Path, Path],
                                                                   tmp_path: Path) -> None:
    status_file, sock = running
    baseline = imported([sys.executable, "-c", "pass"], tmp=tmp_path)
    for argv, args in (
        (WATCHDOG, ("--status", "--status-file", str(status_file))),
        (WATCHDOG, ("--status", "--json", f"--status-file={status_file}")),
        (WATCHDOGCTL, ("--socket", str(sock), "status")),
        (WATCHDOGCTL, (f"--socket={sock}", "--timeout", "5", "status", "--json", "wd-probe-svc")),
    ):
        modules = imported(argv, *args, tmp=tmp_path)
        assert not foreign(modules, baseline), (args, foreign(modules, baseline))
        assert not modules & HEAVY, (args, modules & HEAVY)
    # The guard sees the full command's imports when it is taken: it would catch them.
    assert {"click", "pluggy", "watchdog.engine"} <= imported(FULL_WATCHDOG, "--status", "--status-file",
                                                              str(status_file), tmp=tmp_path)


def test_the_probe_answers_as_the_full_command_does(running: tuple[Path, Path]) -> None:
    status_file, sock = running
    for args in (("--status",), ("--status", "--json")):
        lean = run(WATCHDOG, *args, "--status-file", str(status_file))
        full = run(FULL_WATCHDOG, *args, "--status-file", str(status_file))
        assert lean.returncode == full.returncode == 0, (lean.stderr, full.stderr)
        assert lean.stdout == full.stdout and "wd-probe-svc" in lean.stdout
    for args in (("status",), ("status", "--json", "wd-probe-svc")):
        lean = run(WATCHDOGCTL, "--socket", str(sock), *args)
        full = run(FULL_WATCHDOGCTL, "--socket", str(sock), *args)
        assert lean.returncode == full.returncode == 0, (lean.stderr, full.stderr)
        if "--json" in args:  # the "since" of the answer is the same, the order of keys too
            assert json.loads(lean.stdout)["rules"] == json.loads(full.stdout)["rules"]
        else:
            assert lean.stdout == full.stdout


def test_what_the_probe_does_not_answer_goes_to_the_full_command(running: tuple[Path, Path],
                                                                 tmp_path: Path) -> None:
    status_file, sock = running
    unknown = run(WATCHDOGCTL, "--socket", str(sock), "status", "wd-nothing")
    assert unknown.returncode == 4 and "no rule is named 'wd-nothing'" in unknown.stderr
    bad = run(WATCHDOG, "--status", "--bogus")
    assert bad.returncode == 2 and "--bogus" in bad.stderr and "Traceback" not in bad.stderr
    bad_timeout = run(WATCHDOGCTL, "--socket", str(sock), "--timeout", "-1", "status")
    assert bad_timeout.returncode == 2 and "Traceback" not in bad_timeout.stderr
    nothing = tmp_path / "none.json"
    for argv in (WATCHDOG, FULL_WATCHDOG):
        gone = run(argv, "--status", "--status-file", str(nothing))
        assert gone.returncode == 3 and f"no watchdog is running (status file {nothing})" in gone.stderr
    for argv in (WATCHDOGCTL, FULL_WATCHDOGCTL):
        gone = run(argv, "--socket", str(tmp_path / "none.sock"), "status")
        assert gone.returncode == 3 and "no watchdog is running (no one serves" in gone.stderr
