"""Services' output, captured: relayed, kept, tailed, followed, rotated, and a crash's last lines."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from helpers import Watchdog, pids, program, wait_for

Start = Callable[..., Watchdog]
TAG = f"{os.getpid() % 100000:05d}"  # process names no other run of the suite uses


def name(role: str) -> str:
    return f"lg{TAG}{role}"[:15]


def ctl(sock: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "watchdog.ctl", "--socket", str(sock), *args],
                          capture_output=True, text=True, timeout=timeout)


def socket_of(wd: Watchdog) -> Path:
    return wait_for(lambda: (wd.log_path.parent / "control.sock").exists()
                    and wd.log_path.parent / "control.sock", what="the control socket")


def script(tmp_path: Path, role: str, body: str) -> Path:
    """An executable sh script with a process name of its own."""
    path = tmp_path / name(role)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def counter(tmp_path: Path, role: str, pause: float = 0.05) -> Path:
    """Writes ``ROLE out N`` to stdout and ``ROLE err N`` to stderr, N = 1, 2, ..."""
    return script(tmp_path, role, f"i=0\nwhile true; do i=$((i+1)); echo \"{role} out $i\"; "
                                  f"echo \"{role} err $i\" >&2; sleep {pause}; done\n")


def flooder(tmp_path: Path, role: str, stream: str = "stdout", total: int | None = None) -> Path:
    """A Python service writing 60-byte lines as fast as it can (``total`` bytes, then it sleeps)."""
    path = tmp_path / name(role)
    path.write_text(f"#!{sys.executable}\n"
                    "import itertools, sys, time\n"
                    f"out = sys.{stream}.buffer\n"
                    "block = b'a line for a reader that has stopped reading, or not yet\\n' * 1000\n"
                    f"for _ in itertools.count() if {total} is None else range({total or 0} // len(block)):\n"
                    "    out.write(block)\n"
                    "out.flush()\n"
                    "time.sleep(1000)\n")
    path.chmod(0o755)
    return path


def text_between_rotations(path: Path) -> str:
    """The file's text; empty while a rotation has moved it and not yet made the next one."""
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def logs(sock: Path, *args: str) -> list[dict]:
    done = ctl(sock, "logs", "--json", *args)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_tail_and_follow(tmp_path: Path, watchdog: Start) -> None:
    svc = counter(tmp_path, "t")
    wd = watchdog(str(svc))
    sock = socket_of(wd)
    wait_for(lambda: len(logs(sock, "-n", "-1")) >= 20, what="20 lines kept")
    last = logs(sock, name("t"), "-n", "3", "--stdout")
    assert len(last) == 3 and all(entry["stream"] == "stdout" for entry in last)
    numbers = [int(entry["line"].split()[-1]) for entry in last]
    assert numbers == list(range(numbers[0], numbers[0] + 3))
    assert all(entry["rule"] == name("t") and entry["run"] == 1 for entry in last)
    text = ctl(sock, "logs", "-n", "1", "--stderr").stdout
    assert text.startswith(f"{name('t')} stderr | t err ")

    follower = subprocess.Popen([sys.executable, "-m", "watchdog.ctl", "--socket", str(sock), "logs",
                                 "-f", "-n", "0", "--json", "--stdout"], stdout=subprocess.PIPE, text=True)
    try:
        assert follower.stdout is not None
        seen = [json.loads(follower.stdout.readline()) for _ in range(5)]
        numbers = [int(entry["line"].split()[-1]) for entry in seen]
        assert numbers == list(range(numbers[0], numbers[0] + 5))  # as written, none skipped
        assert numbers[0] > int(last[-1]["line"].split()[-1])  # new lines only (-n 0)
    finally:
        follower.send_signal(signal.SIGINT)
        assert follower.wait(10) == 0


def test_several_rules_interleaved_in_the_order_read(tmp_path: Path, watchdog: Start) -> None:
    one, two = counter(tmp_path, "a"), counter(tmp_path, "b")
    wd = watchdog(str(one), str(two), "--log-buffer", f"{name('a')}=4K")
    sock = socket_of(wd)
    wait_for(lambda: {e["rule"] for e in logs(sock, "-n", "40")} == {name("a"), name("b")},
             what="both rules' lines")
    entries = logs(sock, "-n", "-1")
    times = [entry["time"] for entry in entries]
    assert times == sorted(times)
    # Each rule's own lines keep their order.
    for rule in (name("a"), name("b")):
        mine = [int(e["line"].split()[-1]) for e in entries if e["rule"] == rule and e["stream"] == "stdout"]
        assert mine == sorted(mine) and len(set(mine)) == len(mine)
    # --log-buffer bounds what one rule keeps, whole lines only.
    kept = [e for e in entries if e["rule"] == name("a")]
    assert sum(len(e["line"]) + 1 for e in kept) <= 4096
    assert all(e["line"].startswith("a ") for e in kept)


