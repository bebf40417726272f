"""Files and sockets another local user could plant or swap: never written through, never believed.

The attacker is an unprivileged user (``nobody``, or a numeric uid of no one),
as in the reproductions: a status directory they own or may write, a FIFO
where the status file goes, a directory they made first where an ordinary
user's watchdog keeps its files, a fake control socket, and a health check
whose output carries a terminal escape.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
from helpers import Watchdog, pids, program, wait_for
from test_safety import NOBODY, as_nobody, needs_unprivileged

from watchdog.safefiles import Untrusted, read_trusted, remove_if_ours, write_atomically

Start = Callable[..., Watchdog]
STRANGER = 12345  # a uid no account has: another local user who is not nobody
needs_root = pytest.mark.skipif(os.geteuid() != 0,
                                reason="needs root to play a second user (CI runs as root)")


def run_status(status_file: Path, *, user: list[str] | None = None,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*(user or []), sys.executable, "-m", "watchdog", "--status", "--status-file",
                           str(status_file)], capture_output=True, text=True, timeout=30, cwd="/",
                          env={**os.environ, **(env or {})})


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory any user may write, as /tmp is (pytest's own are root's, 0700)."""
    path = Path(tempfile.mkdtemp(prefix="wd-trust-"))
    path.chmod(0o1777)
    yield path
    subprocess.run(["pkill", "-KILL", "-f", str(path)], check=False)
    shutil.rmtree(path, ignore_errors=True)


def fake_watchdog(directory: Path, uid: int) -> subprocess.Popen[bytes]:
    """A process of ``uid`` whose command line reads as a watchdog's (python .../watchdog)."""
    fake = directory / "watchdog"
    fake.write_text("import time\ntime.sleep(1000)\n")
    fake.chmod(0o755)
    proc = subprocess.Popen(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                             sys.executable, str(fake)], cwd="/")
    wait_for(lambda: Path(f"/proc/{proc.pid}/cmdline").read_bytes().endswith(b"/watchdog\0"),
             what="the fake watchdog's exec")
    return proc


@needs_root
@pytest.mark.parametrize("how", ["owned by nobody", "writable by all"])
def test_a_status_directory_another_user_could_change_is_never_written(
    tmp_path: Path, watchdog: Start, how: str
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    if how == "owned by nobody":
        os.chown(run_dir, NOBODY, -1)
        run_dir.chmod(0o755)
    else:
        run_dir.chmod(0o1777)
    secret = tmp_path / "secret"
    secret.write_text("root's only")
    secret.chmod(0o600)
    status_file = run_dir / "status.json"
    exe = program(tmp_path, "wd-tr-dir")
    wd = watchdog(f"{exe} 1000", "--status-file", str(status_file), "--no-control-socket",
                  "--interval", "0.1")
    reason = "belongs to uid 65534" if how == "owned by nobody" else "is writable by other users"
    wd.wait_log(f"cannot write the status file {status_file}: {run_dir} {reason}")
    assert pids("wd-tr-dir"), "the services run all the same"
    assert not list(run_dir.iterdir()), "nothing is written where another user could swap it"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    # A file planted there is not believed either.
    status_file.write_text(json.dumps({"pid": wd.pid, "started": time.time() - 60, "rules": []}))
    shown = run_status(status_file)
    assert shown.returncode == 3, shown
    assert shown.stderr.startswith("watchdog: not trusting the status file: ") and \
        shown.stderr.count("\n") == 1, shown.stderr
    assert wd.stop() == 0


def test_a_fifo_at_the_status_path_hangs_neither_the_watchdog_nor_status(
    tmp_path: Path, watchdog: Start
) -> None:
    fifo = tmp_path / "status.json"
    os.mkfifo(fifo)
    began = time.monotonic()
    shown = run_status(fifo)  # opened without blocking, refused for what it is
    assert shown.returncode == 3 and "is not a regular file" in shown.stderr, shown
    assert time.monotonic() - began < 10
    exe = program(tmp_path, "wd-tr-fifo")
    wd = watchdog(f"{exe} 1000", "--status-file", str(fifo), "--no-control-socket")
    wd.wait_log("wd-tr-fifo: running")
    # The file written replaces the FIFO; the watchdog never opened it.
    wait_for(lambda: stat.S_ISREG(fifo.lstat().st_mode), what="a regular status file")
    assert run_status(fifo).returncode == 0
    assert wd.stop(timeout=10) == 0


def test_a_status_file_that_is_a_symlink_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps({"pid": os.getpid(), "started": 0, "rules": []}))
    link = tmp_path / "status.json"
    link.symlink_to(target)
    shown = run_status(link)
    assert shown.returncode == 3 and f"{link} is a symlink" in shown.stderr, shown


