"""Pidfile safety, races in the process table, and running without root."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from helpers import Watchdog, empty_command_line, pids, program, wait_for

from watchdog.snapshot import take_snapshot

Start = Callable[..., Watchdog]
NOBODY = 65534


@pytest.fixture
def bystander(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated live process that a bad pidfile might name."""
    proc = subprocess.Popen([str(program(tmp_path, "wd-bystander")), "1000"])
    wait_for(lambda: psutil.Process(proc.pid).name() == "wd-bystander", what="exec")
    yield proc
    proc.kill()
    proc.wait()


def backdate(path: Path, seconds: float = 3600) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then), follow_symlinks=False)


def test_a_pidfile_naming_an_unrelated_process_is_not_running_and_it_is_never_signalled(
    tmp_path: Path, watchdog: Start, bystander: subprocess.Popen[bytes]
) -> None:
    pidfile = tmp_path / "svc.pid"
    pidfile.write_text(f"{bystander.pid}\n")
    backdate(pidfile)  # written long before the bystander started: a reused pid
    exe = program(tmp_path, "wd-service", "/bin/false")
    # --scope host: the bystander is no descendant of the watchdog, which would settle it.
    wd = watchdog(str(exe), "--pidfile", f"wd-service={pidfile}", "--backoff-max", "0.1", "--scope", "host")
    wd.wait_log("a reused pid, not the service")
    wd.proc.send_signal(signal.SIGHUP)  # forwarded to managed processes only
    time.sleep(0.3)
    assert wd.stop() == 0
    assert bystander.poll() is None  # neither HUP nor TERM reached it


@pytest.mark.parametrize("kind", ["symlink", "directory", "huge", "fifo"])
def test_a_pidfile_that_is_not_a_plain_small_file_is_a_warning(
    tmp_path: Path, watchdog: Start, bystander: subprocess.Popen[bytes], kind: str
) -> None:
    pidfile = tmp_path / "svc.pid"
    if kind == "symlink":
        real = tmp_path / "real.pid"
        real.write_text(f"{bystander.pid}\n")
        pidfile.symlink_to(real)
        expected = "is a symlink: not followed"
    elif kind == "directory":
        pidfile.mkdir()
        expected = "is a directory, not a pidfile"
    elif kind == "huge":
        pidfile.write_text(f"{bystander.pid}\n" + "0" * 100_000)
        expected = "too large for a pidfile"
    else:
        os.mkfifo(pidfile)
        expected = "is not a regular file"
    other = program(tmp_path, "wd-served")
    wd = watchdog(f"{program(tmp_path, 'wd-pidsvc', '/bin/false')}", f"{other} 1000",
                  "--pidfile", f"wd-pidsvc={pidfile}", "--backoff-max", "0.2")
    log = wd.wait_log(expected)
    assert f"warning: wd-pidsvc: {pidfile} " in log
    [served] = wait_for(lambda: pids("wd-served"))  # the other rule is served all along
    os.kill(served, signal.SIGKILL)
    wait_for(lambda: pids("wd-served") - {served}, what="the other rule restarted")
    assert wd.stop() == 0
    assert bystander.poll() is None


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the pidfile to another user")
def test_a_pidfile_written_by_another_user_is_not_trusted_for_roots_process(
    tmp_path: Path, watchdog: Start, bystander: subprocess.Popen[bytes]
) -> None:
    pidfile = tmp_path / "svc.pid"
    pidfile.write_text(f"{bystander.pid}\n")
    os.chown(pidfile, NOBODY, NOBODY)  # anyone running as nobody could have written this
    wd = watchdog(str(program(tmp_path, "wd-untrusted", "/bin/false")),
                  "--pidfile", f"wd-untrusted={pidfile}", "--backoff-max", "0.2", "--scope", "host")
    wd.wait_log(f"belongs to uid {NOBODY} but names pid {bystander.pid} of uid 0: not trusted")
    assert wd.stop() == 0
    assert bystander.poll() is None


NEEDS_ROOT_AND_SETPRIV = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv to write as another user (CI runs as root)")