def test_stdout_and_stderr_stay_apart_and_are_relayed_unchanged(tmp_path: Path) -> None:
    svc = counter(tmp_path, "s")
    out, err = tmp_path / "out", tmp_path / "err"
    with open(out, "wb") as out_file, open(err, "wb") as err_file:
        proc = subprocess.Popen([sys.executable, "-m", "watchdog", str(svc), "--no-control-socket"],
                                stdout=out_file, stderr=err_file, cwd=tmp_path,
                                env={**os.environ, "WATCHDOG_STATUS_FILE": str(tmp_path / "status")})
        try:
            wait_for(lambda: b"s out 5\n" in out.read_bytes() and b"s err 5\n" in err.read_bytes(),
                     what="five lines on each stream")
        finally:
            proc.terminate()
            proc.wait(15)
    stdout_lines = out.read_bytes().decode().splitlines()
    assert stdout_lines[:5] == [f"s out {i}" for i in range(1, 6)]  # byte for byte, nothing added
    assert all(line.startswith("s out ") for line in stdout_lines)
    assert not any("s out" in line for line in err.read_text().splitlines())


def test_a_100_mb_line_without_newline_is_relayed_in_pieces_and_kept_bounded(
    tmp_path: Path, watchdog: Start
) -> None:
    big = tmp_path / name("big")
    big.write_text(f"#!{sys.executable}\n"
                   "import sys, time\n"
                   "piece = b'x' * (1 << 20)\n"
                   "for _ in range(100):\n"
                   "    sys.stdout.buffer.write(piece)\n"
                   "sys.stdout.buffer.flush()\n"
                   "time.sleep(1000)\n")
    big.chmod(0o755)
    other = program(tmp_path, name("o"))
    wd = watchdog(str(big), f"{other} 1000", "--prefix")
    sock = socket_of(wd)
    wait_for(lambda: wd.log_path.stat().st_size > 100 << 20, 60, "the whole line relayed")
    # The watchdog stays itself meanwhile: a killed service comes back.
    [before] = wait_for(lambda: pids(name("o")))
    os.kill(before, signal.SIGKILL)
    wait_for(lambda: pids(name("o")) - {before}, 10, "the other service restarted")
    pieces = [line for line in wd.log_path.read_bytes().split(b"\n") if line.startswith(name("big").encode())]
    bodies = [piece.partition(b" | ")[2] for piece in pieces]
    assert sum(map(len, bodies)) == 100 << 20 and max(map(len, bodies)) == 65536
    kept = logs(sock, name("big"), "-n", "-1")
    assert 0 < sum(len(e["line"]) for e in kept) <= 128 * 1024  # the default --log-buffer
    assert psutil.Process(wd.pid).memory_info().rss < 200 << 20


def test_log_file_rotates_at_the_byte_limit_keeping_n_backups(tmp_path: Path, watchdog: Start) -> None:
    svc = script(tmp_path, "r", "i=0\nwhile [ $i -lt 400 ]; do i=$((i+1)); "
                                "printf 'line %040d\\n' $i; done\nsleep 1000\n")
    path = tmp_path / "logs" / "svc.log"
    rule = name("r")
    wd = watchdog(str(svc), "--log-file", f"{rule}={path}", "--log-max-bytes", f"{rule}=1000",
                  "--log-backups", f"{rule}=3", "--timestamps")
    line = 30 + 46  # timestamp, space, "line " and 40 digits, newline
    wait_for(lambda: text_between_rotations(path).endswith(f"{400:040d}\n"), what="the last line")
    assert oct(path.parent.stat().st_mode & 0o777) == "0o750"
    files = [path, *(Path(f"{path}.{i}") for i in (1, 2, 3))]
    assert all(f.exists() for f in files) and not Path(f"{path}.4").exists()
    sizes = [f.stat().st_size for f in files]
    assert all(size <= 1000 for size in sizes) and all(size >= 1000 - line for size in sizes[1:])
    text = "".join(f.read_text() for f in reversed(files))
    numbers = [int(row.split()[-1]) for row in text.splitlines()]
    assert numbers == list(range(numbers[0], 401))  # the newest lines, whole and in order
    assert all(row[:4].isdigit() and row[10] == "T" for row in text.splitlines())  # --timestamps
    assert wd.proc.poll() is None