@needs_root
@needs_unprivileged
def test_an_ordinary_users_default_directory_made_first_by_another_user_is_refused(
    public_dir: Path
) -> None:
    # Another user makes the directory nobody's watchdog will use, and forges a
    # status file naming a "watchdog" of theirs that is running.
    planted = public_dir / f"watchdog-{NOBODY}"
    planted.mkdir()
    os.chown(planted, STRANGER, STRANGER)
    planted.chmod(0o777)
    fake = fake_watchdog(public_dir, STRANGER)
    forged = planted / "status.json"
    forged.write_text(json.dumps({"pid": fake.pid, "started": time.time(), "rules": [
        {"name": "web", "state": "running", "pids": [fake.pid], "matcher": "basename", "restarts": 0,
         "last_exit": None, "since": time.time()}]}))
    os.chown(forged, STRANGER, STRANGER)
    env = {"TMPDIR": str(public_dir)}
    try:
        shown = run_status(Path(planted / "status.json"), user=as_nobody(), env=env)
        assert shown.returncode == 3, shown
        assert f"{planted} belongs to uid {STRANGER}, neither root nor uid {NOBODY}" in shown.stderr
        # Without --status-file: the default place is the one refused.
        default = subprocess.run(as_nobody(sys.executable, "-m", "watchdog", "--status"),
                                 capture_output=True, text=True, cwd="/", timeout=30,
                                 env={**os.environ, **env})
        assert default.returncode == 3 and "not trusting" in default.stderr, default
        # nobody's watchdog writes nothing into it and serves no socket there.
        exe = program(public_dir, "wd-tr-planted")
        log = public_dir / "log"
        with open(log, "w") as out:
            wd = subprocess.Popen(as_nobody(sys.executable, "-m", "watchdog", f"{exe} 1000"),
                                  cwd="/", stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                  env={**os.environ, **env})
        try:
            wait_for(lambda: "cannot write the status file" in log.read_text(), what="the refusal")
            assert "no control socket" in log.read_text()
            assert pids("wd-tr-planted")
            assert sorted(p.name for p in planted.iterdir()) == ["status.json"]
            assert json.loads(forged.read_text())["pid"] == fake.pid
        finally:
            os.killpg(wd.pid, signal.SIGTERM)
            assert wd.wait(15) == 0, log.read_text()
    finally:
        fake.kill()
        fake.wait()


@needs_root
@needs_unprivileged
def test_an_ordinary_users_default_directory_is_private(public_dir: Path) -> None:
    runtime = public_dir / "runtime"
    runtime.mkdir()
    os.chown(runtime, NOBODY, NOBODY)
    runtime.chmod(0o700)
    exe = program(public_dir, "wd-tr-private")
    for xdg, expected in ((str(runtime), runtime / "watchdog"),
                          (str(public_dir), public_dir / f"watchdog-{NOBODY}")):  # not private: unused
        log = public_dir / "log"
        env = {**os.environ, "TMPDIR": str(public_dir), "XDG_RUNTIME_DIR": xdg}
        with open(log, "w") as out:
            wd = subprocess.Popen(as_nobody(sys.executable, "-m", "watchdog", f"{exe} 1000"),
                                  cwd="/", stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                  env=env)
        try:
            status_file, sock = expected / "status.json", expected / "control.sock"
            wait_for(status_file.exists, what=f"a status file in {expected}")
            info = expected.stat()
            assert info.st_uid == NOBODY and stat.S_IMODE(info.st_mode) == 0o700
            wait_for(sock.exists, what="the control socket beside it")
            # The first status file may still say "starting" (exit 1): wait until it says running.
            status = as_nobody(sys.executable, "-m", "watchdog", "--status")
            wait_for(partial(says_running, status, env),
                     what="watchdog --status, run as the same user, to say the service runs")
            ctl = subprocess.run(as_nobody(sys.executable, "-m", "watchdog.ctl", "status"),
                                 capture_output=True, text=True, cwd="/", timeout=30, env=env)
            assert ctl.returncode == 0, ctl
        finally:
            os.killpg(wd.pid, signal.SIGTERM)
            assert wd.wait(15) == 0, log.read_text()


def says_running(argv: list[str], env: dict[str, str]) -> bool:
    return subprocess.run(argv, capture_output=True, cwd="/", timeout=30, env=env).returncode == 0


