"""Which processes are a rule's: threads, scope, trust, hand-overs, and what a stop reaches.

Real processes throughout: Debian's redis-server and memcached where threads
are the point, programs/service.py for masters with workers, ``setpriv`` for
another user's impostor.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from helpers import CheckCounts, Watchdog, pids, program, service, unique, wait_for

Start = Callable[..., Watchdog]
REDIS = shutil.which("redis-server", path="/usr/bin:/usr/sbin")
MEMCACHED = shutil.which("memcached", path="/usr/bin:/usr/sbin")
needs_redis = pytest.mark.skipif(REDIS is None or MEMCACHED is None,
                                 reason="needs Debian's redis-server and memcached (.ci/run installs them)")
needs_root_and_setpriv = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv to run a process as another user (CI runs as root)")
AS_NOBODY = ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups"]


def rule_status(wd: Watchdog, name: str) -> dict | None:
    try:
        content = json.loads(wd.log_path.with_suffix(".status").read_text())
    except (OSError, ValueError):
        return None
    return next((rule for rule in content["rules"] if rule["name"] == name), None)


def pids_shown(wd: Watchdog, name: str) -> list[int] | None:
    """The rule's pids as the status file shows them (None while it cannot be read)."""
    status = rule_status(wd, name)
    return None if status is None else list(status["pids"])


def threads_of(pid: int) -> set[int]:
    return {int(task) for task in os.listdir(f"/proc/{pid}/task")} - {pid}


def exactly(count: int, name: str) -> set[int] | None:
    found = pids(name)
    return found if len(found) == count else None


def ctl(wd: Watchdog, *args: str) -> subprocess.CompletedProcess[str]:
    sock = wd.log_path.parent / "control.sock"
    return subprocess.run([sys.executable, "-m", "watchdog.ctl", "--socket", str(sock), *args],
                          capture_output=True, text=True, timeout=60)


# --- threads are never processes ------------------------------------------------------


@needs_redis
def test_redis_threads_are_never_another_rules_service_nor_summed_in_its_memory(
        tmp_path: Path, watchdog: Start) -> None:
    redis = program(tmp_path, "wd-redis", str(REDIS))
    counts = CheckCounts(tmp_path)
    # Redis's RSS is about 12 MiB, with four threads: counted as processes it would be 60.
    wd = watchdog("--rule", "setup=sh -c 'exit 0'",
                  f"{redis} --port 0 --unixsocket {tmp_path}/redis.sock --save ''",
                  "--max-memory", "wd-redis=30M", "--health-interval", "wd-redis=0.2",
                  "--health-retries", "wd-redis=1", "--interval", "0.3", *counts.args, env=counts.env())
    [pid] = wait_for(lambda: pids("wd-redis"), what="redis")
    threads = wait_for(lambda: threads_of(pid), what="redis's threads")
    wd.wait_log("wd-redis: running")
    counts.wait(15)
    log = wd.log()
    assert "taking it as the service" not in log
    assert "wd-redis: healthy (rss" in log and "unhealthy" not in log
    assert pids("wd-redis") == {pid}  # never restarted
    assert wait_for(lambda: pids_shown(wd, "wd-redis")) == [pid]
    # An empty list is an answer too: wait for the file, not for pids.
    [setup_pids] = wait_for(lambda: (shown := pids_shown(wd, "setup")) is not None and (shown,))
    assert not set(setup_pids) & (threads | {pid})
    table = ctl(wd, "status").stdout.splitlines()
    assert table[0].split()[2] == "PIDS"
    shown = {int(pid) for row in table[1:] for pid in row.split()[2].split(",") if pid != "-"}
    assert shown == {pid}, table


@needs_redis
def test_two_daemonizing_rules_started_together_never_list_each_others_threads(
        tmp_path: Path, watchdog: Start) -> None:
    redis = program(tmp_path, "wd-redisd", str(REDIS))
    memcached = program(tmp_path, "wd-memcached", str(MEMCACHED))
    counts = CheckCounts(tmp_path)
    wd = watchdog(f"{redis} --port 0 --unixsocket {tmp_path}/redis.sock --save '' --daemonize yes",
                  f"{memcached} -d -U 0 -p 0 -s {tmp_path}/mc.sock -u root",
                  "--interval", "0.3", *counts.args, env=counts.env())
    wd.wait_log("wd-redisd: exited")
    wd.wait_log("wd-memcached: exited")
    # Their starters have exited as they daemonized: one process each, then.
    [redis_pid] = wait_for(lambda: exactly(1, "wd-redisd"), what="redis")
    [memcached_pid] = wait_for(lambda: exactly(1, "wd-memcached"), what="memcached")
    wait_for(lambda: pids_shown(wd, "wd-redisd") == [redis_pid], what="the status file to follow redis")
    counts.wait(10)
    assert wait_for(lambda: pids_shown(wd, "wd-redisd")) == [redis_pid]
    assert wait_for(lambda: pids_shown(wd, "wd-memcached")) == [memcached_pid]
    assert pids("wd-redisd") == {redis_pid} and pids("wd-memcached") == {memcached_pid}
    assert "taking it as the service" not in wd.log()


