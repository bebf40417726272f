"""Hostile or absurd input from every side: names, logs, environment, output, files, users."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from helpers import Watchdog, pids, program, wait_for

Start = Callable[..., Watchdog]
TIMESTAMPED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00 watchdog: ")


def run(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
        timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "watchdog", *args], cwd=tmp_path,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)


def assert_usage_error(failed: subprocess.CompletedProcess[str], message: str) -> None:
    assert failed.returncode == 2, failed.stderr
    assert failed.stderr.startswith("watchdog: ") and failed.stderr.count("\n") == 1, failed.stderr
    assert message in failed.stderr and "Traceback" not in failed.stderr, failed.stderr


# --- names and log lines cannot be forged ------------------------------------------


@pytest.mark.parametrize("name", ["web\n2026-01-01T00:00:00.000+00:00 watchdog: db: running",
                                  "web\tapp", "web\x1b[31m", "web\rdb", "web\u2028db"],
                         ids=["newline", "tab", "escape", "carriage-return", "line-separator"])
@pytest.mark.parametrize("where", ["flag", "file"])
def test_a_rule_name_with_a_control_character_is_a_usage_error(
    tmp_path: Path, name: str, where: str
) -> None:
    exe = program(tmp_path, "wd-named")
    if where == "flag":
        failed = run(tmp_path, "--rule", f"{name}={exe} 1000")
    else:
        (tmp_path / "w.toml").write_text(f'[rules.{json_string(name)}]\ncommand = "{exe} 1000"\n')
        failed = run(tmp_path, "--config", "w.toml")
    assert_usage_error(failed, "control characters such as newline, tab or escape are not allowed")
    assert pids("wd-named") == set()


def json_string(text: str) -> str:
    """A TOML basic string (TOML escapes as JSON does) holding ``text``."""
    return json.dumps(text)


def test_untrusted_text_in_the_log_cannot_forge_a_line(tmp_path: Path, watchdog: Start) -> None:
    forged = "\n2026-01-01T00:00:00.000+00:00 watchdog: db: running (pid 1)\x1b[2J"
    pidfile = str(tmp_path / f"svc.pid{forged}")
    healthy = program(tmp_path, "wd-healthy")
    wd = watchdog(str(program(tmp_path, "wd-pidsvc", "/bin/false")), f"{healthy} 1000",
                  "--pidfile", f"wd-pidsvc={pidfile}", "--backoff-max", "0.2")
    wd.wait_log("does not exist")
    wd.wait_log("wd-healthy: running")
    assert wd.stop() == 0
    lines = wd.log().splitlines()
    assert lines and all(TIMESTAMPED.match(line) for line in lines), lines
    assert "svc.pid\\n2026-01-01T00:00:00.000+00:00 watchdog: db: running (pid 1)\\x1b[2J" in wd.log()


def test_a_usage_error_quoting_untrusted_text_stays_one_line(tmp_path: Path) -> None:
    assert_usage_error(run(tmp_path, "--config", "no\nsuch\x1b[2J.toml"),
                       "--config no\\nsuch\\x1b[2J.toml: No such file")


# --- repeatable flags from the environment --------------------------------------------


@pytest.mark.parametrize("form", ["one-value", "quoted", "one-per-line"])
def test_repeatable_flags_from_the_environment_carry_values_with_spaces(
    tmp_path: Path, watchdog: Start, form: str
) -> None:
    web, db = program(tmp_path, "wd-env-web"), program(tmp_path, "wd-env-db")
    if form == "one-value":
        env = {"WATCHDOG_RULE": f"web={web} 1000", "WATCHDOG_REGEX": r"web=wd-env-web 1\d+$"}
        names = ["web"]
    elif form == "quoted":
        env = {"WATCHDOG_RULE": f"'web={web} 1000' \"db={db} 2000\"",
               "WATCHDOG_REGEX": r"'web=wd-env-web 1\d+$' 'db=wd-env-db 2\d+$'"}
        names = ["web", "db"]
    else:
        env = {"WATCHDOG_RULE": f"web={web} 1000\n  db={db} 2000\n",
               "WATCHDOG_REGEX": "web=wd-env-web 1\\d+$\ndb=wd-env-db 2\\d+$"}
        names = ["web", "db"]
    wd = watchdog(env=env)
    for name in names:
        wd.wait_log(f"{name}: running")
        assert f"{name}: missing: no command line matching 'wd-env-{name} " in wd.log()
    [pid] = wait_for(lambda: pids("wd-env-web"))
    assert psutil.Process(pid).cmdline() == [str(web), "1000"]
    assert wd.stop() == 0


def test_an_unbalanced_quote_in_an_environment_value_is_a_usage_error(tmp_path: Path) -> None:
    assert_usage_error(run(tmp_path, env={"WATCHDOG_RULE": "'web=sleep 1000"}),
                       "WATCHDOG_RULE: no closing quotation")