@NEEDS_ROOT_AND_SETPRIV
def test_a_pidfile_others_may_write_is_not_trusted_even_when_root_owns_it(
    tmp_path: Path, watchdog: Start, bystander: subprocess.Popen[bytes]
) -> None:
    pidfile = tmp_path / "svc.pid"
    pidfile.write_text("1\n")
    pidfile.chmod(0o666)
    for directory in (tmp_path, tmp_path.parent):
        directory.chmod(0o711)  # nobody may reach the file, not create one beside it
    # nobody rewrites root's world-writable pidfile to name a process of root's.
    subprocess.run(["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups",
                    "sh", "-c", f"echo {bystander.pid} > {pidfile}"], check=True)
    assert pidfile.stat().st_uid == 0 and pidfile.read_text().strip() == str(bystander.pid)
    wd = watchdog(str(program(tmp_path, "wd-openpid", "/bin/false")),
                  "--pidfile", f"wd-openpid={pidfile}", "--backoff-max", "0.2", "--scope", "host")
    wd.wait_log(f"{pidfile} can be written by its group or others (mode 0666): not trusted")
    assert "wd-openpid: running" not in wd.log()
    assert wd.stop() == 0
    assert bystander.poll() is None  # never signalled, neither by a restart nor by the stop


def test_a_pidfile_in_a_directory_others_may_write_is_not_trusted(
    tmp_path: Path, watchdog: Start
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # as /tmp: sticky, and anyone may put a file here first
    pidfile = shared / "svc.pid"
    svc = program(tmp_path, "wd-sharedpid")
    wd = watchdog(f"sh -c 'echo $$ > {pidfile}; exec {svc} 1000'", "--pidfile", f"sh={pidfile}")
    wd.wait_log(f"{pidfile} lies in {shared}, which others may write")
    assert "sh: running" not in wd.log()


def test_a_pidfile_whose_first_line_is_the_pid_as_postgresql_writes_it(
    tmp_path: Path, watchdog: Start
) -> None:
    pidfile = tmp_path / "postmaster.pid"
    svc = program(tmp_path, "wd-postmaster")
    # postmaster.pid: the pid, then the data directory, start time, port, socket dir...
    rest = f"{tmp_path}\\n1767225600\\n5432\\n/var/run/postgresql\\n*\\n  5432001    163842\\nready   "
    wd = watchdog(f"sh -c 'printf \"%s\\n{rest}\\n\" $$ > {pidfile}; exec {svc} 1000'",
                  "--pidfile", f"sh={pidfile}")
    [pid] = wait_for(lambda: pids("wd-postmaster"), what="the service")
    wd.wait_log(f"sh: running (pid {pid})")
    assert len(pidfile.read_bytes()) > 64 and pidfile.read_text().splitlines()[0] == str(pid)


# --- races and odd entries in the process table ----------------------------------


def test_processes_vanishing_mid_scan_never_crash_a_snapshot(tmp_path: Path) -> None:
    exe = program(tmp_path, "wd-flicker", "/bin/true")
    churn = subprocess.Popen(["sh", "-c", f"while :; do {exe}; done"])
    try:
        for _ in range(200):  # each snapshot races hundreds of short-lived processes
            snapshot = take_snapshot()
            for proc in snapshot.processes():
                snapshot.cmdline(proc.pid)
                snapshot.exe(proc.pid)
    finally:
        churn.kill()
        churn.wait()


def test_non_utf8_command_lines_are_read_without_error(tmp_path: Path) -> None:
    shell = program(tmp_path, "wd-bytes", "/bin/sh")
    odd = subprocess.Popen([str(shell).encode(), b"-c", b"sleep 1000; :", b"\xff\xfe caf\xe9 \x80"])
    try:
        # The name changes first, the arguments a moment later: wait for the exec to end.
        wait_for(lambda: len(psutil.Process(odd.pid).cmdline()) == 4, what="exec")
        argv = take_snapshot().cmdline(odd.pid)
        assert argv is not None and argv[3].encode("utf-8", "surrogateescape") == b"\xff\xfe caf\xe9 \x80"
    finally:
        odd.kill()
        odd.wait()


def test_empty_command_lines_read_as_empty_not_unreadable() -> None:
    with empty_command_line() as blank:
        snapshot = take_snapshot()
        assert snapshot.cmdline(blank.pid) == []  # as kthreadd's: empty, not None, not a crash
        assert blank.pid not in {proc.pid for proc, _ in snapshot.command_lines()}


# --- without root --------------------------------------------------------------------


def unprivileged_problem() -> str | None:
    if os.geteuid() != 0:
        return "needs root to become another user (CI runs as root)"
    if shutil.which("setpriv") is None or shutil.which("unshare") is None:
        return "needs setpriv and unshare (util-linux)"
    probe = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                            sys.executable, "-c", "import watchdog.plugins.basename"],
                           capture_output=True, text=True, cwd="/")
    if probe.returncode != 0:
        return f"the test interpreter cannot run as an unprivileged user: {probe.stderr.strip()[-200:]}"
    return None


