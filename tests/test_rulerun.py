"""The rule-run state machine in process: a real engine and real plugins, with a fake clock,
a fake spawner and a fake process table, so that thousands of starts take a moment.

What the kernel does (fork, exit, signals) is what is faked here; every decision is the
engine's and the plugins' own code. The real-process tests of the same behaviour are in
test_runmodel.py.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from watchdog import hookimpl
from watchdog.config import Config
from watchdog.engine import Engine
from watchdog.hooks import SafeHooks
from watchdog.logs import logger
from watchdog.manager import make_plugin_manager
from watchdog.matchers import Matchers
from watchdog.readiness import READY_REPORTED
from watchdog.rulerun import ARROWS, after_end, decide
from watchdog.rules import NO, ON_FAILURE, Rule, make_rule
from watchdog.snapshot import CLOCK_TICKS, Proc, Snapshot
from watchdog.state import (
    EXITED,
    FAILED,
    MISSING,
    RUNNING,
    STARTING,
    STOPPED,
    STOPPING,
    WAITING,
    RuleStatus,
    RunState,
)
from watchdog.stopping import Targets

FIRST_FAKE_PID = 10_000_000  # above any pid_max: a stray signal can reach no real process


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeProcesses:
    """The spawner (the engine's ``children``) and the process table (its snapshots) in one.

    ``spawn`` makes a process named after the rule's program; ``exit`` ends one with a
    status, as the kernel would report it to ``reap``; a stop signal ends it at once.
    """

    def __init__(self) -> None:
        self.table: dict[int, Proc] = {}
        self.ours: dict[int, Rule] = {}
        self.ended: list[tuple[int, Rule | None, int]] = []
        self.next_pid = FIRST_FAKE_PID
        self.spawned: list[tuple[str, int]] = []
        self.ignore_term: set[int] = set()
        self.signals: list[tuple[int, int]] = []
        self.gone: set[str] = set()  # programs removed: their start fails as exec would
        self.booted = time.clock_gettime(time.CLOCK_BOOTTIME)

    # what the engine's Children offers
    def __bool__(self) -> bool:
        return bool(self.ours)

    def pids(self) -> list[int]:
        return list(self.ours)

    def spawn(self, rule: Rule) -> int:
        if rule.program in self.gone:
            raise FileNotFoundError(2, "No such file or directory")
        pid = self.next_pid
        self.next_pid += 1
        self.ours[pid] = rule
        self.table[pid] = Proc(pid, 1, rule.program[:15], "S", int(self.booted * CLOCK_TICKS))
        self.spawned.append((rule.name, pid))
        return pid

    def reap(self) -> list[tuple[int, Rule | None, int]]:
        ended, self.ended = self.ended, []
        return ended

    def drain_output(self) -> None:
        pass

    # what the kernel does
    def exit(self, pid: int, returncode: int) -> None:
        self.table.pop(pid, None)
        self.ended.append((pid, self.ours.pop(pid, None), returncode))

    def running(self, name: str) -> list[int]:
        return [pid for pid, rule in self.ours.items() if rule.name == name]

    # what the engine's Tracker offers
    def take(self, full: bool = False) -> Snapshot:
        return Snapshot(dict(self.table), os.getpid())

    def follow(self, procs: Any) -> None:
        pass


class FakeSignaller:
    """Signals to fake processes: any stop signal ends them, unless told to ignore TERM."""

    def __init__(self, processes: FakeProcesses, waiter: Any) -> None:
        self.processes = processes
        self.waiter = waiter

    def send(self, targets: Targets, sig: int) -> int:
        pids = (targets.groups | targets.pids) & set(self.processes.table)
        for pid in pids:
            self.processes.signals.append((pid, sig))
            if sig == signal.SIGKILL or (sig != signal.SIGCONT and pid not in self.processes.ignore_term):
                self.processes.exit(pid, -sig)
        return len(pids)

    def stop(self, targets: Targets, stop_signal: int) -> None:
        self.send(targets, stop_signal)

    def kill(self, children: set[int], procs: list[Proc]) -> None:
        self.send(Targets(set(children), {proc.pid for proc in procs}), signal.SIGKILL)


class Recorder:
    """A plugin that keeps every state change and every log-worthy restart it is told of."""

    def __init__(self) -> None:
        self.changes: list[tuple[str, str, str, str]] = []

    @hookimpl
    def watchdog_rule_state(self, rule: Rule, old: str, new: str, reason: str) -> None:
        self.changes.append((rule.name, old, new, reason))


class Harness:
    """A real engine with the built-in respawn, driven one loop turn at a time."""

    def __init__(self, *commands: str, configure: dict[str, Any] | None = None) -> None:
        self.clock = FakeClock()
        self.processes = FakeProcesses()
        self.recorder = Recorder()
        pm = make_plugin_manager()
        for name in ("control", "status", "health", "log", "notify"):
            plugin = pm.get_plugin(name)
            if plugin is not None:  # only respawn and the matchers act here
                pm.unregister(plugin)
        pm.register(self.recorder, "recorder")
        self.rules = [make_rule(command, name=command.split()[0].rsplit("/", 1)[-1]) for command in commands]
        options: dict[str, Any] = {"backoff_max": 30.0, "stable_after": 10.0, "max_restarts": 0,
                                   **(configure or {})}
        matchers = Matchers.of(pm)
        matchers.configure(Config(self.rules, options), "basename")
        pm.hook.watchdog_configure(config=Config(self.rules, options))
        self.engine = Engine(self.rules, SafeHooks(pm), matchers, interval=60, grace=5,
                             use_pidfd=False, clock=self.clock)
        self.engine.children = self.processes  # type: ignore[assignment]
        self.engine.take_snapshot = self.processes.take
        self.engine.snapshots = self.processes  # type: ignore[assignment]
        self.engine.signaller = FakeSignaller(self.processes, self.engine.waiter)  # type: ignore[assignment]
        self.engine.hooks.watchdog_started(engine=self.engine)

    def rule(self, name: str) -> Rule:
        return next(rule for rule in self.rules if rule.name == name)

    def state(self, name: str) -> RunState:
        return self.engine.status[name].state

    def turn(self, seconds: float = 0.0) -> None:
        """Let ``seconds`` pass, then one turn of the loop: due timers, reaping, a check."""
        self.clock.now += seconds
        for timer in self.engine.timers.pop_due(self.clock()):
            if timer.callback is not None:
                timer.callback()
        self.engine.reap()
        self.engine._check()

    def settle(self, turns: int = 5, step: float = 0.05) -> None:
        for _ in range(turns):
            self.turn(step)


@pytest.fixture
def harness() -> Harness:
    return Harness("/bin/sleep 1000")


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{getattr(record, 'rule', '')}: {record.getMessage()}")

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def log() -> Iterator[Lines]:
    """The watchdog's log lines, every level (its logger does not propagate once set up)."""
    lines = Lines()
    level = logger.level
    logger.addHandler(lines)
    logger.setLevel(logging.DEBUG)
    yield lines
    logger.removeHandler(lines)
    logger.setLevel(level)


def test_every_change_goes_through_one_arrow_with_its_own_reason(harness: Harness) -> None:
    harness.settle()
    [pid] = harness.processes.running("sleep")
    assert harness.state("sleep") == RUNNING
    harness.processes.exit(pid, -9)
    harness.settle()
    harness.engine.restart(harness.rule("sleep"), "asked by the test", planned=True)
    harness.settle()
    changes = harness.recorder.changes
    assert [(old, new) for _, old, new, _ in changes] == [
        ("missing", "starting"), ("starting", "running"), ("running", "missing"),
        ("missing", "starting"), ("starting", "running"), ("running", "stopping"),
        ("stopping", "missing"), ("missing", "starting"), ("starting", "running")]
    reasons = [reason for *_, reason in changes]
    assert reasons[0] == f"started pid {pid}"
    assert reasons[2] == "killed by SIGKILL"
    assert reasons[5] == "asked by the test"
    assert reasons[6] == "stopped to start again: asked by the test"
    assert all(RunState(new) in ARROWS[RunState(old)] for _, old, new, _ in changes)
    assert harness.engine.status["sleep"].reason == reasons[-1]


def test_the_arrows_leave_final_states_only_by_a_start_or_a_stop() -> None:
    for final in (STOPPED, EXITED, FAILED):  # to failed: a start that could not run (--restart no)
        assert ARROWS[final] - {FAILED} == {MISSING, STARTING, STOPPING}
    assert set(ARROWS) == set(RunState)


def test_thousands_of_failures_back_off_to_the_cap_and_never_overflow(
    log: Lines,
) -> None:
    harness = Harness("/bin/sleep 1000", configure={"backoff_max": 30.0})
    harness.settle()
    for _ in range(3000):
        [pid] = harness.processes.running("sleep")
        harness.processes.exit(pid, 1)
        harness.turn(0.01)  # it ended at once: a failure, and the next start waits
        while not harness.processes.running("sleep"):
            harness.turn(30.0)  # never longer than the cap
    assert len(harness.processes.spawned) == 3001
    assert "plugin-error" not in log.text and "OverflowError" not in log.text
    # the plugin is still registered and acting: a death now is answered after the capped wait
    [pid] = harness.processes.running("sleep")
    harness.processes.exit(pid, 1)
    harness.turn(0.01)
    assert not harness.processes.running("sleep")
    harness.turn(29.0)
    assert not harness.processes.running("sleep")
    harness.turn(1.0)
    assert len(harness.processes.running("sleep")) == 1


def test_a_healthy_rule_is_restarted_after_another_crash_looped_thousands_of_times(
    log: Lines,
) -> None:
    harness = Harness("/bin/sleep 1000", "/bin/cat", configure={"backoff_max": 0.0})
    harness.settle()
    for _ in range(2000):  # --backoff-max 0: cat starts again at once, 2,000 times
        [pid] = harness.processes.running("cat")
        harness.processes.exit(pid, 1)
        harness.turn(0.001)
    assert len([name for name, _ in harness.processes.spawned if name == "cat"]) == 2001
    assert "plugin-disabled" not in log.text and "OverflowError" not in log.text
    [sleeper] = harness.processes.running("sleep")
    harness.processes.exit(sleeper, -9)
    harness.turn(0.001)
    [again] = harness.processes.running("sleep")
    assert again != sleeper


def test_a_planned_restart_is_not_a_failure_but_a_health_restart_is(
    log: Lines,
) -> None:
    harness = Harness("/bin/sleep 1000")
    harness.settle()
    rule = harness.rule("sleep")
    for _ in range(5):  # an operator's restarts, one a second: each starts at once
        harness.engine.restart(rule, "restarted by uid 0", planned=True)
        harness.turn(0.0)
        harness.turn(0.0)
        assert harness.state("sleep") in (STARTING, RUNNING)
        harness.turn(1.0)
    assert "failures in a row" not in log.text
    for _ in range(3):  # restarts that answer a failure count
        harness.engine.restart(rule, "unhealthy")
        harness.turn(0.0)
        harness.turn(1.0)
        harness.turn(1.0)
    assert "(3 failures in a row)" in log.text


def test_restart_no_ends_as_exited_or_failed_and_a_start_runs_it_again() -> None:
    harness = Harness("/bin/true", "/bin/false")
    for rule in harness.rules:
        rule.restart = NO
    harness.settle()
    [ok] = harness.processes.running("true")
    [bad] = harness.processes.running("false")
    harness.processes.exit(ok, 0)
    harness.processes.exit(bad, 3)
    harness.settle(turns=30, step=0.1)  # past the settling of a starter that exited 0
    assert harness.state("true") == EXITED and harness.state("false") == FAILED
    assert harness.engine.status["false"].reason == "exited with status 3; --restart no"
    assert harness.engine.status["true"].ready and not harness.engine.status["false"].ready
    assert len(harness.processes.spawned) == 2  # a final state: nothing started them again
    harness.engine.start(harness.rule("false"))
    assert harness.state("false") == STARTING and len(harness.processes.running("false")) == 1


def test_on_failure_restarts_a_failure_with_backoff_and_ends_on_a_success_status() -> None:
    harness = Harness("/bin/false")
    rule = harness.rule("false")
    rule.restart = ON_FAILURE
    rule.success_exit = frozenset({0, 143})
    harness.settle()
    harness.processes.exit(harness.processes.running("false")[0], 1)
    harness.turn(0.01)
    assert len(harness.processes.running("false")) == 1  # the first restart is at once
    harness.processes.exit(harness.processes.running("false")[0], -signal.SIGKILL)
    harness.turn(0.01)
    assert harness.state("false") == MISSING and not harness.processes.running("false")  # backoff
    harness.turn(0.3)
    harness.processes.exit(harness.processes.running("false")[0], -signal.SIGTERM)  # 143: success
    harness.settle(turns=30, step=0.1)
    assert harness.state("false") == EXITED


def test_what_the_policies_make_of_each_end() -> None:
    rule = make_rule("/bin/true")
    assert after_end(rule, 1) == MISSING  # always
    rule.restart = ON_FAILURE
    assert (after_end(rule, 0), after_end(rule, 1), after_end(rule, None)) == (EXITED, MISSING, MISSING)
    rule.restart = NO
    assert (after_end(rule, 0), after_end(rule, -15), after_end(rule, None)) == (EXITED, FAILED, FAILED)


def test_ready_for_a_notify_rule_is_its_word_since_its_last_start() -> None:
    harness = Harness("/bin/sleep 1000")
    rule = harness.rule("sleep")
    rule.settings[READY_REPORTED] = True
    harness.settle()
    run = harness.engine.status["sleep"]
    assert run.state == RUNNING and not run.ready
    harness.engine.set_ready(rule)
    assert run.ready
    harness.engine.restart(rule, "restarted by uid 0", planned=True)
    assert not run.ready  # at once, with the state: a waiter never sees the old word
    harness.settle()
    assert run.state == RUNNING and not run.ready
    harness.engine.set_ready(rule)
    assert run.ready
    harness.engine.set_health(rule, "unhealthy", "HTTP 500")
    assert not run.ready


def test_a_start_timeout_longer_than_stable_after_still_backs_off(log: Lines) -> None:
    harness = Harness("/bin/sleep 1000", configure={"stable_after": 10.0})
    rule = harness.rule("sleep")
    rule.settings[READY_REPORTED] = True  # --notify, and it never says READY=1
    rule.start_timeout = 30.0
    harness.settle()
    for _ in range(3):  # each run lasts its 30 s, past --stable-after, never ready
        harness.turn(30.0)
        harness.settle(turns=10, step=0.5)
    assert "(3 failures in a row)" in log.text


def test_a_start_timeout_fails_the_start_and_counts_as_a_failure() -> None:
    harness = Harness("/bin/sleep 1000")
    rule = harness.rule("sleep")
    rule.settings[READY_REPORTED] = True
    rule.start_timeout = 3.0
    harness.settle()
    first = harness.processes.running("sleep")
    harness.turn(3.0)
    harness.settle()
    assert harness.processes.running("sleep") != first
    assert any(reason.startswith("not ready within 3s") for *_, reason in harness.recorder.changes)
    rule.restart = NO
    harness.turn(3.0)
    harness.settle()
    assert harness.state("sleep") == FAILED and not harness.processes.running("sleep")


def test_a_program_that_cannot_run_under_restart_no_failed_and_is_not_tried_again() -> None:
    harness = Harness("/bin/true")
    rule = harness.rule("true")
    rule.restart = NO
    harness.processes.gone.add("true")
    harness.settle()
    run = harness.engine.status["true"]
    assert (run.state, run.last_exit, run.reason) == (FAILED, 127, "cannot start: No such file or directory")
    harness.settle(turns=10, step=1.0)
    assert run.starts == 1
    harness.processes.gone.clear()
    harness.engine.start(rule)  # watchdogctl start, once the program is back
    harness.settle()
    assert run.state in (STARTING, RUNNING) and len(harness.processes.spawned) == 1


def test_what_a_check_decides_for_a_rule_whose_processes_are_gone() -> None:
    rule = make_rule("/bin/true")
    run = RuleStatus(state=RUNNING, ended_with=-9)
    db_down = lambda: ("db",)  # noqa: E731
    nothing = lambda: ()  # noqa: E731
    assert decide(rule, run, [12], False, db_down) == (RUNNING, "found pid 12")
    assert decide(rule, run, [], True, db_down)[0] == STARTING
    assert decide(rule, run, [], False, nothing) == (MISSING, "killed by SIGKILL")
    assert decide(rule, run, [], False, db_down) == (WAITING, "killed by SIGKILL; waiting for db")
    rule.restart = NO  # a one-shot that ended is done, whatever it comes after
    run.ended_with = 0
    assert decide(rule, run, [], False, db_down) == (EXITED, "exited with status 0; --restart no")
    waiting = RuleStatus(state=WAITING)
    assert decide(rule, waiting, [], False, db_down) == (WAITING, "waiting for db")
    assert decide(rule, waiting, [], False, nothing) == (MISSING, "the rules it comes after are ready")
