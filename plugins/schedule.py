"""Rounds of each rule's probes and what their verdicts do, for the ``health`` plugin (not a plugin itself).

The plugin makes one when a rule has a health check, so a run without any
loads none of this. See plugins/health.py for what the flags mean.
"""

from __future__ import annotations

import bisect
from functools import partial
from typing import TYPE_CHECKING, cast

from watchdog.exits import EXIT_UNHEALTHY
from watchdog.health import AnyProbe, Cancel, Probe, Result, Target, failure_words, probes, seconds_text
from watchdog.logs import logger
from watchdog.rules import Rule
from watchdog.state import HEALTHY, RUNNING, UNHEALTHY, UNKNOWN
from watchdog.timers import Timer

from .health import EXIT, RESTART, SETTINGS, STATE, Schedule

if TYPE_CHECKING:  # concurrent.futures is imported once background work is
    from concurrent.futures import Future

    from watchdog.api import EngineAPI

# A probe must bound itself by the timeout; this much later the schedule stops waiting for it.
OVERDUE_AFTER = 1.0
# A round due at most this part of its interval after an earlier planned batch of rounds joins
# it: many rules' checks then share one wake-up of the loop (as Monit's share its cycle), and
# none runs later than its interval says.
EARLY = 0.1


class Round:
    """One round of a rule's probes, one probe after another."""

    __slots__ = ("generation", "checks", "target", "step", "passed", "future", "cancel", "overdue",
                 "settled")  # one is made per round, many times a second

    def __init__(self, generation: int, checks: list[AnyProbe], target: Target) -> None:
        self.generation = generation
        self.checks = checks
        self.target = target
        self.step = 0  # the probe under way
        self.passed: list[Result] = []  # what the probes that passed said
        self.future: Future[Result] | None = None  # a blocking probe's thread, while it runs
        self.cancel: Cancel | None = None  # ends the loop probe under way
        self.overdue: Timer | None = None  # cancelled when it answers: an idle loop sleeps through it
        self.settled = False  # its verdict is in (answered, declared overdue, or the run ended)


class Run:
    """What the schedule remembers of a rule: its current run's probing."""

    def __init__(self) -> None:
        self.generation = 0  # bumped whenever the run ends: late answers of older rounds are dropped
        # The engine started its command then: the start period's origin.
        self.started_at: float | None = None
        self.start_period_until: float | None = None  # None: over, or none was asked for
        self.failures = 0  # failed rounds in a row
        self.due: float | None = None  # its next round is in the batch due then
        self.round: Round | None = None
        self.target: Target | None = None  # the last round's: most rounds look at the same processes


class Batch:
    """Rounds due at one time, run on one wake-up of the loop: (rule, generation) each."""

    def __init__(self, timer: Timer, rounds: list[tuple[Rule, int]]) -> None:
        self.timer = timer
        self.rounds = rounds


def call_probe(check: Probe, target: Target) -> Result:
    """A blocking probe, in a background thread."""
    try:
        return check(target)
    except BaseException as exc:  # a probe's bug (sys.exit too) is a failed check, not a crashed schedule
        return Result(False, f"probe error: {failure_words(exc, target.timeout)}")