FAKE_SERVER = textwrap.dedent("""\
    import os, socket, sys
    path = sys.argv[1]
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    os.chmod(path, 0o777)
    server.listen(8)
    print("listening", flush=True)
    body = b'{"results": [{"rule": "svc", "result": "stopping\\\\u001b]0;pwned\\\\u0007"}]}'
    while True:
        client, _ = server.accept()
        client.recv(65536)
        client.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n%s" % (len(body), body))
        client.close()
""")


@needs_root
@needs_unprivileged
def test_watchdogctl_refuses_a_socket_another_user_serves(public_dir: Path) -> None:
    server = public_dir / "fake_server.py"
    server.write_text(FAKE_SERVER)
    sock = public_dir / "control.sock"
    fake = subprocess.Popen(as_nobody(sys.executable, str(server), str(sock)), stdout=subprocess.PIPE,
                            cwd="/")
    try:
        assert fake.stdout is not None and fake.stdout.readline() == b"listening\n"
        run = subprocess.run([sys.executable, "-m", "watchdog.ctl", "--socket", str(sock), "stop", "svc"],
                             capture_output=True, text=True, timeout=30)
        assert run.returncode == 3, run
        assert run.stdout == ""
        assert run.stderr == (f"watchdogctl: not trusting {sock}: it is served by uid {NOBODY}, "
                              "neither root nor uid 0\n")
    finally:
        fake.kill()
        fake.wait()


def test_terminal_escapes_a_health_check_prints_are_shown_escaped(tmp_path: Path, watchdog: Start) -> None:
    exe = program(tmp_path, "wd-tr-osc")
    check = "printf '\\033]0;pwned\\007 and\\033[2J' ; exit 1"
    wd = watchdog(f"{exe} 1000", "--health-cmd", f"wd-tr-osc=sh -c \"{check}\"",
                  "--health-interval", "wd-tr-osc=0.2", "--health-retries", "wd-tr-osc=1",
                  "--on-unhealthy", "wd-tr-osc=report")
    wd.wait_log("wd-tr-osc: unhealthy")
    status_file = wd.log_path.with_suffix(".status")
    table = wait_for(lambda: (run := run_status(status_file)).returncode == 1 and "pwned" in run.stdout
                     and run, what="the health detail in the status")
    assert "\x1b" not in table.stdout and "\x07" not in table.stdout
    assert "\\x1b]0;pwned\\x07 and\\x1b[2J" in table.stdout
    sock = wd.log_path.parent / "control.sock"
    ctl = subprocess.run([sys.executable, "-m", "watchdog.ctl", "--socket", str(sock), "status"],
                         capture_output=True, text=True, timeout=30)
    assert "pwned" in ctl.stdout and "\x1b" not in ctl.stdout and "\x07" not in ctl.stdout, ctl
    assert wd.stop() == 0


@needs_root
@needs_unprivileged
def test_another_user_may_still_read_roots_status_file(public_dir: Path, watchdog: Start,
                                                       tmp_path: Path) -> None:
    # A HEALTHCHECK run as the image's USER reads root's file: root is trusted by everyone.
    run_dir = public_dir / "run"
    run_dir.mkdir(mode=0o755)
    status_file = run_dir / "status.json"
    exe = program(tmp_path, "wd-tr-shared")
    wd = watchdog(f"{exe} 1000", "--status-file", str(status_file), "--no-control-socket")
    wait_for(status_file.exists, what="the status file")
    assert stat.S_IMODE(status_file.stat().st_mode) == 0o644
    shown = run_status(status_file, user=as_nobody())
    # Read and believed at once: the table shows the rule (exit 1 while it still says starting).
    assert shown.returncode in (0, 1) and "wd-tr-shared" in shown.stdout, shown
    wait_for(lambda: run_status(status_file, user=as_nobody()).returncode == 0,
             what="watchdog --status, run as nobody, to say the service runs")
    assert wd.stop() == 0


def test_files_are_written_only_into_a_real_directory_and_removed_only_if_still_ours(
    tmp_path: Path
) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(Untrusted, match="is a symlink"):
        write_atomically(str(link / "status.json"), b"{}")
    assert list(real.iterdir()) == []
    path = real / "status.json"
    ours = write_atomically(str(path), b"{}")
    assert path.read_bytes() == b"{}" and stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in real.iterdir()] == ["status.json"]  # no temporary left
    other = real / "other"
    other.write_text("another watchdog's")
    other.rename(path)  # took the path since, the way a watchdog writes it
    remove_if_ours(str(path), ours)
    assert path.read_text() == "another watchdog's"
    path.chmod(0o666)
    with pytest.raises(Untrusted, match="writable by other users"):
        read_trusted(str(path))
