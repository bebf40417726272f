"""Incremental snapshots, against real processes: an event re-reads what it can have changed."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from conftest import kill_programs_under
from helpers import program, wait_for

from watchdog.pidwindow import Cursor, Window, read_cursor
from watchdog.snapshot import EXEC_SETTLE, take_snapshot
from watchdog.tracker import Tracker


@pytest.fixture
def spawned(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        proc.kill()
        proc.wait()
    kill_programs_under(tmp_path)


def run(procs: list[subprocess.Popen[bytes]], argv: list[str | Path], **kw: object
        ) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([str(arg) for arg in argv], **kw)  # type: ignore[call-overload]
    procs.append(proc)
    return proc


def exec_on_input(tmp_path: Path, procs: list[subprocess.Popen[bytes]], target: Path
                  ) -> subprocess.Popen[bytes]:
    """A shell named wd-trk-shell that execs ``target`` once a line reaches its stdin."""
    shell = program(tmp_path, "wd-trk-shell", shutil.which("bash") or "/bin/bash")
    proc = run(procs, [shell, "-c", f"read line; exec {target} 1000"], stdin=subprocess.PIPE)
    wait_for(lambda: psutil.Process(proc.pid).name() == "wd-trk-shell", what="the shell's exec")
    return proc


def old_sleeper(tmp_path: Path, procs: list[subprocess.Popen[bytes]], name: str
                ) -> subprocess.Popen[bytes]:
    """A sleeping copy called ``name``, past the age at which a process may still exec:
    a tracker reads it again only if it follows it (or at a full read)."""
    proc = run(procs, [program(tmp_path, name), "1000"])
    wait_for(lambda: psutil.Process(proc.pid).name() == name, what="the exec")
    time.sleep(EXEC_SETTLE + 0.1)  # an age, which only time gives
    return proc


def release(proc: subprocess.Popen[bytes], name: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(b"go\n")
    proc.stdin.flush()
    wait_for(lambda: psutil.Process(proc.pid).name() == name, what=f"the exec of {name}")


def test_a_process_born_since_the_last_listing_is_read(tmp_path: Path, spawned: list) -> None:
    tracker = Tracker(backstop=60)
    tracker.take(full=True)
    sleeper = program(tmp_path, "wd-trk-born")
    proc = run(spawned, [sleeper, "1000"])
    wait_for(lambda: psutil.Process(proc.pid).name() == "wd-trk-born", what="the exec")
    snapshot = tracker.take()
    assert [p.pid for p in snapshot.named("wd-trk-born")] == [proc.pid]
    assert tracker.full_reads == 1
    assert tracker.last_reads < len(snapshot) // 2  # the rest came from the previous listing


def test_a_followed_process_that_exited_is_gone_from_the_next_snapshot(
    tmp_path: Path, spawned: list
) -> None:
    proc = old_sleeper(tmp_path, spawned, "wd-trk-gone")
    tracker = Tracker(backstop=60)
    tracker.follow(tracker.take(full=True).named("wd-trk-gone"))
    proc.kill()
    proc.wait()
    snapshot = tracker.take()
    assert snapshot.named("wd-trk-gone") == [] and snapshot.get(proc.pid) is None
    assert tracker.full_reads == 1


def test_an_unfollowed_process_that_exited_is_gone_for_get_at_once_and_for_all_at_the_full_read(
    tmp_path: Path, spawned: list
) -> None:
    proc = old_sleeper(tmp_path, spawned, "wd-trk-unfol")
    tracker = Tracker(backstop=60)
    tracker.take(full=True)
    proc.kill()
    proc.wait()
    # get() answers for one pid, as a pidfile's, so it reads that pid again.
    assert tracker.take().get(proc.pid) is None
    assert tracker.take(full=True).named("wd-trk-unfol") == []


def test_many_forks_at_once_make_the_snapshot_list_proc(tmp_path: Path, spawned: list) -> None:
    sleeper = program(tmp_path, "wd-trk-wide")
    tracker = Tracker(backstop=60)
    size = len(tracker.take(full=True))
    listings = tracker.listings
    for _ in range(max(200, size)):  # more new pids than half the table: a wide window
        subprocess.run(["true"], check=True)
    proc = run(spawned, [sleeper, "1000"])
    wait_for(lambda: psutil.Process(proc.pid).name() == "wd-trk-wide", what="the exec")
    assert [p.pid for p in tracker.take().named("wd-trk-wide")] == [proc.pid]
    assert (tracker.full_reads, tracker.listings) == (1, listings + 1)


def test_a_young_process_that_execs_is_seen_under_its_new_name(tmp_path: Path, spawned: list) -> None:
    target = program(tmp_path, "wd-trk-young")
    tracker = Tracker(backstop=60)
    proc = exec_on_input(tmp_path, spawned, target)
    tracker.take(full=True)  # reads the shell while it is young
    release(proc, "wd-trk-young")
    snapshot = tracker.take()
    assert [p.pid for p in snapshot.named("wd-trk-young")] == [proc.pid]
    assert tracker.full_reads == 1


def test_an_old_process_that_execs_is_seen_at_the_full_read(tmp_path: Path, spawned: list) -> None:
    target = program(tmp_path, "wd-trk-old")
    tracker = Tracker(backstop=60)
    proc = exec_on_input(tmp_path, spawned, target)
    time.sleep(EXEC_SETTLE + 0.1)
    tracker.take(full=True)  # reads the shell once it is old: no exec expected of it
    release(proc, "wd-trk-old")
    # No event reports such an exec, so an event's snapshot does not pay to look
    # for it: it still shows the shell, until the read of every process.
    assert tracker.take().named("wd-trk-old") == []
    assert [p.pid for p in tracker.take(full=True).named("wd-trk-old")] == [proc.pid]


def test_the_backstop_reads_everything_whatever_the_caller_asks(tmp_path: Path) -> None:
    tracker = Tracker(backstop=0.2)
    tracker.take()
    tracker.take()
    assert tracker.full_reads == 1
    time.sleep(0.25)
    tracker.take()
    assert tracker.full_reads == 2


def test_a_followed_process_that_dies_unreaped_is_no_longer_visible(
    tmp_path: Path, spawned: list
) -> None:
    # Its pid stays in /proc as a zombie until its parent (here, this test) reaps it.
    proc = old_sleeper(tmp_path, spawned, "wd-trk-zombie")
    tracker = Tracker(backstop=60)
    tracker.follow(tracker.take(full=True).named("wd-trk-zombie"))
    proc.send_signal(signal.SIGKILL)
    wait_for(lambda: psutil.Process(proc.pid).status() == psutil.STATUS_ZOMBIE, what="the zombie")
    snapshot = tracker.take()
    assert snapshot.get(proc.pid) is None and snapshot.named("wd-trk-zombie") == []
    assert tracker.full_reads == 1


def test_many_births_and_deaths_leave_the_same_table_as_a_full_read(
    tmp_path: Path, spawned: list
) -> None:
    sleeper = program(tmp_path, "wd-trk-many")
    tracker = Tracker(backstop=60)
    tracker.take(full=True)
    first = [run(spawned, [sleeper, "1000"]) for _ in range(40)]
    tracker.take()
    for proc in first[::2]:
        proc.kill()
        proc.wait()
    second = [run(spawned, [sleeper, "1000"]) for _ in range(20)]
    alive = {proc.pid for proc in first[1::2] + second}
    wait_for(lambda: all(psutil.Process(pid).name() == "wd-trk-many" for pid in alive), what="execs")
    incremental = {p.pid for p in tracker.take().named("wd-trk-many")}
    assert incremental == alive == {p.pid for p in take_snapshot().named("wd-trk-many")}
    assert tracker.full_reads == 1


# --- the pid window --------------------------------------------------------------


def cursor(last_pid: int, forks: int, tasks: int = 100, pid_max: int = 32768) -> Cursor:
    return Cursor(last_pid, forks, tasks, pid_max)


def test_the_window_holds_the_pids_handed_out_between_two_readings() -> None:
    window = Window(cursor(1000, 50), cursor(1005, 55))
    assert window.among({999, 1000, 1001, 1005, 1006}) == {1001, 1005}
    assert 1003 in window and 1000 not in window
    assert Window(cursor(1000, 50), cursor(1000, 50)).among({999, 1000, 1001}) == set()


def test_a_wrapped_window_holds_both_ends() -> None:
    window = Window(cursor(32760, 50), cursor(310, 70))
    assert window.among({305, 310, 311, 32760, 32761}) == {305, 310, 32761}


def test_a_possible_lap_makes_every_pid_suspect() -> None:
    assert Window(cursor(1000, 0), cursor(1001, 40000)).among({5, 1000, 20000}) == {5, 1000, 20000}
    crowded = Window(cursor(1000, 0, tasks=32000), cursor(1001, 1))
    assert crowded.among({5, 1000}) == {5, 1000}
    assert Window(cursor(1000, 0), cursor(1001, 1, pid_max=4194304)).among({5}) == {5}


def test_a_real_fork_lands_in_the_window(spawned: list) -> None:
    before = read_cursor()
    if before is None:
        pytest.skip("this /proc is not of the watchdog's pid namespace")
    proc = run(spawned, ["sleep", "1000"])
    after = read_cursor()
    assert after is not None and after.forks > before.forks
    assert proc.pid in Window(before, after)