needs_unprivileged = pytest.mark.skipif(unprivileged_problem() is not None,
                                        reason=str(unprivileged_problem()))


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory an unprivileged user can read and write (pytest's are root-only)."""
    path = Path(tempfile.mkdtemp(prefix="wd-public-"))
    path.chmod(0o777)
    yield path
    subprocess.run(["pkill", "-KILL", "-f", str(path)], check=False)
    shutil.rmtree(path, ignore_errors=True)


def as_nobody(*argv: str, proc_hidden: bool = False) -> list[str]:
    become = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv]
    if not proc_hidden:
        return become
    # A PID namespace whose /proc hides other users' processes (hidepid=2).
    script = 'mount -t proc -o hidepid=2 proc /proc && exec "$@"'
    return ["unshare", "--pid", "--fork", "--mount", "sh", "-c", script, "sh", *become]


@needs_unprivileged
@pytest.mark.parametrize("proc_hidden", [False, True], ids=["plain-proc", "hidepid=2"])
def test_as_an_ordinary_user_it_supervises_its_own_processes(public_dir: Path, proc_hidden: bool) -> None:
    exe = program(public_dir, "wd-mine")
    log = public_dir / "log"
    with open(log, "w") as out:
        wd = subprocess.Popen(as_nobody(sys.executable, "-m", "watchdog", f"{exe} 1000", "--regex",
                                        "wd-mine=wd-mine 1000", proc_hidden=proc_hidden),
                              cwd=public_dir, stdout=out, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        wait_for(lambda: "wd-mine: running" in log.read_text(), what="its service running")
        [mine] = wait_for(lambda: pids("wd-mine"))
        assert psutil.Process(mine).uids().real == NOBODY
        os.kill(mine, signal.SIGKILL)
        wait_for(lambda: pids("wd-mine") - {mine}, what="its service restarted")
        # Root's processes (unreadable, or hidden) neither crash it nor match.
        assert "Traceback" not in log.read_text()
        status = list(public_dir.glob("**/status.json")) or list(
            Path(tempfile.gettempdir()).glob(f"watchdog-{NOBODY}/status.json"))
        assert status, "a status file in a place an ordinary user can write"
    finally:
        os.killpg(wd.pid, signal.SIGTERM)
        assert wd.wait(10) == 0, log.read_text()


@needs_unprivileged
def test_as_an_ordinary_user_it_never_adopts_another_users_process_of_the_same_name(
    public_dir: Path,
) -> None:
    exe = program(public_dir, "wd-shared")
    roots = subprocess.Popen([str(exe), "1000"])  # root's, of the same name: not ours to signal
    log = public_dir / "log"
    try:
        wait_for(lambda: psutil.Process(roots.pid).name() == "wd-shared", what="exec")
        with open(log, "w") as out:
            wd = subprocess.Popen(as_nobody(sys.executable, "-m", "watchdog", f"{exe} 1000",
                                            "--grace", "2"),
                                  cwd=public_dir, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        try:
            [mine] = wait_for(lambda: pids("wd-shared") - {roots.pid}, what="its own wd-shared")
            assert psutil.Process(mine).uids().real == NOBODY
            wait_for(lambda: f"wd-shared: running (pid {mine})" in log.read_text(), what="matched")
        finally:
            os.killpg(wd.pid, signal.SIGTERM)
            # Only its own process to stop: no wait for the grace, no SIGKILL.
            assert wd.wait(10) == 0, log.read_text()
        assert roots.poll() is None
        assert f"pid {roots.pid}" not in log.read_text()
    finally:
        roots.kill()
        roots.wait()