class Scheduler:
    """One run's schedule: the batches of rounds planned; each rule's memory lives on the rule."""

    def __init__(self, engine: EngineAPI) -> None:
        self.engine = engine
        self.batches: dict[float, Batch] = {}  # by due time
        self.due_times: list[float] = []  # the batches', in order

    def process_started(self, rule: Rule) -> None:
        run_of(rule).started_at = self.engine.clock()

    def found(self, rule: Rule, schedule: Schedule) -> None:
        """The rule is seen running: a new run, its first round an interval from now."""
        run = run_of(rule)
        self.end_run(rule, run)
        now = self.engine.clock()
        origin = run.started_at if run.started_at is not None else now
        run.started_at = None
        run.start_period_until = origin + schedule.start_period if schedule.start_period else None
        self.schedule(rule, run, now + schedule.interval)

    def end_run(self, rule: Rule, run: Run) -> None:
        self.unschedule(rule, run)
        run.generation += 1
        run.failures = 0
        if run.round is not None and not run.round.settled:
            self.settle(run.round)  # its sockets are closed, its command killed

    def stopping(self, rule: Rule) -> None:
        self.end_run(rule, run_of(rule))

    def not_running(self, rule: Rule) -> None:
        self.end_run(rule, run_of(rule))
        engine = self.engine
        if engine.status[rule.name].health != UNKNOWN:
            engine.set_health(rule, UNKNOWN, "not running")

    def schedule(self, rule: Rule, run: Run, when: float) -> None:
        """Plan the rule's next round for ``when``, or with a batch planned a little earlier."""
        times = self.due_times
        place = bisect.bisect_right(times, when)
        if place and times[place - 1] >= when - EARLY * rule.settings[SETTINGS].interval:
            when = times[place - 1]
            self.batches[when].rounds.append((rule, run.generation))
        else:
            times.insert(place, when)
            self.batches[when] = Batch(self.engine.call_at(when, partial(self.run_batch, when)),
                                       [(rule, run.generation)])
        run.due = when

    def unschedule(self, rule: Rule, run: Run) -> None:
        batch = self.batches.get(run.due) if run.due is not None else None
        run.due = None
        if batch is not None:
            batch.rounds.remove((rule, run.generation))
            if not batch.rounds:  # no wake-up for nothing
                batch.timer.cancel()
                self.forget_batch(batch.timer.when)

    def forget_batch(self, when: float) -> Batch:
        self.due_times.pop(bisect.bisect_left(self.due_times, when))
        return self.batches.pop(when)

    def run_batch(self, when: float) -> None:
        if when not in self.batches:  # emptied (and its timer cancelled) on this very wake-up
            return
        for rule, generation in self.forget_batch(when).rounds:
            try:
                self.due(rule, generation)
            except BaseException as exc:  # the schedule's own bug: the other rules' rounds still run
                logger.error("health round failed: %s: %s", type(exc).__name__, exc, exc_info=exc,
                             extra={"rule": rule.name, "event": "plugin-error"})

    def due(self, rule: Rule, generation: int) -> None:
        engine, run, schedule = self.engine, run_of(rule), rule.settings[SETTINGS]
        status = engine.status[rule.name]
        if generation != run.generation:
            return
        run.due = None
        if status.state != RUNNING:
            return  # the next run schedules its own rounds when the rule is found again
        last = run.round
        if last is not None and last.future is not None and not last.future.done():
            # A probe that ignores its timeout still holds a thread: start no second one.
            self.verdict(rule, Result(False, f"timed out after {seconds_text(schedule.timeout)} "
                                             "(the last probe has not returned)"))
            self.next_round(rule, generation)
            return
        pids = tuple(sorted(set(status.pids) | status.children)) if status.children else status.pids
        target = run.target
        if target is None or target.pids != pids or target.timeout != schedule.timeout:
            target = run.target = Target(pids, schedule.timeout)
        checks = probes(rule)
        this = run.round = Round(generation, checks, target)
        self.run_step(rule, this)
        if not this.settled:  # most loop probes on loopback answer at once: no timer for them
            limit = schedule.timeout * len(checks) + OVERDUE_AFTER
            this.overdue = engine.call_later(limit, partial(self.overdue, rule, this))

    def run_step(self, rule: Rule, this: Round) -> None:
        """Start the round's next probe, or give the round's verdict when every one passed."""
        engine = self.engine
        if this.step == len(this.checks):
            passed = this.passed
            self.answered(rule, this, passed[0] if len(passed) == 1 else Result(True, "; ".join(
                result.detail for result in passed)))
            return
        check, step = this.checks[this.step], this.step
        start = getattr(check, "start", None)
        if start is None:
            blocking = cast(Probe, check)  # a plain callable: it blocks, so it gets a thread
            this.future = engine.run_in_background(partial(call_probe, blocking, this.target),
                                                   partial(self.thread_answered, rule, this))
            return
        stepped = partial(self.stepped, rule, this, step)
        try:
            cancel = start(this.target, engine, stepped)
        except BaseException as exc:  # a probe's bug (sys.exit too) is a failed check
            stepped(Result(False, f"probe error: {failure_words(exc, this.target.timeout)}"))
            return
        if this.step == step and not this.settled:  # it did not answer at once
            this.cancel = cancel

    def thread_answered(self, rule: Rule, this: Round, future: Future[Result]) -> None:
        try:
            result = future.result()
        except BaseException as exc:  # no thread for it, or a probe that called sys.exit
            result = Result(False, f"probe error: {exc}")
        self.stepped(rule, this, this.step, result)

    def stepped(self, rule: Rule, this: Round, step: int, result: Result) -> None:
        """A probe of the round answered: the next one, or the verdict."""
        if this.settled or step != this.step:
            return
        this.cancel = None
        if not result.ok:
            self.answered(rule, this, result)
            return
        this.passed.append(result)
        this.step += 1
        self.run_step(rule, this)

    def settle(self, this: Round) -> None:
        """The round is over: end the probe under way and the overdue timer."""
        this.settled = True
        if this.overdue is not None:
            this.overdue.cancel()
        cancel, this.cancel = this.cancel, None
        if cancel is not None:
            cancel()

    def answered(self, rule: Rule, this: Round, result: Result) -> None:
        if this.settled:
            return
        self.settle(this)
        if this.generation != run_of(rule).generation:
            return
        self.verdict(rule, result)
        self.next_round(rule, this.generation)

    def overdue(self, rule: Rule, this: Round) -> None:
        if this.settled or this.generation != run_of(rule).generation:
            return
        self.settle(this)
        timeout = rule.settings[SETTINGS].timeout
        self.verdict(rule, Result(False, f"timed out after {seconds_text(timeout)}"))
        self.next_round(rule, this.generation)

    def next_round(self, rule: Rule, generation: int) -> None:
        run = run_of(rule)
        if generation == run.generation:  # the verdict did not end the run
            self.schedule(rule, run, self.engine.clock() + rule.settings[SETTINGS].interval)

    # --- verdicts ---------------------------------------------------------------

    def verdict(self, rule: Rule, result: Result) -> None:
        engine, run, schedule = self.engine, run_of(rule), rule.settings[SETTINGS]
        health = engine.status[rule.name].health
        if result.ok:
            run.failures = 0
            run.start_period_until = None
            engine.set_health(rule, HEALTHY, result.detail)
            return
        if run.start_period_until is not None and engine.clock() < run.start_period_until:
            engine.set_health(rule, health, f"{result.detail} (start period)")
            return
        run.failures += 1
        if run.failures < schedule.retries:
            logger.info("health check failed (%d of %d): %s", run.failures, schedule.retries,
                        result.detail, extra={"rule": rule.name, "event": "health-check-failed"})
            engine.set_health(rule, health, f"{result.detail} ({run.failures} of {schedule.retries})")
            return
        detail = result.detail if run.failures == 1 else f"{result.detail} for {run.failures} checks"
        engine.set_health(rule, UNHEALTHY, detail)
        if health != UNHEALTHY:
            self.act(rule, schedule, engine, f"unhealthy: {detail}")

    def act(self, rule: Rule, schedule: Schedule, engine: EngineAPI, reason: str) -> None:
        if schedule.on_unhealthy == RESTART:
            engine.restart(rule, reason)
        elif schedule.on_unhealthy == EXIT:
            engine.give_up(rule, reason, EXIT_UNHEALTHY)


def run_of(rule: Rule) -> Run:
    run: Run | None = rule.state.get(STATE)
    if run is None:  # made once: a round asks several times
        run = rule.state[STATE] = Run()
    return run
