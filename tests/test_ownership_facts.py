"""In-process tests of watchdog.ownership's facts and the snapshot's view: records built
by hand where a table cannot be produced on demand, real threads where it can."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from watchdog.ownership import Ownership, scope_root
from watchdog.rules import Rule
from watchdog.snapshot import Proc, Snapshot, read_stat, take_snapshot

WATCHDOG = 100  # the watchdog's pid in the tables below


def table(*procs: Proc) -> Snapshot:
    """A snapshot of these processes (and the watchdog), as the engine would get one."""
    everyone = {proc.pid: proc for proc in procs}
    everyone[WATCHDOG] = Proc(WATCHDOG, 1, "watchdog-test", "S", 1, pgid=WATCHDOG, sid=WATCHDOG)
    return Snapshot(everyone, self_pid=WATCHDOG, proc_root="/nonexistent")


def proc(pid: int, ppid: int, pgid: int, sid: int | None = None) -> Proc:
    return Proc(pid, ppid, "wd-svc", "S", 1000, pgid=pgid, sid=pgid if sid is None else sid)


RULE = Rule("wd-svc", "wd-svc", ("wd-svc",), "wd-svc")
# Last check: master 200 (its own group, our child) with workers 201 and 202.
BEFORE = [proc(200, WATCHDOG, 200), proc(201, 200, 200), proc(202, 200, 200)]


def seen(*procs: Proc) -> Ownership:
    """An Ownership whose last check saw ``procs`` as the rule's."""
    ownership = Ownership()
    ownership.seen(RULE, list(procs))
    return ownership


def test_workers_of_a_killed_master_are_orphaned_however_young() -> None:
    ownership = seen(*BEFORE)
    ownership.reaped(200, -9)
    workers = [proc(201, WATCHDOG, 200), proc(202, WATCHDOG, 200)]
    assert ownership.orphaned_workers(RULE, workers, table(*workers)) == (200, workers)


def test_workers_born_after_the_last_check_in_the_dead_masters_group_are_orphaned() -> None:
    ownership = seen(proc(200, WATCHDOG, 200))  # killed before any check saw its workers
    ownership.reaped(200, -9)
    workers = [proc(201, WATCHDOG, 200), proc(202, WATCHDOG, 200)]
    assert ownership.orphaned_workers(RULE, workers, table(*workers)) == (200, workers)
    elsewhere = [proc(201, WATCHDOG, 300), proc(202, WATCHDOG, 300)]
    assert ownership.orphaned_workers(RULE, elsewhere, table(*elsewhere)) == (0, [])


def test_a_master_seen_before_its_setsid_leaves_workers_in_the_group_it_made_after() -> None:
    ownership = seen(proc(200, WATCHDOG, 199))  # nginx's master, read between its fork and setsid
    ownership.reaped(200, -9)
    workers = [proc(201, WATCHDOG, 200), proc(202, WATCHDOG, 200)]
    assert ownership.orphaned_workers(RULE, workers, table(*workers)) == (200, workers)


def test_a_master_that_exited_0_after_forking_handed_over() -> None:
    ownership = seen(*BEFORE)
    ownership.reaped(200, 0)
    left = [proc(201, WATCHDOG, 200), proc(202, WATCHDOG, 200)]
    assert ownership.orphaned_workers(RULE, left, table(*left)) == (0, [])


def test_a_successor_in_a_session_or_group_of_its_own_is_a_hand_over() -> None:
    ownership = seen(proc(200, WATCHDOG, 200), proc(201, 200, 200))
    ownership.reaped(200, -9)
    for successor in (proc(201, WATCHDOG, 201), proc(201, WATCHDOG, 200, sid=201)):
        assert ownership.orphaned_workers(RULE, [successor], table(successor)) == (0, [])


def test_a_survivor_leading_workers_of_its_own_is_a_new_master() -> None:
    ownership = seen(proc(200, WATCHDOG, 200), proc(201, 200, 200), proc(203, 201, 200))
    ownership.reaped(200, -9)
    left = [proc(201, WATCHDOG, 200), proc(203, 201, 200)]
    assert ownership.orphaned_workers(RULE, left, table(*left)) == (0, [])


def test_a_main_process_not_reaped_here_one_survivor_is_a_successor_several_are_workers() -> None:
    # The master's status went to another parent.
    one = [proc(201, 1, 200)]
    assert seen(proc(200, 1, 200), proc(201, 200, 200)).orphaned_workers(RULE, one, table(*one)) == (0, [])
    two = [proc(201, 1, 200), proc(202, 1, 200)]
    assert seen(proc(200, 1, 200), *BEFORE[1:]).orphaned_workers(RULE, two, table(*two)) == (200, two)


def test_a_live_master_leaves_no_orphans() -> None:
    assert seen(*BEFORE).orphaned_workers(RULE, BEFORE, table(*BEFORE)) == (0, [])


