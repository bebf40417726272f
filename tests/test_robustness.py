"""Hostile or absurd input from every side: names, logs, environment, output, files, users."""

from __future__ import annotations

import io
import json
import os
import re
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from helpers import CheckCounts, Watchdog, pids, program, service, wait_for

from watchdog import processes
from watchdog.events import Waiter
from watchdog.output import Capture

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


def test_check_prints_one_line_per_missing_rule_whatever_its_pidfile_path(tmp_path: Path) -> None:
    exe = program(tmp_path, "wd-checked")
    checked = run(tmp_path, str(exe), "--pidfile", f"wd-checked={tmp_path}/x.pid\nmissing: forged", "--check")
    assert checked.returncode == 1
    assert checked.stdout.count("\n") == 1 and "x.pid\\nmissing: forged" in checked.stdout, checked.stdout


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


# --- --prefix under a flood ------------------------------------------------------------

FLOOD_MIB = 64


def flooder(tmp_path: Path, name: str) -> Path:
    """A service that redraws a progress bar with carriage returns, FLOOD_MIB MiB without
    a newline, at a pace that keeps it writing for a couple of seconds."""
    path = tmp_path / name
    path.write_text(
        f"#!{sys.executable}\n"
        "import os, sys, time\n"
        "bar = b''.join(b'\\r%3d%% ' % (i % 100) + b'#' * 58 for i in range(8192))  # 512 KiB\n"
        f"for _ in range({FLOOD_MIB * 2}):\n"
        "    sys.stdout.buffer.write(bar)\n"
        "    sys.stdout.buffer.flush()\n"
        "    time.sleep(0.01)\n"
        "time.sleep(1000)\n"
    )
    path.chmod(0o755)
    return path


def test_prefix_relays_a_flood_without_newlines_in_pieces_and_stays_responsive(
    tmp_path: Path, watchdog: Start
) -> None:
    other = program(tmp_path, "wd-other")
    wd = watchdog(str(flooder(tmp_path, "wd-flood")), f"{other} 1000", "--prefix")
    [before] = wait_for(lambda: pids("wd-other"))
    # Relayed as it comes, in pieces: the log grows long before the first newline.
    wait_for(lambda: wd.log_path.stat().st_size > 4 << 20, 20, "the flood relayed in pieces")
    assert pids("wd-flood"), "still flooding"
    os.kill(before, 9)
    wait_for(lambda: pids("wd-other") - {before}, 3, "the other service restarted during the flood")
    wait_for(lambda: wd.log_path.stat().st_size > FLOOD_MIB << 20, 30, "the whole flood relayed")
    assert wd.stop() == 0
    pieces = [line for line in wd.log_path.read_bytes().split(b"\n") if line.startswith(b"wd-flood | ")]
    bodies = [piece.removeprefix(b"wd-flood | ") for piece in pieces]
    assert sum(map(len, bodies)) == FLOOD_MIB << 20  # nothing lost, nothing doubled
    assert max(map(len, bodies)) == 65536  # each piece at most 64 KiB, behind its prefix


def test_prefix_forgets_the_relays_of_services_that_ended() -> None:
    waiter = Waiter()
    sink = io.BytesIO()
    prefixer = Capture(waiter, ["echo"], sink, sink, prefix=True)
    try:
        for i in range(5):  # each start makes two pipes; each ends when its service does
            out, err, write_ends, _ = prefixer.pipes("echo")
            pid = processes.spawn(["echo", f"run {i}"], out, err)
            for fd in write_ends:
                os.close(fd)
            os.waitpid(pid, 0)
            wait_for(lambda: (waiter.wait(0.05), not prefixer.relays)[1], what="both pipes at end of file")
    finally:
        waiter.close()
    assert sink.getvalue().splitlines() == [f"echo | run {i}".encode() for i in range(5)]


def test_prefix_leaks_no_pipe_when_the_second_cannot_be_made() -> None:
    waiter = Waiter()
    prefixer = Capture(waiter, ["echo"], io.BytesIO(), io.BytesIO(), prefix=True)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    fillers: list[int] = []
    try:
        # Exactly two free descriptors: the first pipe can be made, the second cannot.
        highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
        resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 8, hard))
        try:
            while True:
                fillers.append(os.open("/dev/null", os.O_RDONLY))
        except OSError:
            pass
        os.close(fillers.pop())
        os.close(fillers.pop())
        with pytest.raises(OSError):
            prefixer.pipes("echo")
        assert prefixer.relays == []
        # The first pipe's two ends were given back (else: EMFILE here).
        fillers.append(os.open("/dev/null", os.O_RDONLY))
        fillers.append(os.open("/dev/null", os.O_RDONLY))
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        waiter.close()


# --- the status file ------------------------------------------------------------------


