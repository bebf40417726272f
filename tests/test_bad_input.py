"""A catalogue of bad input, each with its expected outcome, and property-based parsing tests.

Every entry ends one of two ways: a usage error (exit 2, one line on stderr,
no traceback, nothing started), or a logged warning while another rule keeps
being served.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest
from helpers import Watchdog, pids, program, wait_for
from hypothesis import given
from hypothesis import strategies as st

from watchdog.configfile import read_config_file
from watchdog.rules import parse_signal, split_assignment, split_command

Start = Callable[..., Watchdog]


@dataclass
class Case:
    id: str
    args: list[str]  # {tmp} is the test's directory, {exe} a program that exists there
    message: str
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)


USAGE = [
    # command lines
    Case("no-command", [], "no command given"),
    Case("empty-command", [""], "empty command"),
    Case("blank-command", [" \t "], "empty command"),
    Case("unbalanced-single-quote", ["sleep 'x"], "no closing quotation"),
    Case("unbalanced-double-quote", ['sleep "x'], "no closing quotation"),
    Case("trailing-backslash", ["sleep \\"], "no escaped character"),
    Case("missing-program", ["/no/such/daemon -D"], "/no/such/daemon does not exist"),
    Case("not-executable", ["{tmp}/plain.txt"], "plain.txt is not executable",
         files={"plain.txt": "hello"}),
    Case("directory-as-program", ["{tmp}"], "is a directory"),
    Case("not-on-path", ["no-such-program-xyz"], "no-such-program-xyz is not found on PATH"),
    Case("same-name-twice", ["{exe} 1", "{exe} 2"], "two commands are named 'wd-cat'"),
    Case("rule-without-equals", ["--rule", "web"], "--rule 'web': expected NAME=VALUE"),
    Case("rule-name-taken", ["{exe} 1", "--rule", "wd-cat={exe} 2"], "two commands are named"),
    Case("two-rules-one-search", ["--rule", "a={exe} 1", "--rule", "b={exe} 2"],
         "rules 'a' and 'b' both look for a process named 'wd-cat'"),
    # flag values
    # durations beyond a week and sizes beyond 1024T: they overflowed the kernel's waits mid-run
    Case("interval-35-days", ["{exe}", "--interval", "3e6"], "'3e6' is more than 604800 (7 days) seconds"),
    Case("grace-1e308", ["{exe}", "--grace", "1e308"], "'1e308' is more than 604800 (7 days) seconds"),
    Case("backoff-max-huge", ["{exe}", "--backoff-max", "1e9"], "is more than 604800 (7 days) seconds"),
    Case("stable-after-huge", ["{exe}", "--stable-after", "1e9"], "is more than 604800 (7 days) seconds"),
    Case("health-timeout-1e308", ["{exe}", "--health-cmd", "wd-cat=true", "--health-timeout",
                                  "wd-cat=1e308"], "--health-timeout wd-cat=1e308: at most 604800 (7 days)"),
    Case("health-interval-huge", ["{exe}", "--health-cmd", "wd-cat=true", "--health-interval",
                                  "wd-cat=604801"], "at most 604800 (7 days) seconds"),
    Case("health-start-period-huge", ["{exe}", "--health-cmd", "wd-cat=true", "--health-start-period",
                                      "wd-cat=1e12"], "at most 604800 (7 days) seconds"),
    Case("watchdog-sec-huge", ["{exe}", "--notify", "wd-cat", "--watchdog-sec", "wd-cat=1e9"],
         "is more than 604800 (7 days) seconds"),
    Case("max-memory-huge", ["{exe}", "--max-memory", "wd-cat=2000T"], "at most 1024T"),
    Case("max-memory-infinite", ["{exe}", "--max-memory", "wd-cat=" + "9" * 400 + "M"], "at most 1024T"),
    Case("max-cpu-huge", ["{exe}", "--max-cpu", "wd-cat=1e9"], "at most 100000"),
    Case("interval-zero", ["{exe}", "--interval", "0"], "Invalid value for '--interval'"),
    Case("interval-negative", ["{exe}", "--interval", "-1"], "Invalid value for '--interval'"),
    Case("interval-word", ["{exe}", "--interval", "soon"], "Invalid value for '--interval'"),
    Case("interval-nan", ["{exe}", "--interval", "nan"], "not a finite number"),
    Case("interval-inf", ["{exe}", "--interval", "inf"], "not a finite number"),
    Case("grace-negative", ["{exe}", "--grace", "-3"], "Invalid value for '--grace'"),
    Case("stable-after-nan", ["{exe}", "--stable-after", "nan"], "not a finite number"),
    Case("max-restarts-negative", ["{exe}", "--max-restarts", "-1"], "--max-restarts"),
    Case("on-give-up-unknown", ["{exe}", "--on-give-up", "panic"], "--on-give-up"),
    Case("match-unknown", ["{exe}", "--match", "fuzzy"], "'fuzzy' is not one of"),
    Case("log-format-unknown", ["{exe}", "--log-format", "xml"], "--log-format"),
    Case("log-buffer-not-a-size", ["{exe}", "--log-buffer", "wd-cat=lots"], "'lots' is not a size"),
    Case("log-buffer-too-big", ["{exe}", "--log-buffer", "wd-cat=1G"], "more than the maximum, 64 MiB"),
    Case("log-max-bytes-no-file", ["{exe}", "--log-max-bytes", "wd-cat=1M"], "has no --log-file"),
    Case("log-backups-negative", ["{exe}", "--log-file", "wd-cat={tmp}/x.log", "--log-backups", "wd-cat=-1"],
         "not a number from 0 to 1000"),
    Case("log-stderr-unknown", ["{exe}", "--log-stderr", "wd-cat=null"], "give stdout"),
    Case("log-stderr-twice", ["{exe}", "--log-stderr", "wd-cat=stdout", "--log-file-stderr",
                              "wd-cat={tmp}/e.log"], "give one or the other"),
    Case("ready-log-bad-regex", ["{exe}", "--ready-log", "wd-cat=(unclosed"],
         "is not a regular expression"),
    Case("log-file-unknown-rule", ["{exe}", "--log-file", "nosuch={tmp}/x.log"], "no rule is named 'nosuch'"),
    Case("log-buffer-from-env", ["{exe}"], "'huge' is not a size",
         env={"WATCHDOG_LOG_BUFFER": "wd-cat=huge"}),
    Case("stop-signal-unknown", ["{exe}", "--stop-signal", "wd-cat=SIGFOO"], "not a signal name"),
    Case("stop-signal-zero", ["{exe}", "--stop-signal", "wd-cat=0"], "not a signal name"),
    Case("per-rule-flag-no-rule", ["{exe}", "--pidfile", "nginx=/run/nginx.pid"],
         "no rule is named 'nginx'"),
    Case("per-rule-flag-empty-value", ["{exe}", "--pidfile", "wd-cat="], "expected NAME=VALUE"),
    Case("two-matchers-one-rule", ["{exe}", "--regex", "wd-cat=x", "--pidfile", "wd-cat=/x"],
         "given both"),
    Case("once-and-check", ["{exe}", "--once", "--check"], "exclude each other"),
    Case("unknown-flag", ["{exe}", "--frobnicate"], "No such option"),
    Case("plugin-missing", ["-p", "no_such_plugin_module", "{exe}"], "cannot load plugin"),
    # regexes
    Case("regex-open-group", ["{exe}", "--regex", "wd-cat=("], "bad pattern"),
    Case("regex-open-class", ["{exe}", "--regex", "wd-cat=[a-"], "bad pattern"),
    Case("regex-nothing-to-repeat", ["{exe}", "--regex", "wd-cat=*x"], "bad pattern"),
    Case("regex-variable-lookbehind", ["{exe}", "--regex", "wd-cat=(?<=a+)b"], "bad pattern"),
    # config files
    Case("config-missing", ["--config", "{tmp}/none.toml"], "No such file"),
    Case("config-syntax", ["--config", "{tmp}/c.toml"], "(at line 2", files={"c.toml": "a = 1\nb =\n"}),
    Case("config-unknown-option", ["--config", "{tmp}/c.toml"], "c.toml:1: colour: unknown option",
         files={"c.toml": "colour = 'red'\n"}),
    Case("config-bad-value", ["--config", "{tmp}/c.toml"], "c.toml:1: grace:",
         files={"c.toml": "grace = 'long'\n"}),
    Case("config-rule-no-command", ["--config", "{tmp}/c.toml"], "every rule needs a command",
         files={"c.toml": "[rules.x]\nregex = 'x'\n"}),
    Case("config-rule-bad-regex", ["--config", "{tmp}/c.toml"], "c.toml:3: rules.x.regex:",
         files={"c.toml": "[rules.x]\ncommand = 'sleep 1'\nregex = '('\n"}),
    # environment variables
    Case("env-interval", ["{exe}"], "Invalid value for '--interval'", env={"WATCHDOG_INTERVAL": "x"}),
    Case("env-match", ["{exe}"], "'nope' is not one of", env={"WATCHDOG_MATCH": "nope"}),
    Case("env-grace-nan", ["{exe}"], "not a finite number", env={"WATCHDOG_GRACE": "nan"}),
    Case("env-max-restarts", ["{exe}"], "--max-restarts", env={"WATCHDOG_MAX_RESTARTS": "many"}),
    Case("env-config-missing", ["{exe}"], "No such file", env={"WATCHDOG_CONFIG": "/no/such.toml"}),
    Case("env-plugin-missing", ["{exe}"], "cannot load plugin", env={"WATCHDOG_PLUGIN": "no_such_mod"}),
    Case("env-regex-no-rule", ["{exe}"], "no rule is named 'x'", env={"WATCHDOG_REGEX": "x=y"}),
]

WARNINGS = [
    # pidfile contents: the rule is "not running", the reason logged, the other rule served
    Case("pidfile-empty", [], "svc.pid is empty", files={"svc.pid": ""}),
    Case("pidfile-garbage", [], "holds no pid", files={"svc.pid": "hello\n"}),
    Case("pidfile-negative", [], "holds no pid", files={"svc.pid": "-12\n"}),
    Case("pidfile-zero", [], "holds no pid", files={"svc.pid": "0\n"}),
    Case("pidfile-huge-number", [], "which is not running", files={"svc.pid": "99999999999\n"}),
    Case("pidfile-oversized", [], "too large for a pidfile", files={"svc.pid": "1\n" + "9" * 5000}),
    Case("pidfile-binary", [], "holds no pid", files={"svc.pid": "\x00\x01\x02"}),
    Case("pidfile-missing", [], "svc.pid does not exist"),
    # commands that misbehave after a good start
    Case("starter-leaves-nothing", [], "exited with status 0 and left no process"),
]


def materialize(case: Case, tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    for name, content in case.files.items():
        (tmp_path / name).write_text(content)
    exe = program(tmp_path, "wd-cat", "/bin/cat")
    args = [arg.format(tmp=tmp_path, exe=exe) for arg in case.args]
    return args, {**os.environ, **case.env}


@pytest.mark.parametrize("case", USAGE, ids=[case.id for case in USAGE])
def test_bad_input_is_a_usage_error(case: Case, tmp_path: Path) -> None:
    args, env = materialize(case, tmp_path)
    run = subprocess.run([sys.executable, "-m", "watchdog", *args], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("watchdog: ") and run.stderr.count("\n") == 1, run.stderr
    assert case.message in run.stderr
    assert pids("wd-cat") == set()  # nothing started


@pytest.mark.parametrize("case", WARNINGS, ids=[case.id for case in WARNINGS])
def test_bad_input_is_a_warning_and_other_rules_are_served(
    case: Case, tmp_path: Path, watchdog: Start
) -> None:
    materialize(case, tmp_path)
    healthy = program(tmp_path, "wd-healthy")
    if case.id == "starter-leaves-nothing":
        bad = [str(program(tmp_path, "wd-starter", "/bin/true"))]
    else:
        bad = [str(program(tmp_path, "wd-pidsvc", "/bin/false")),
               "--pidfile", f"wd-pidsvc={tmp_path / 'svc.pid'}"]
    wd = watchdog(*bad, f"{healthy} 1000", "--backoff-max", "0.2", "--interval", "0.2")
    wd.wait_log(case.message)
    [served] = wait_for(lambda: pids("wd-healthy"))
    os.kill(served, signal.SIGKILL)
    wait_for(lambda: pids("wd-healthy") - {served}, what="the healthy rule restarted")
    assert wd.stop() == 0
    assert "Traceback" not in wd.log()


def test_the_catalogue_holds_at_least_40_inputs() -> None:
    assert len(USAGE) + len(WARNINGS) >= 40


# --- properties -------------------------------------------------------------------

words = st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
                min_size=1, max_size=20)


@given(st.lists(words, min_size=1, max_size=6))
def test_a_quoted_command_splits_back_into_its_words(argv: list[str]) -> None:
    assert split_command(shlex.join(argv)) == argv


@given(st.text(max_size=60))
def test_splitting_any_text_gives_words_or_a_usage_error(text: str) -> None:
    try:
        result = split_command(text)
    except click.UsageError as exc:
        assert "\n" not in exc.message or "\n" in text
    else:
        assert result and all(isinstance(word, str) for word in result)


names = st.text(alphabet=st.characters(blacklist_characters="=\x00", blacklist_categories=("Cs",)),
                min_size=1, max_size=12).filter(lambda s: s.strip() != "")


@given(names, st.text(min_size=1, max_size=30))
def test_name_equals_value_parses_back(name: str, value: str) -> None:
    assert split_assignment("--regex", f"{name}={value}") == (name.strip(), value)


@given(st.text(max_size=40))
def test_any_name_equals_value_text_parses_or_is_a_usage_error(text: str) -> None:
    try:
        name, value = split_assignment("--pidfile", text)
    except click.UsageError as exc:
        assert exc.message.startswith("--pidfile ")
    else:
        assert name and value and text.partition("=")[2] == value


@given(st.text(max_size=12))
def test_any_signal_text_is_a_signal_or_a_usage_error(text: str) -> None:
    try:
        assert isinstance(parse_signal("--stop-signal", text), signal.Signals)
    except click.UsageError:
        pass


@given(text=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200))
def test_any_config_file_text_loads_or_is_a_usage_error(
    text: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("cfg") / "w.toml"
    path.write_text(text, encoding="utf-8")
    try:
        read_config_file(str(path))
    except click.UsageError:
        pass