def test_the_exits_kept_are_bounded() -> None:
    ownership = Ownership()
    for pid in range(5000):
        ownership.reaped(pid, 0)
    assert len(ownership.exits) <= 1024 and ownership.exit_of(4999) == 0 and ownership.exit_of(0) is None


def test_a_thread_id_is_no_process() -> None:
    done = threading.Event()
    thread = threading.Thread(target=done.wait)
    thread.start()
    try:
        tid = thread.native_id
        assert tid is not None and tid != os.getpid()
        assert os.path.exists(f"/proc/{tid}/stat")  # the kernel answers for it...
        assert read_stat("/proc", str(tid)) is None  # ...but it is not a process
        leader = read_stat("/proc", str(os.getpid()))
        assert leader is not None and leader.pgid == os.getpgrp() and leader.sid == os.getsid(0)
        assert take_snapshot().get(tid) is None
    finally:
        done.set()
        thread.join()


def test_a_scoped_snapshot_shows_descendants_only() -> None:
    child, grandchild = proc(300, WATCHDOG, 300), proc(301, 300, 300)
    stranger, strangers_child = proc(400, 1, 400), proc(401, 400, 400)
    everyone = {p.pid: p for p in (child, grandchild, stranger, strangers_child)}
    everyone[WATCHDOG] = Proc(WATCHDOG, 1, "watchdog-test", "S", 1)
    scoped = Snapshot(everyone, self_pid=WATCHDOG, proc_root="/nonexistent", scope=WATCHDOG)
    assert {p.pid for p in scoped.processes()} == {300, 301}
    assert scoped.get(401) is None and scoped.get(301) == grandchild
    whole = Snapshot(everyone, self_pid=WATCHDOG, proc_root="/nonexistent")
    assert {p.pid for p in whole.processes()} == {300, 301, 400, 401}


def test_the_scope_is_the_watchdogs_own_tree_unless_host_or_probing() -> None:
    if os.getpid() == 1:  # as PID 1 of a namespace: the whole namespace, whatever asked
        assert scope_root("descendants", False) is None
        return
    assert scope_root(None, False) == os.getpid()
    assert scope_root("descendants", True) == os.getpid()
    assert scope_root("host", False) is None
    assert scope_root(None, True) is None  # --once, --check


def test_trust_keeps_the_rules_uid_and_what_descends_from_it_and_refuses_the_rest(tmp_path: Path) -> None:
    def uid_file(pid: int, uid: int) -> None:
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "status").write_text(f"Name:\twd-svc\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n")

    master, worker = proc(500, 1, 500), proc(501, 500, 500)  # a daemon re-parented to PID 1
    impostor = proc(600, 1, 600)
    for pid, uid in ((500, 0), (501, 33), (600, 33)):
        uid_file(pid, uid)
    everyone = {p.pid: p for p in (master, worker, impostor)}
    snapshot = Snapshot(everyone, self_pid=WATCHDOG, proc_root=str(tmp_path))
    rule = Rule("wd-svc", "wd-svc", ("wd-svc",), "wd-svc", uid=0)
    ownership = Ownership()
    # The worker is listed first: the master it descends from is trusted in the same look.
    assert sorted(ownership.trusted(rule, [worker, impostor, master], set(), snapshot)) == [master, worker]
    assert Ownership().trusted(rule, [impostor], {600}, snapshot) == [impostor]  # it started it
    rule.uid = 33  # a rule of the impostor's uid takes it
    assert Ownership().trusted(rule, [impostor], set(), snapshot) == [impostor]


def test_trust_keeps_a_member_of_a_trusted_processs_group_after_its_leader_died(tmp_path: Path) -> None:
    (tmp_path / "501").mkdir()
    (tmp_path / "501" / "status").write_text("Name:\twd-svc\nUid:\t65534\t65534\t65534\t65534\n")
    master, orphan = proc(500, 1, 500), proc(501, WATCHDOG, 500)  # its master died unseen with it
    rule = Rule("wd-svc", "wd-svc", ("wd-svc",), "wd-svc", uid=0)
    ownership = Ownership()
    (tmp_path / "500").mkdir()
    (tmp_path / "500" / "status").write_text("Name:\twd-svc\nUid:\t0\t0\t0\t0\n")
    assert ownership.trusted(rule, [master], set(), table_at(tmp_path, master)) == [master]
    assert ownership.trusted(rule, [orphan], set(), table_at(tmp_path, orphan)) == [orphan]
    assert Ownership().trusted(rule, [orphan], set(), table_at(tmp_path, orphan)) == []  # no such past


def table_at(proc_root: Path, *procs: Proc) -> Snapshot:
    return Snapshot({p.pid: p for p in procs}, self_pid=WATCHDOG, proc_root=str(proc_root))