# --- scope -----------------------------------------------------------------------------


def test_a_stranger_of_the_same_name_is_neither_adopted_nor_stopped(
        tmp_path: Path, watchdog: Start) -> None:
    exe = program(tmp_path, "wd-scoped")
    stranger = subprocess.Popen([str(exe), "1000"])  # the test's, not the watchdog's
    try:
        wait_for(lambda: pids("wd-scoped") == {stranger.pid}, what="the stranger")
        first = watchdog(f"{exe} 1000")
        second = watchdog(f"{exe} 1000")  # another watchdog beside it, with the same rule
        wait_for(lambda: len(pids("wd-scoped")) == 3, what="each watchdog's own copy")
        first.wait_log("wd-scoped: running")
        second.wait_log("wd-scoped: running")
        assert first.stop() == 0
        assert stranger.poll() is None
        wait_for(lambda: len(pids("wd-scoped")) == 2, what="only the first watchdog's copies stopped")
        assert second.proc.poll() is None and stranger.pid in pids("wd-scoped")
    finally:
        stranger.kill()
        stranger.wait()


def test_scope_host_looks_at_every_process(tmp_path: Path, watchdog: Start) -> None:
    name = unique("wd-host")  # the watchdog looks at every process on the host
    exe = program(tmp_path, name)
    stranger = subprocess.Popen([str(exe), "1000"])
    try:
        wait_for(lambda: pids(name) == {stranger.pid}, what="the stranger")
        wd = watchdog(f"{exe} 1000", "--scope", "host")
        wd.wait_log(f"{name}: running (pid {stranger.pid})")
        assert "started" not in wd.log()
    finally:
        stranger.kill()
        stranger.wait()


# --- trust -----------------------------------------------------------------------------


@needs_root_and_setpriv
def test_another_users_process_of_the_services_name_is_not_adopted(
        tmp_path: Path, watchdog: Start) -> None:
    for directory in (tmp_path, tmp_path.parent):
        directory.chmod(0o711)  # nobody may run the program
    name = unique("wd-imp")
    exe = program(tmp_path, name)
    impostor = subprocess.Popen([*AS_NOBODY, str(exe), "1000"])
    try:
        wait_for(lambda: pids(name) == {impostor.pid}, what="nobody's process")
        wd = watchdog(f"{exe} 1000", "--scope", "host")
        log = wd.wait_log(f"pid {impostor.pid} is named '{name}' but runs as uid 65534")
        assert "not taken as the service" in log
        wait_for(lambda: len(pids(name)) == 2, what="root's own copy started")
        [own] = pids(name) - {impostor.pid}
        wd.wait_log(f"{name}: running (pid {own})")
        os.kill(own, signal.SIGKILL)  # the real one dies: started again, the impostor untouched
        wait_for(lambda: len(pids(name) - {own}) == 2, what="root's copy restarted")
        assert wd.stop() == 0
        assert impostor.poll() is None
    finally:
        impostor.kill()
        impostor.wait()


@needs_root_and_setpriv
def test_notify_messages_from_another_users_process_of_the_same_name_are_dropped(
        tmp_path: Path, watchdog: Start) -> None:
    for directory in (tmp_path, tmp_path.parent):
        directory.chmod(0o711)
    notifier = Path(__file__).parent / "programs" / "notifier.py"
    name = unique("wd-ntdb")
    db = tmp_path / name
    db.write_text(f"#!/bin/sh\nexec {sys.executable} {notifier} --name {name} --ready-after 30\n")
    db.chmod(0o755)
    web = program(tmp_path, unique("wd-ntweb"))
    wd = watchdog("--rule", f"db={db}", "--rule", f"web={web} 1000", "--notify", "db",
                  "--after", "web=db", "--scope", "host", "-v")
    [real] = wait_for(lambda: pids(name), what="the real db")
    socket_path = wait_for(lambda: next((line.split("NOTIFY_SOCKET=")[1].split()[0]
                                         for line in wd.log().splitlines() if "NOTIFY_SOCKET=" in line),
                                        None), what="the notify socket")
    impostor = subprocess.Popen([*AS_NOBODY, sys.executable, str(notifier), "--name", name],
                                env={**os.environ, "NOTIFY_SOCKET": socket_path}, stdout=subprocess.PIPE)
    try:
        wd.wait_log(f"notify: dropped a datagram from pid {impostor.pid}: the sender is not one of "
                    "the rule's processes", timeout=20)
        assert "db: ready" not in wd.log() and "web: started" not in wd.log()
        assert wait_for(lambda: pids_shown(wd, "db")) == [real]
    finally:
        impostor.kill()
        impostor.wait()


