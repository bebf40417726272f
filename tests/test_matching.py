"""Matchers and the snapshot, against real processes in the real process table."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from conftest import kill_programs_under
from helpers import PROGRAMS, empty_command_line, program, wait_for

from watchdog.config import Config
from watchdog.manager import make_plugin_manager
from watchdog.matchers import Matchers
from watchdog.rules import Rule, make_rule
from watchdog.snapshot import CommandLineCache, is_watchdog_argv, take_snapshot

pm = make_plugin_manager()
matchers = Matchers.of(pm)


def configured(*commands: str, match: str = "basename", **flags: list[str]) -> list[Rule]:
    rules = [make_rule(command) for command in commands]
    config = Config(rules=rules, options={"regex": (), "pidfile": (), **flags})
    matchers.configure(config, match)
    pm.hook.watchdog_configure(config=config)
    return rules


def matched(rule: Rule) -> set[int]:
    return {proc.pid for proc in matchers.match(rule, take_snapshot())}


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        proc.terminate()
        proc.wait()
    kill_programs_under(tmp_path)


def start(procs: list[subprocess.Popen[bytes]], argv: list[str], **kw: object) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(argv, **kw)  # type: ignore[call-overload]
    procs.append(proc)
    parent = psutil.Process().cmdline()
    # Mid-exec, the kernel shows an empty command line before the new one.
    wait_for(lambda: psutil.Process(proc.pid).cmdline() not in ([], parent), what="exec")
    return proc


# --- basename ---------------------------------------------------------------------


def test_basename_matches_the_process_named_after_the_program(tmp_path: Path, spawn: list) -> None:
    exe = program(tmp_path, "wd-plain")
    [rule] = configured(f"{exe} 1000")
    assert matched(rule) == set()
    proc = start(spawn, [str(exe), "1000"])
    assert matched(rule) == {proc.pid}


def test_basename_is_literal_whole_name_not_a_pattern_or_substring(tmp_path: Path, spawn: list) -> None:
    for name in ("wd-c++", "wd-node.js", "wd-scp"):
        start(spawn, [str(program(tmp_path, name)), "1000"])
    program(tmp_path, "wd-cp")
    program(tmp_path, "wd-.*")
    plus, dot, cp, star = configured(
        f"{tmp_path}/wd-c++ 1", f"{tmp_path}/wd-node.js 1", f"{tmp_path}/wd-cp 1",
        f"'{tmp_path}/wd-.*' 1",
    )
    assert len(matched(plus)) == 1  # '+' is not a regex quantifier here
    assert len(matched(dot)) == 1
    assert matched(cp) == set()  # wd-scp is running, wd-cp is not
    assert matched(star) == set()  # '.*' is a name, not "anything"


def test_a_command_line_that_merely_contains_the_name_does_not_count(tmp_path: Path, spawn: list) -> None:
    exe = program(tmp_path, "wd-apache2")
    start(spawn, [sys.executable, "-c", "import time; time.sleep(1000)", "# wd-apache2", str(exe)])
    start(spawn, ["sleep", "1000"], cwd=tmp_path)
    [rule] = configured(f"{exe} -k start")
    assert matched(rule) == set()


def test_a_name_longer_than_15_characters_still_matches(tmp_path: Path, spawn: list) -> None:
    long_name = "wd-a-rather-long-service-name"
    exe = program(tmp_path, long_name)
    proc = start(spawn, [str(exe), "1000"])
    assert psutil.Process(proc.pid).name() != long_name[:15] or True  # the kernel keeps 15 chars
    assert open(f"/proc/{proc.pid}/comm").read().strip() == long_name[:15]
    [rule] = configured(f"{exe} 1000")
    assert matched(rule) == {proc.pid}
    # Another program sharing the first 15 characters is not this one.
    other = program(tmp_path, long_name[:15] + "-other")
    start(spawn, [str(other), "1000"])
    assert matched(rule) == {proc.pid}


def test_a_program_that_rewrites_its_command_line_still_matches(tmp_path: Path, spawn: list) -> None:
    exe = program(tmp_path, "wd-sshd")
    # What sshd does to its title: argv no longer starts with the program.
    title = "wd-sshd: /usr/sbin/sshd [listener] 0 of 10-100 startups"
    proc = start(spawn, ["bash", "-c", f'exec -a "{title}" {exe} 1000'])
    wait_for(lambda: psutil.Process(proc.pid).name() == "wd-sshd", what="exec")
    assert psutil.Process(proc.pid).cmdline()[0] == title
    [rule] = configured(str(exe))
    assert matched(rule) == {proc.pid}


def test_a_zombie_with_the_name_never_counts(tmp_path: Path, spawn: list) -> None:
    exe = program(tmp_path, "wd-zombie", "/bin/true")
    parent = start(spawn, [sys.executable, str(PROGRAMS / "zombie_parent.py"), str(exe)])
    zombie = wait_for(lambda: [c for c in psutil.Process(parent.pid).children()
                               if c.status() == psutil.STATUS_ZOMBIE], what="a zombie")
    assert zombie[0].name() == "wd-zombie"
    [rule] = configured(str(exe))
    assert matched(rule) == set()


# --- regex ------------------------------------------------------------------------


def test_regex_searches_the_whole_command_line(tmp_path: Path, spawn: list) -> None:
    exe = program(tmp_path, "wd-worker")
    proc = start(spawn, [str(exe), "1000"])
    start(spawn, [str(exe), "2000"])
    [rule] = configured(f"{exe} 1000", regex=["wd-worker=wd-worker 1000$"])
    assert rule.strategy == "regex"
    assert matched(rule) == {proc.pid}


def test_regex_default_pattern_is_the_command_as_written(tmp_path: Path, spawn: list) -> None:
    exe = program(tmp_path, "wd-regex-default")
    proc = start(spawn, [str(exe), "1000"])
    [rule] = configured(f"{exe} 1000", match="regex")
    [other] = configured(f"{exe} 999", match="regex")
    assert matched(rule) == {proc.pid}
    assert matched(other) == set()


def test_regex_never_matches_kernel_threads_or_the_watchdog_itself(tmp_path: Path, spawn: list) -> None:
    # A container may hold nothing but this test and its ancestors (all excluded) and,
    # in a PID namespace, no kernel threads: so a process of our own that "^" must
    # match, and one whose command line is empty as a kernel thread's is.
    other = start(spawn, [str(program(tmp_path, "wd-other")), "1000"])
    with empty_command_line() as blank:
        [rule] = configured(f"{program(tmp_path, 'wd-anything')} 1", regex=["wd-anything=^"])
        found = matched(rule)
    kernel_threads = {p.pid for p in psutil.process_iter(["cmdline"]) if not p.info["cmdline"]}
    assert other.pid in found
    assert blank.pid not in found
    assert not found & kernel_threads
    assert os.getpid() not in found  # we are this "watchdog"'s process and its ancestors


# --- pidfile ----------------------------------------------------------------------


def test_pidfile_matches_the_process_that_wrote_it(tmp_path: Path, spawn: list) -> None:
    pidfile = tmp_path / "svc.pid"
    proc = start(spawn, [str(program(tmp_path, "wd-pid")), "1000"])
    wait_for(lambda: psutil.Process(proc.pid).name() == "wd-pid", what="its exec")
    pidfile.write_text(f"{proc.pid}\n")
    [rule] = configured(f"{tmp_path}/wd-pid 1000", pidfile=[f"wd-pid={pidfile}"])
    assert matched(rule) == {proc.pid}


@pytest.mark.parametrize("content", ["", "\n", "garbage\n", "-5\n", "0\n", "12x\n", "99999999\n"])
def test_pidfile_with_bad_content_means_not_running(tmp_path: Path, content: str) -> None:
    pidfile = tmp_path / "svc.pid"
    pidfile.write_text(content)
    [rule] = configured(f"{program(tmp_path, 'wd-bad')} 1", pidfile=[f"wd-bad={pidfile}"])
    assert matched(rule) == set()


def test_pidfile_missing_or_a_directory_means_not_running(tmp_path: Path) -> None:
    [rule] = configured(f"{program(tmp_path, 'wd-nofile')} 1",
                        pidfile=[f"wd-nofile={tmp_path}/absent.pid"])
    assert matched(rule) == set()
    [rule] = configured(f"{program(tmp_path, 'wd-dir')} 1", pidfile=[f"wd-dir={tmp_path}"])
    assert matched(rule) == set()


def test_a_reused_pid_in_a_stale_pidfile_is_not_the_service(tmp_path: Path, spawn: list) -> None:
    # The file was written an hour ago; the process with that pid started now.
    proc = start(spawn, [str(program(tmp_path, "wd-reused")), "1000"])
    pidfile = tmp_path / "svc.pid"
    pidfile.write_text(f"{proc.pid}\n")
    an_hour_ago = time.time() - 3600
    os.utime(pidfile, (an_hour_ago, an_hour_ago))
    [rule] = configured(f"{tmp_path}/wd-reused 1", pidfile=[f"wd-reused={pidfile}"])
    assert matched(rule) == set()


def test_pidfile_pointing_at_a_zombie_means_not_running(tmp_path: Path, spawn: list) -> None:
    exe = program(tmp_path, "wd-pz", "/bin/true")
    parent = start(spawn, [sys.executable, str(PROGRAMS / "zombie_parent.py"), str(exe)])
    [zombie] = wait_for(lambda: [c for c in psutil.Process(parent.pid).children()
                                 if c.status() == psutil.STATUS_ZOMBIE], what="a zombie")
    pidfile = tmp_path / "z.pid"
    pidfile.write_text(f"{zombie.pid}\n")
    [rule] = configured(str(exe), pidfile=[f"wd-pz={pidfile}"])
    assert matched(rule) == set()


# --- who is a watchdog ------------------------------------------------------------


@pytest.mark.parametrize(("argv", "expected"), [
    (["/usr/bin/python3", "/usr/local/bin/watchdog", "sshd"], True),
    (["python3", "-m", "watchdog", "sshd"], True),
    (["python3.11", "-u", "-m", "watchdog"], True),
    (["/usr/sbin/watchdog", "-F"], False),  # the kernel watchdog daemon is a service
    (["python3", "/srv/app.py", "watchdog"], False),
    (["python3"], False),
    ([], False),
])
def test_who_counts_as_a_watchdog(argv: list[str], expected: bool) -> None:
    assert is_watchdog_argv(argv) is expected


def test_another_watchdog_process_never_matches(tmp_path: Path, spawn: list) -> None:
    exe = program(tmp_path, "wd-other")
    other = start(spawn, [sys.executable, "-m", "watchdog", f"{exe} 1000", "--regex",
                          "wd-other=wd-other"], cwd=tmp_path, stderr=subprocess.DEVNULL)
    child = wait_for(lambda: [c.pid for c in psutil.Process(other.pid).children()
                              if c.name() == "wd-other"], what="its service")
    [rule] = configured(f"{exe} 1000", regex=["wd-other=wd-other"])
    assert matched(rule) == set(child)  # the service, not the watchdog whose argv says wd-other


def test_a_command_line_longer_than_a_page_is_read_whole(tmp_path: Path, spawn: list) -> None:
    shell = program(tmp_path, "wd-longargs", "/bin/sh")
    filler = "x" * 20000
    proc = start(spawn, [str(shell), "-c", "sleep 1000; :", filler, "needle-at-the-end"])
    # Until its fork has exec'd sleep, the shell's child carries the same command line.
    wait_for(lambda: [c for c in psutil.Process(proc.pid).children() if c.name() == "sleep"],
             what="the shell's sleep")
    [rule] = configured(f"{shell} -c true", regex=["wd-longargs=x{20000} needle-at-the-end$"])
    assert matched(rule) == {proc.pid}


def test_an_empty_command_line_is_read_again_at_the_next_check() -> None:
    # In the middle of an exec the kernel shows the new name with no arguments yet;
    # kept for an interval, that empty read would hide the service from its regex rule.
    with empty_command_line() as blank:
        cache = CommandLineCache(ttl=60)
        time.sleep(CommandLineCache.MIN_AGE + 0.05)  # old enough to be kept
        assert take_snapshot(cache=cache).cmdline(blank.pid) == []
        blank.send_signal(signal.SIGUSR1)
        assert blank.stdout is not None and blank.stdout.readline().strip() == "restored"
        argv = take_snapshot(cache=cache).cmdline(blank.pid)
        assert argv == [sys.executable, str(PROGRAMS / "empty_cmdline.py")]


def test_cached_command_lines_follow_an_exec_and_only_outlive_one_interval(
    tmp_path: Path, spawn: list
) -> None:
    shell = program(tmp_path, "wd-title", "/bin/bash")
    proc = start(spawn, [str(shell), "-c", "sleep 1.3; exec -a wd-title-renamed sleep 1000", "first"])
    cache = CommandLineCache(ttl=60)
    time.sleep(1.05)  # old enough to be cached
    assert take_snapshot(cache=cache).cmdline(proc.pid)[-1] == "first"
    # exec changes the name (sh -> sleep), so the cached line is not used again
    wait_for(lambda: psutil.Process(proc.pid).name() == "sleep", what="the exec")
    assert take_snapshot(cache=cache).cmdline(proc.pid) == ["wd-title-renamed", "1000"]
    short = CommandLineCache(ttl=0.0)
    short.put(take_snapshot().get(proc.pid), b"stale\0", time.monotonic() - 1, uptime=1e9)
    assert take_snapshot(cache=short).cmdline(proc.pid) == ["wd-title-renamed", "1000"]