def fill(directory: Path) -> Path:
    """Fill the file system of ``directory`` to the last block; return the file that does."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a small tmpfs that can be filled")
def test_a_status_file_that_cannot_be_written_for_a_while_is_written_once_it_can(
    tmp_path: Path, watchdog: Start
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(run_dir)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        filler = fill(run_dir)
        status_file = run_dir / "status.json"
        exe = program(tmp_path, "wd-statused")
        wd = watchdog(f"{exe} 1000", "--status-file", str(status_file), "--interval", "0.1",
                      "--no-control-socket")
        wd.wait_log("cannot write the status file")
        wd.wait_log("wd-statused: running")
        [pid] = wait_for(lambda: pids("wd-statused"))
        os.kill(pid, 9)  # changes to write, and several checks that find the disk still full
        wait_for(lambda: pids("wd-statused") - {pid}, what="restarted")
        wait_for(lambda: wd.log().count("wd-statused: running") == 2, what="seen running again")
        assert sorted(path.name for path in run_dir.iterdir()) == ["filler"]  # no temporary left
        assert wd.log().count("cannot write the status file") == 1  # once per outage
        filler.unlink()  # the disk has room again
        wait_for(status_file.exists, what="the status file written at a later check")
        shown = subprocess.run([sys.executable, "-m", "watchdog", "--status", "--status-file",
                                str(status_file)], capture_output=True, text=True)
        assert shown.returncode == 0 and "wd-statused  running" in shown.stdout, shown.stdout
        assert "is written again" in wd.log()
        assert wd.stop() == 0
        assert list(run_dir.iterdir()) == []
    finally:
        subprocess.run(["umount", "-l", str(run_dir)], check=False)


# --- process names are cut at 15 bytes --------------------------------------------------


def running(path: Path) -> set[int]:
    """Live processes started as ``path``, read from /proc as bytes (psutil's name() would
    guess a longer name, and its decoding of a non-ASCII path depends on the locale)."""
    wanted = os.fsencode(path) + b"\0"
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                started_as = f.read().startswith(wanted)
            with open(f"/proc/{entry}/stat", "rb") as f:
                zombie = f.read().rpartition(b")")[2].split()[0] == b"Z"
        except OSError:
            continue
        if started_as and not zombie:
            found.add(int(entry))
    return found


@pytest.mark.parametrize("name", ["сторожевойпёс", "xсторожевойпёс"],
                         ids=["cut-inside-a-letter", "cut-between-letters"])
def test_a_non_ascii_name_longer_than_15_bytes_matches(tmp_path: Path, watchdog: Start, name: str) -> None:
    exe = program(tmp_path, name)
    wd = watchdog(f"{exe} 1000")
    [pid] = wait_for(lambda: running(exe), what="started")
    comm = Path(f"/proc/{pid}/comm").read_bytes().rstrip(b"\n")
    assert comm == name.encode()[:15] and len(name.encode()) > 15  # what the kernel keeps
    wd.wait_log(f"{name}: running (pid {pid})")
    os.kill(pid, 9)
    wait_for(lambda: running(exe) - {pid}, what="restarted")
    wd.wait_log(f"{name}: running (pid {(running(exe) - {pid}).pop()})")
    assert len(running(exe)) == 1
    assert wd.stop() == 0


# --- a pidfile that turns untrusted mid-run ----------------------------------------------


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_a_daemon_stays_matched_when_its_pidfile_turns_untrusted(
    tmp_path: Path, watchdog: Start, kind: str
) -> None:
    pidfile = tmp_path / "daemon.pid"
    daemon = service(tmp_path, "wd-pidd", "--daemon", "--pidfile", str(pidfile))
    counts = CheckCounts(tmp_path)
    wd = watchdog(str(daemon), "--pidfile", f"wd-pidd={pidfile}", "--interval", "0.1", *counts.args,
                  env=counts.env())
    [pid] = wait_for(lambda: pids("wd-pidd"), what="the daemon")
    wd.wait_log(f"wd-pidd: running (pid {pid})")
    replacement = tmp_path / "replacement"
    if kind == "symlink":
        (tmp_path / "copy.pid").write_text(f"{pid}\n")
        replacement.symlink_to(tmp_path / "copy.pid")
    else:
        os.mkfifo(replacement)
    replacement.rename(pidfile)
    wd.wait_log(f"keeping pid {pid}, matched earlier and still running")
    assert "warning: wd-pidd:" in wd.log()
    counts.wait(10)  # none of them may start a second daemon
    assert pids("wd-pidd") == {pid}, wd.log()
    assert wd.log().count("wd-pidd: started") == 1
    os.kill(pid, 9)  # the daemon it kept is gone: now it is missing, and started again
    [again] = wait_for(lambda: pids("wd-pidd") - {pid}, what="a new daemon")
    wd.wait_log(f"wd-pidd: running (pid {again})")
    assert wd.stop() == 0


# --- rules that cannot be told apart ---------------------------------------------------------


def test_two_rules_whose_matchers_cannot_tell_them_apart_are_a_usage_error(
    tmp_path: Path, watchdog: Start
) -> None:
    for script in ("server.py", "worker.py"):
        (tmp_path / script).write_text("import time\ntime.sleep(1000)\n")
    python = sys.executable
    failed = run(tmp_path, "--rule", f"web={python} server.py", "--rule", f"worker={python} worker.py")
    assert_usage_error(failed, "rules 'web' and 'worker' both look for a process named "
                               f"{os.path.basename(python)!r}")
    assert "--regex web=PATTERN and --regex worker=PATTERN" in failed.stderr
    assert "--pidfile web=PATH and --pidfile worker=PATH" in failed.stderr
    # A disabled matcher is not offered.
    without = run(tmp_path, "--disable", "pidfile", "--rule", f"web={python} server.py",
                  "--rule", f"worker={python} worker.py")
    assert_usage_error(without, "tell them apart with --regex web=PATTERN and --regex worker=PATTERN")
    assert "--pidfile" not in without.stderr
    # Told apart, both run, each its own.
    wd = watchdog("--rule", f"web={python} server.py", "--rule", f"worker={python} worker.py",
                  "--regex", "web=server\\.py$", "--regex", "worker=worker\\.py$")
    wd.wait_log("web: running")
    wd.wait_log("worker: running")
    assert wd.stop() == 0
