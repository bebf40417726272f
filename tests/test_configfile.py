"""``--config FILE``: the command line's model as TOML; flags override it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import Watchdog, pids, program, wait_for

Start = Callable[..., Watchdog]


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "watchdog", *args], cwd=tmp_path,
                          capture_output=True, text=True)


def test_rules_and_options_come_from_the_file(tmp_path: Path, watchdog: Start) -> None:
    exe = program(tmp_path, "wd-filed")
    config = tmp_path / "watchdog.toml"
    config.write_text(f'grace = 3\nlog-format = "json"\n\n[rules.filed]\ncommand = "{exe} 1000"\n'
                      f'regex = "wd-filed 1000"\nstop-signal = "INT"\n')
    wd = watchdog("--config", str(config))
    [pid] = wait_for(lambda: pids("wd-filed"))
    wd.wait_log('"rule": "filed", "event": "found"')
    assert wd.stop() == 0
    assert '"stopping every service (SIGTERM), grace 3.0s"' in wd.log()
    assert f'"pid": {pid}, "status": -2' in wd.log()  # SIGINT from the file


def test_flags_and_environment_override_the_file(tmp_path: Path, watchdog: Start) -> None:
    exe = program(tmp_path, "wd-override")
    config = tmp_path / "watchdog.toml"
    config.write_text(f'grace = 3\n[rules.over]\ncommand = "{exe} 1000"\nstop-signal = "INT"\n')
    wd = watchdog("--config", str(config), "--grace", "4", "--stop-signal", "over=TERM",
                  env={"WATCHDOG_LOG_FORMAT": "json"})
    [pid] = wait_for(lambda: pids("wd-override"))
    wd.wait_log('"event": "found"')
    assert wd.stop() == 0
    assert "grace 4.0s" in wd.log()
    assert f'"pid": {pid}, "status": -15' in wd.log()  # the flag's TERM, not the file's INT


def test_a_command_line_rule_replaces_the_file_rule_of_the_same_name(tmp_path: Path) -> None:
    exe = program(tmp_path, "wd-replaced")
    config = tmp_path / "watchdog.toml"
    config.write_text('[rules.wd-replaced]\ncommand = "/no/such/program"\n')
    checked = run(tmp_path, "--config", str(config), f"{exe} 1", "--check")
    assert checked.returncode == 1  # ran: the file's bad program was replaced
    assert checked.stdout == "missing: wd-replaced (no process named 'wd-replaced')\n"


@pytest.mark.parametrize(("content", "message"), [
    ("intervall = 2\n", "watchdog.toml:1: intervall: unknown option"),
    ("\n\ninterval = 'soon'\n", "watchdog.toml:3: interval: Invalid value for '--interval'"),
    ("regex = 'a=b'\n", "watchdog.toml:1: regex: unknown option (per-rule flags go in [rules.NAME]"),
    ("[rules.a]\ncommand = 'sleep 1'\nregex = '('\n", "watchdog.toml:3: rules.a.regex: --regex a=(: bad"),
    ("[rules.a]\ncommand = 'sleep 1'\nfoo = 1\n", "watchdog.toml:3: rules.a.foo: unknown key"),
    ("[rules.a]\nregex = 'x'\n", "watchdog.toml:1: rules.a.command: every rule needs a command"),
    ("[rules.a]\ncommand = ''\n", "watchdog.toml:2: rules.a.command: every rule needs a command"),
    ("[rules.a]\ncommand = 'sleep 1'\nstop-signal = 'NOPE'\n", "not a signal name or number"),
    ("[rules.a]\ncommand = 'sleep 1'\npidfile = true\n", "rules.a.pidfile: expected a string"),
    ("rules = 3\n", "watchdog.toml:1: rules: expected tables"),
    ("[rules.a\n", "Expected ']' at the end of a table declaration (at line 1"),
    ("interval = \n", "(at line 1"),
    ("plugins = ['x']\n", "watchdog.toml:1: plugins: unknown option"),
])
def test_a_bad_config_file_is_a_one_line_error_naming_file_line_and_key(
    tmp_path: Path, content: str, message: str
) -> None:
    (tmp_path / "watchdog.toml").write_text(content)
    failed = run(tmp_path, "--config", "watchdog.toml")
    assert failed.returncode == 2
    assert message in failed.stderr and failed.stderr.count("\n") == 1, failed.stderr


def test_a_missing_or_binary_config_file_is_a_usage_error(tmp_path: Path) -> None:
    assert "No such file" in run(tmp_path, "--config", "absent.toml").stderr
    (tmp_path / "binary.toml").write_bytes(b"\xff\xfe\x00")
    failed = run(tmp_path, "--config", "binary.toml")
    assert failed.returncode == 2 and "not UTF-8" in failed.stderr


def test_the_config_file_can_come_from_the_environment(tmp_path: Path, watchdog: Start) -> None:
    exe = program(tmp_path, "wd-envfile")
    (tmp_path / "w.toml").write_text(f'[rules.envfile]\ncommand = "{exe} 1000"\n')
    wd = watchdog(env={"WATCHDOG_CONFIG": str(tmp_path / "w.toml")})
    [pid] = wait_for(lambda: pids("wd-envfile"))
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: pids("wd-envfile") - {pid})
    assert wd.stop() == 0


@pytest.mark.parametrize(("kind", "message"), [
    ("nested", "nested too deeply (at most 32 levels)"),
    ("nested-parsable", "nested too deeply (at most 32 levels)"),
    ("dev-zero", "/dev/zero: not a regular file"),
    ("fifo", "not a regular file"),
    ("directory", "is a directory"),
    ("huge", "larger than 1024 KiB"),
])
def test_a_config_file_of_absurd_nesting_size_or_type_is_a_one_line_error(
    tmp_path: Path, kind: str, message: str
) -> None:
    path = tmp_path / "w.toml"
    if kind == "nested":
        path.write_text("a = " + "[" * 500 + "\n")
    elif kind == "nested-parsable":
        path.write_text("a = " + "[" * 40 + "]" * 40 + "\n")
    elif kind == "dev-zero":
        path = Path("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)  # nobody ever writes it: reading it would block for ever
    elif kind == "directory":
        path.mkdir()
    else:
        path.write_text("# padding\n" * 200_000)
    for args, env in ((["--config", str(path)], {}), ([], {"WATCHDOG_CONFIG": str(path)})):
        failed = subprocess.run([sys.executable, "-m", "watchdog", *args], cwd=tmp_path,
                                env={**os.environ, **env}, capture_output=True, text=True, timeout=20)
        assert failed.returncode == 2, failed.stderr
        assert failed.stderr.startswith("watchdog: ") and failed.stderr.count("\n") == 1, failed.stderr
        assert message in failed.stderr and "Traceback" not in failed.stderr