# --- hand-over and orphaned workers ----------------------------------------------------


def test_a_master_killed_as_soon_as_it_forked_its_workers_is_a_crash_not_a_hand_over(
        tmp_path: Path, watchdog: Start) -> None:
    svc = service(tmp_path, "wd-early", "--workers", "2")
    wd = watchdog(str(svc), "--interval", "60")
    first = wait_for(lambda: exactly(3, "wd-early"), what="a master and two workers")
    master = next(pid for pid in first if psutil.Process(pid).ppid() not in first)
    wd.wait_log("wd-early: running")
    os.kill(master, signal.SIGKILL)  # at once: however early, orphaned workers are a crash
    wd.wait_log(f"main process {master} died and left 2 of its workers")
    wait_for(lambda: len(pids("wd-early")) == 3 and not pids("wd-early") & first,
             what="a new master and new workers, none of the old ones")


def test_an_essential_master_whose_workers_live_on_ends_the_watchdog_with_its_status(
        tmp_path: Path, watchdog: Start) -> None:
    svc = service(tmp_path, "wd-essmaster", "--workers", "2")
    wd = watchdog(str(svc), "--essential", "wd-essmaster", "--interval", "60")
    first = wait_for(lambda: exactly(3, "wd-essmaster"), what="a master and two workers")
    master = next(pid for pid in first if psutil.Process(pid).ppid() not in first)
    wd.wait_log("wd-essmaster: running")
    os.kill(master, signal.SIGKILL)
    assert wd.proc.wait(30) == 128 + signal.SIGKILL
    assert "main process" in wd.log() and not pids("wd-essmaster")


def test_a_daemons_next_stage_is_a_hand_over_however_soon_its_parent_exits(
        tmp_path: Path, watchdog: Start) -> None:
    record = tmp_path / "record"
    svc = service(tmp_path, "wd-stages", "--new-master-on-usr2", "--workers", "2", "--record", str(record))
    counts = CheckCounts(tmp_path)
    wd = watchdog(str(svc), "--interval", "0.2", *counts.args, env=counts.env())
    first = wait_for(lambda: exactly(3, "wd-stages"), what="a master and two workers")
    master = next(pid for pid in first if psutil.Process(pid).ppid() not in first)
    wd.wait_log("wd-stages: running")
    os.kill(master, signal.SIGUSR2)  # it forks its successor and exits 0 at once
    new = wait_for(lambda: pids("wd-stages") - first, what="the new master")
    starts = wd.log().count("wd-stages: started")
    wait_for(lambda: master not in pids("wd-stages"), what="the old master gone")
    counts.wait(5)  # a wrong call would stop the successor by then
    assert pids("wd-stages") >= new and "died and left" not in wd.log()
    assert wd.log().count("wd-stages: started") == starts


# --- what a stop reaches ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["child", "daemon"])
def test_a_restart_continues_every_stopped_process_of_the_rule(
        tmp_path: Path, watchdog: Start, kind: str) -> None:
    svc = service(tmp_path, "wd-hung", "--workers", "2", "--stop-workers",
                  *(["--daemon"] if kind == "daemon" else []))
    wd = watchdog(str(svc), "--grace", "60", "--interval", "60")
    first = wait_for(lambda: exactly(3, "wd-hung"), what="a master and two workers")
    wd.wait_log("wd-hung: running")
    for pid in first:  # hung: every process stopped, as a debugger or the OOM handler leaves them
        os.kill(pid, signal.SIGSTOP)
    wait_for(lambda: all(psutil.Process(pid).status() == psutil.STATUS_STOPPED for pid in first))
    assert ctl(wd, "restart", "wd-hung").returncode == 0
    # The master waits for its workers, which act on its SIGTERM only once continued.
    wait_for(lambda: len(pids("wd-hung")) == 3 and not pids("wd-hung") & first, timeout=30,
             what="the service started again")
    assert "SIGKILL" not in wd.log()


def test_a_crashed_commands_leftovers_are_stopped_before_it_runs_again(
        tmp_path: Path, watchdog: Start) -> None:
    helper, main = program(tmp_path, "wd-left-job"), program(tmp_path, "wd-left-main")
    wd = watchdog("--rule", f"lead=sh -c '{helper} 1000 & exec {main} 1000'",
                  "--regex", "lead=wd-left-main", "--interval", "60")
    [job] = wait_for(lambda: pids("wd-left-job"), what="the job")
    [first] = wait_for(lambda: pids("wd-left-main"), what="the main process")
    wd.wait_log("lead: running")
    os.kill(first, signal.SIGKILL)
    wd.wait_log("left processes in its process group: stopping them")
    [again] = wait_for(lambda: pids("wd-left-main") - {first}, what="the command run again")
    wait_for(lambda: len(pids("wd-left-job")) == 1 and job not in pids("wd-left-job"),
             what="one job: the new run's, the old one stopped")
    assert again