@pytest.mark.skipif(os.geteuid() != 0, reason="running a rule as another user takes root")
def test_log_files_and_the_directory_made_for_them_belong_to_the_rule_s_user(
        tmp_path: Path, watchdog: Start) -> None:
    import pwd

    nobody = pwd.getpwnam("nobody")
    rule = name("u")
    path = tmp_path / "made" / "svc.log"
    existing = tmp_path / "there"
    existing.mkdir()
    watchdog("--rule", f"{rule}=sh -c 'echo first; sleep 1000'", "--user", f"{rule}=nobody",
             "--log-file", f"{rule}={path}", "--log-file-stderr", f"{rule}={existing / 'err.log'}")
    wait_for(lambda: path.exists() and path.read_text() == "first\n", what="the log file")
    made = path.parent.stat()
    assert (made.st_uid, made.st_gid, oct(made.st_mode & 0o777)) == (nobody.pw_uid, nobody.pw_gid, "0o750")
    assert (path.stat().st_uid, path.stat().st_gid) == (nobody.pw_uid, nobody.pw_gid)
    assert existing.stat().st_uid == 0  # a directory that was there keeps its owner


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs takes root")
def test_a_full_disk_drops_lines_says_so_once_and_resumes(tmp_path: Path, watchdog: Start) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], check=True)
    try:
        svc = counter(tmp_path, "d", pause=0.001)
        other = program(tmp_path, name("do"))
        path = disk / "svc.log"
        rule = name("d")
        wd = watchdog(str(svc), f"{other} 1000", "--log-file", f"{rule}={path}",
                      "--log-max-bytes", f"{rule}=0", "-q")
        wd.wait_log("cannot write the log file", 30)
        # The rest of the watchdog does not notice: a killed service comes back.
        [before] = wait_for(lambda: pids(name("do")))
        os.kill(before, signal.SIGKILL)
        wait_for(lambda: pids(name("do")) - {before}, 10, "the other service restarted")
        wait_for(lambda: path.stat().st_size > 0, what="something written")
        time.sleep(0.5)  # more lines are dropped meanwhile; it is said only once
        assert wd.log().count("cannot write the log file") == 1
        path.write_bytes(b"")  # room again
        wd.wait_log("writing the log file", 30)
        resumed = wd.log().split("writing the log file")[1].splitlines()[0]
        assert "again" in resumed and int(resumed.split("; ")[1].split()[0]) > 0
        wait_for(lambda: "d out" in path.read_text(), 30, "lines written again")
        wd.stop()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_crash_s_last_lines_go_with_the_exit_the_events_and_the_status(
    tmp_path: Path, watchdog: Start
) -> None:
    flag = tmp_path / "crashed"
    svc = script(tmp_path, "c", f"for i in $(seq 1 30); do echo \"noise $i\"; done\n"
                                f"echo 'cannot bind :80' >&2\n"
                                f"if [ -e {flag} ]; then sleep 1000; fi\n"
                                f"touch {flag}\nexit 3\n")
    wd = watchdog(str(svc))
    wd.wait_log(f"{name('c')}: running", 20)
    sock = socket_of(wd)
    log = wd.wait_log("exited")
    after = log.split("exited", 1)[1].splitlines()[1:11]
    assert after[0] == "    | noise 22" and after[-2] == "    | noise 30"  # 10 lines, in order
    assert after[-1] == "    | cannot bind :80"  # stderr's line first to the budget, shown in place
    status = json.loads(ctl(sock, "status", "--json", name("c")).stdout)
    [rule] = status["rules"]
    assert rule["last_output"][-1]["stream"] == "stderr"
    assert [e["line"] for e in rule["last_output"]][-2:] == ["noise 30", "cannot bind :80"]
    shown = ctl(sock, "status", name("c")).stdout
    assert "the last lines of its last run" in shown and "cannot bind :80" in shown
    on_disk = json.loads(subprocess.run([sys.executable, "-m", "watchdog", "--status", "--json"],
                                        capture_output=True, text=True, cwd=tmp_path,
                                        env={**os.environ, "WATCHDOG_STATUS_FILE":
                                             str(wd.log_path.with_suffix(".status"))}).stdout)
    assert on_disk["rules"][0]["last_output"] == rule["last_output"]


