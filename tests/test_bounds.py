"""Values that overflowed, and control socket edges: each a clear answer, never a crash or a hang.

Durations and sizes beyond their maximum are usage errors (the catalogue in
test_bad_input.py); here: a wait weeks long, watchdogctl's own bounds, and
requests on the control socket that got a 500, a reset, a 10-second wait or
no answer at all.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import pytest
from helpers import PROGRAMS, Watchdog, pids, program, wait_for
from hypothesis import given
from hypothesis import strategies as st
from test_control import ctl, raw, socket_of, status_code

from watchdog.events import Waiter
from watchdog.rules import plain_command, split_command

Start = Callable[..., Watchdog]


def plugins_env(tmp_path: Path) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([str(PROGRAMS), os.environ.get("PYTHONPATH", "")]),
            "WD_SLOW_RELOAD_FILE": str(tmp_path / "slow-reload")}


@pytest.fixture
def served(tmp_path: Path, watchdog: Start) -> Iterator[tuple[Watchdog, Path, str]]:
    """A watchdog with one service, its control socket, and a reload a test can make slow."""
    exe = program(tmp_path, "wd-bd-svc")
    config = tmp_path / "watchdog.toml"
    config.write_text(f'[rules.wd-bd-svc]\ncommand = "{exe} 1000"\n')
    wd = watchdog("-p", "wd_slow_reload:SlowReload", "--config", str(config),
                  env=plugins_env(tmp_path))
    wd.wait_log("wd-bd-svc: running")
    sock = wait_for(lambda: socket_of(wd).exists() and socket_of(wd), what="the control socket")
    yield wd, sock, "wd-bd-svc"


def test_a_wait_longer_than_the_kernel_counts_does_not_overflow() -> None:
    # Flags stop at a week; a plugin's timer may be further off (35 days: 3e6 s is more
    # milliseconds than epoll's int holds). The wait is cut short and taken again.
    waiter = Waiter(use_pidfd=False)
    try:
        waiter.wake()
        began = time.monotonic()
        assert waiter.wait(3e6) == set()
        assert time.monotonic() - began < 5
    finally:
        waiter.close()


def test_watchdogctl_durations_have_a_maximum_too() -> None:
    for args in (["--timeout", "1e308", "status"], ["wait", "x", "--timeout", "3e6"],
                 ["start", "x", "--wait", "inf"]):
        run = subprocess.run([sys.executable, "-m", "watchdog.ctl", "--socket", "/nonexistent", *args],
                             capture_output=True, text=True, timeout=30)
        assert run.returncode == 2 and run.stderr.count("\n") == 1, run
        assert "604800 (7 days)" in run.stderr or "finite" in run.stderr, run.stderr


def test_a_content_length_of_unicode_digits_is_a_400_at_once(served: tuple[Watchdog, Path, str]) -> None:
    _, sock, _ = served
    began = time.monotonic()
    answer = raw(sock, b"POST /v1/stop HTTP/1.1\r\nContent-Length: \xb2\r\n\r\n{}")
    assert status_code(answer) == 400 and b"bad Content-Length" in answer
    assert time.monotonic() - began < 5  # not the 10 s request deadline
    assert "plugin" not in served[0].log()


def test_json_nested_too_deeply_is_a_400(served: tuple[Watchdog, Path, str]) -> None:
    _, sock, _ = served
    body = b"[" * 50_000
    answer = raw(sock, b"POST /v1/stop HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    assert status_code(answer) == 400 and b"nested too deeply" in answer, answer[:200]
    assert ctl(sock, "status").returncode == 0


def test_clients_beyond_the_limit_are_told_503_not_reset(served: tuple[Watchdog, Path, str]) -> None:
    wd, sock, name = served
    idle = []
    for _ in range(64):  # every place taken by a client that says nothing
        client = socket.socket(socket.AF_UNIX)
        client.connect(str(sock))
        idle.append(client)
    try:
        outcomes: list[str] = []
        lock = threading.Lock()

        def ask() -> None:
            # As an HTTP client does: connect, send the request at once, read the answer.
            try:
                answer = raw(sock, b"GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n", timeout=30)
                outcome = str(status_code(answer)) if answer else "empty"
            except OSError as exc:
                outcome = type(exc).__name__
            with lock:
                outcomes.append(outcome)

        threads = [threading.Thread(target=ask) for _ in range(40)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert outcomes == ["503"] * 40, outcomes
        # A silent client beyond the limit hears 503 too, without waiting for the request deadline.
        late = socket.socket(socket.AF_UNIX)
        late.settimeout(5)
        late.connect(str(sock))
        answer = late.recv(65536)
        late.close()
        assert status_code(answer) == 503 and b"busy: 64 clients already" in answer
    finally:
        for client in idle:
            client.close()
    assert wait_for(lambda: ctl(sock, "status").returncode == 0, what="status after the crowd")
    assert wd.proc.poll() is None


def test_a_reload_that_takes_longer_than_30s_still_gets_its_answer(
    served: tuple[Watchdog, Path, str], tmp_path: Path
) -> None:
    wd, sock, name = served
    (tmp_path / "slow-reload").write_text("33")
    config = tmp_path / "watchdog.toml"
    extra = program(tmp_path, "wd-bd-added")
    config.write_text(config.read_text() + f'[rules.wd-bd-added]\ncommand = "{extra} 1000"\n')
    began = time.monotonic()
    reloaded = ctl(sock, "reload", timeout=90)
    assert reloaded.returncode == 0, reloaded
    assert reloaded.stdout.splitlines() == ["added: wd-bd-added", f"unchanged: {name}"]
    assert time.monotonic() - began >= 33
    wait_for(lambda: pids("wd-bd-added"), what="the added rule's service")
    assert json.loads(ctl(sock, "status", "--json").stdout)["rules"][1]["name"] == "wd-bd-added"


@given(st.text(alphabet=st.sampled_from("ab /'\"\\\t\n\r\x0b\x0c\xa0\u2028#;$"), max_size=30))
def test_the_quick_split_of_commands_is_shlexs_split(text: str) -> None:
    # Loading 10,000 rules is linear and quick partly because plain commands skip shlex.
    try:
        expected = shlex.split(text)
    except ValueError:
        expected = None
    try:
        got = split_command(text)
    except click.UsageError:
        got = None
    assert got == (expected or None)


# What the quick split's test was before it became string methods (no regex compiled at start).
SHLEX_SPECIAL = re.compile(r"""['"\\]|[^\S \t\r\n]""")


def test_plain_commands_are_told_apart_as_the_pattern_did_for_every_character() -> None:
    differing = [hex(code) for code in range(sys.maxunicode + 1)
                 if plain_command(f"a{chr(code)}b") == bool(SHLEX_SPECIAL.search(f"a{chr(code)}b"))]
    assert differing == []


@given(st.text(alphabet=st.sampled_from("ab /'\"\\\t\n\r\x0b\x0c\x1c\x85\xa0\u2028\u3000#;$")))
def test_plain_commands_are_told_apart_as_the_pattern_did(text: str) -> None:
    assert plain_command(text) == (SHLEX_SPECIAL.search(text) is None)