def test_the_events_feed_carries_a_crash_s_last_lines(tmp_path: Path, watchdog: Start) -> None:
    svc = program(tmp_path, name("e"))
    wd = watchdog(f"{svc} 1000")
    sock = socket_of(wd)
    [first] = wait_for(lambda: pids(name("e")))
    events = subprocess.Popen([sys.executable, "-m", "watchdog.ctl", "--socket", str(sock), "events"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert events.stdout is not None
        assert json.loads(events.stdout.readline())["event"] == "current"
        os.kill(first, signal.SIGKILL)
        while (event := json.loads(events.stdout.readline()))["event"] != "exited":
            pass
        assert event["rule"] == name("e") and event["pid"] == first and event["status"] == -9
        assert event["last_output"] == []  # sleep wrote nothing: said as such
    finally:
        events.send_signal(signal.SIGINT)
        events.wait(10)


def test_ready_log_gates_after(tmp_path: Path, watchdog: Start) -> None:
    slow = script(tmp_path, "rl", "echo booting\nsleep 1.5\necho 'listening on :8080'\nsleep 1000\n")
    dependent = program(tmp_path, name("rd"))
    config = tmp_path / "watchdog.toml"
    config.write_text(f'[rules.{name("rl")}]\ncommand = "{slow}"\n'
                      f'ready-log = "listening on :[0-9]+"\n')
    wd = watchdog("--config", str(config), "--rule", f"{name('rd')}={dependent} 1000",
                  "--after", f"{name('rd')}={name('rl')}")
    log = wd.wait_log(f"{name('rd')}: started", 20)
    assert log.index(f"{name('rl')}: ready") < log.index(f"{name('rd')}: started")
    assert "listening on :8080" in log.split(f"{name('rd')}: started")[0]


def test_a_logs_follower_that_stops_reading_is_dropped_and_nothing_else_notices(
    tmp_path: Path, watchdog: Start
) -> None:
    # 16 MiB: well past the 1 MiB a follower may hold back, and bounded, since the watchdog
    # relays it into the log file the test reads (an endless flood filled memory on a slow host).
    flood = flooder(tmp_path, "f", total=16 << 20)
    other = program(tmp_path, name("fo"))
    wd = watchdog(str(flood), f"{other} 1000", "--log-buffer", f"{name('f')}=0")
    sock = socket_of(wd)
    with socket.socket(socket.AF_UNIX) as stalled:
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(str(sock))
        stalled.sendall(f"GET /v1/logs?follow=1&rule={name('f')} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        wd.wait_log("control: a client of pid", 30)
        [before] = wait_for(lambda: pids(name("fo")))
        os.kill(before, signal.SIGKILL)
        wait_for(lambda: pids(name("fo")) - {before}, 10, "the other service restarted")
        assert ctl(sock, "status").returncode == 0


def test_the_watchdog_never_blocks_on_a_stalled_reader_of_its_own_output(tmp_path: Path) -> None:
    """Issue: a reader of stderr that stops used to hold PID 1 in pipe_write after 64 KiB."""
    chatty = flooder(tmp_path, "w", "stderr", total=4 << 20)
    other = program(tmp_path, name("wo"))
    status_file = tmp_path / "status.json"
    proc = subprocess.Popen([sys.executable, "-m", "watchdog", str(chatty), f"{other} 1000", "-v",
                             "--no-control-socket", "--log-buffer", f"{name('w')}=0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
                            env={**os.environ, "WATCHDOG_STATUS_FILE": str(status_file)})
    try:
        assert proc.stdout is not None and proc.stderr is not None
        [before] = wait_for(lambda: pids(name("wo")), 20)
        wait_for(lambda: psutil.Process(proc.pid).status() == psutil.STATUS_SLEEPING, what="a pause")
        # 4 MiB for a stderr pipe of 64 KiB: it is full, and more lines wait or are dropped.
        for _ in range(3):  # each restart is logged into the full stderr pipe
            os.kill(before, signal.SIGKILL)
            [after] = wait_for(lambda gone=before: list(pids(name("wo")) - {gone}), 10, "a restart")
            wait_for(lambda pid=after: str(pid) in status_file.read_text(), 10, "the status file updated")
            before = after
        os.set_blocking(proc.stderr.fileno(), False)
        seen = b""

        def note() -> bool:
            nonlocal seen
            try:
                seen += proc.stderr.read() or b""  # type: ignore[union-attr]
            except BlockingIOError:
                pass
            return b"were dropped: its reader did not keep up" in seen

        wait_for(note, 20, "the line that says how many were dropped")
        proc.terminate()
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_worker_that_ends_while_its_service_runs_is_a_debug_line(tmp_path: Path, watchdog: Start) -> None:
    master = tmp_path / name("m")
    record = tmp_path / "worker"
    master.write_text(f"#!{sys.executable}\n"
                      "import os, signal, time\n"
                      "signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # workers reap themselves\n"
                      "if os.fork() == 0:\n"
                      f"    open({str(record)!r}, 'w').write(str(os.getpid()))\n"
                      "    time.sleep(1.5)\n"
                      "    os._exit(0)\n"
                      "time.sleep(1000)\n")
    master.chmod(0o755)
    wd = watchdog(str(master), "--interval", "0.3", "--log-format", "json", "-v")
    wait_for(lambda: record.exists() and record.read_text(), what="the worker")
    worker = int(record.read_text())
    wait_for(lambda: not psutil.pid_exists(worker), 10, "the worker's end")

    def about_worker() -> list[dict]:
        return [entry for entry in map(json.loads, wd.log().splitlines())
                if entry.get("pid") == worker and entry.get("event") == "exited"]

    [entry] = wait_for(about_worker, 10, "the worker's end in the log")
    assert entry["level"] == "debug"
    assert "runs on" in entry["message"] and "output" not in entry


def test_reload_reopens_log_files_for_logrotate(tmp_path: Path, watchdog: Start) -> None:
    svc = counter(tmp_path, "ro", pause=0.05)
    path = tmp_path / "svc.log"
    config = tmp_path / "watchdog.toml"
    config.write_text(f'[rules.{name("ro")}]\ncommand = "{svc}"\nlog-file = "{path}"\n')
    wd = watchdog("--config", str(config))
    sock = socket_of(wd)
    wait_for(lambda: path.exists() and "ro out 3" in path.read_text(), what="lines in the file")
    rotated = tmp_path / "svc.log.1"
    path.rename(rotated)  # logrotate without copytruncate: the watchdog still writes the old file
    wait_for(lambda: rotated.stat().st_size > 0 and not path.exists(), what="lines in the renamed file")
    done = ctl(sock, "reload")
    assert done.returncode == 0, done.stderr
    wait_for(lambda: path.exists() and "ro out" in path.read_text(), what="a new file after reload")
    first_new = int(next(line for line in path.read_text().splitlines() if " out " in line).split()[-1])
    last_old = max(int(line.split()[-1]) for line in rotated.read_text().splitlines() if " out " in line)
    assert first_new == last_old + 1  # not a line lost between the two files


def test_the_writer_drops_the_oldest_lines_when_its_reader_stalls_and_says_how_many() -> None:
    from watchdog.writer import NonBlockingWriter

    read_end, write_end = os.pipe()
    try:
        writer = NonBlockingWriter(write_end, "a pipe", max_pending=4096)
        assert writer.fd != write_end  # a file of its own: the inherited one stays blocking
        assert os.get_blocking(write_end)
        lines = [b"line %05d\n" % i for i in range(20000)]  # 220,000 bytes: more than pipe and queue
        for line in lines:
            writer.write(line)
        assert writer.dropped_lines > 0 and writer.pending_bytes <= 4096
        dropped = writer.dropped_lines
        received = b""
        os.set_blocking(read_end, False)
        while b"were dropped" not in received:
            try:
                received += os.read(read_end, 1 << 20)
            except BlockingIOError:
                writer.pump()  # as the loop does when the pipe is writable again
        got = received.splitlines()
        assert got[-1].endswith(f"{dropped} lines ({dropped * 11} bytes) for a pipe were dropped: "
                                "its reader did not keep up".encode())
        kept = got[:-1]
        assert len(kept) + dropped == len(lines)
        assert kept[-1] == b"line 19999"  # the newest lines are kept, the oldest waiting ones go
        assert kept == sorted(kept)
    finally:
        writer.close()
        os.close(read_end)
        os.close(write_end)


def test_log_stderr_stdout_joins_the_two_streams_in_the_order_written(
    tmp_path: Path, watchdog: Start
) -> None:
    svc = script(tmp_path, "j", "for i in 1 2 3 4 5 6; do echo \"out $i\"; echo \"err $i\" >&2; done\n"
                                "sleep 1000\n")
    path = tmp_path / "joined.log"
    wd = watchdog(str(svc), "--log-stderr", f"{name('j')}=stdout", "--log-file", f"{name('j')}={path}")
    sock = socket_of(wd)
    expected = [f"{stream} {i}" for i in range(1, 7) for stream in ("out", "err")]
    wait_for(lambda: path.exists() and path.read_text().splitlines() == expected, what="the joined file")
    entries = logs(sock, name("j"), "-n", "-1")
    assert [e["line"] for e in entries] == expected and {e["stream"] for e in entries} == {"stdout"}
    assert logs(sock, name("j"), "--stderr") == []
