"""Kill storm: SIGKILL the services of one real watchdog again and again; no death lost, none doubled.

    python tests/stress/storm.py [--kills N] [--seed S] [--extra N] [--python-daemon]

One ``python -m watchdog`` subprocess (its working directory a temporary
directory) keeps three rules alive:

(a) a foreground child, a copy of sleep with a name of its own;
(b) a double-forking daemon matched by its name (the default basename
    matcher): ``daemon.c`` from this directory compiled with ``cc`` into the
    temporary directory, or, without a compiler, tests/programs/service.py
    ``--daemon`` behind a shell wrapper that bears the name;
(c) the same kind of daemon matched by the pid it writes (``--pidfile``).

The watchdog runs with ``--interval 60 --backoff-max 0`` and a short
``--stable-after``. Backoff is off because it would stretch a storm of quick
kills into hours: the storm measures that no death is lost and nothing is
started twice, not the crash-loop backoff policy. The 60 s interval means an
answer within the answer timeout (10 s) came from the event path (SIGCHLD for
the child, a pidfd for the daemons), not from the periodic scan.

With ``--extra N``, N more sleeping processes (started by the storm, before
the watchdog) sit in the process table throughout: the promises must not
depend on its size. The storm's own looks skip reading their stat, so its
cost stays that of a small table.

The storm sends N SIGKILLs (default 1,000) at random intervals from a seeded
RNG, spread evenly over the three rules. Each rule runs a timeline of its own
(the three side by side in one polling loop, so deaths of different rules
overlap however timing allows): kill the service, wait for the answer, then,
with probability ``--immediate`` (0.2), kill the replacement the moment it
appears (within the ~1 ms of the polling), otherwise after a random delay of
up to ``--max-delay`` (0.1 s). With probability ``--burst`` (0.1) a kill also
hits every other rule that is up, in the same instant. Each SIGKILL goes
through a pidfd after the process's start time is checked, so a reused pid
is never hit; when two copies of a service are alive, a kill hits both (a
duplicate must not pass for the answer to the next kill).

What is counted, and the promises (the script exits 1 when one is broken):

- **Deaths answered**: after each kill, a new copy of that rule's service
  appears (a process never killed before; for (c), the pidfile names it)
  within the answer timeout. Every kill must be answered.
- **Duplicates**: at any instant, at most one copy of each rule's service is
  alive. The process table is sampled after every kill, at every poll while
  an answer is awaited (about every millisecond) and by a sampler thread
  throughout (every few milliseconds); the most copies seen at once, per
  rule, is reported and must be 1.
- **Another's process taken as a service**: every service here is matched
  directly, so a rule that takes a process of another name for its service
  (the watchdog's "taking it as the service" warning) has taken another
  rule's: 0. Such a rule answers its next death with nothing.
- **Zombies left**: children of the watchdog in state Z after a settle
  period at the end: 0.
- **RSS growth**: the watchdog's resident memory (psutil) from after the
  warm-up (the first tenth of the kills) to the end: under 1 MB.
- **Exit status** of the watchdog after SIGTERM at the end: 0.

What a copy is. For (a), every live (not zombie) process of its name. A
daemonizing program is different: while it double-forks, its starter, the
intermediate session leader and the daemon all bear the program's name, so
counting names would call one daemon in the middle of daemonizing two
services (the "any stage" column shows the most processes of the name seen
at once, daemonizing stages included). A copy of
(b) or (c) is a live process of the name that is the daemon proper:
daemon.c rewrites its first argument from ``booting`` to ``running`` in place
the moment it is the grandchild (before it writes its pidfile), and no
intermediate fork ever carries ``running``. (With service.py only the daemon
proper sets the name, after the forks, and the wrapper that bears the name
before it execs has no service.py in its command line.) Simpler rules fail:
``ppid == watchdog`` does not tell, because the watchdog is a child subreaper
and every orphaned stage becomes its child; "a session leader is not the
daemon" misses the session leader in the instant between fork() and
setsid(); an age threshold is guesswork on a busy 2-core machine, where an
intermediate fork can live for many milliseconds. For (c) the rule is the same:
at most one daemon proper of that name, whatever the pidfile says. A killed
process still counts until it has exited: the watchdog learns of a death only
once the process is gone, so its replacement can never overlap its victim.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

try:
    from stresskit import (
        ExtraProcesses,
        Seen,
        Service,
        Watchdog,
        fail_if_not_running,
        install_stop_handlers,
        kb,
        read_pidfile,
        read_stat,
        sigkill,
        workspace,
    )
except ImportError as missing:  # psutil, or run from elsewhere without tests/stress on the path
    print(f"storm: {missing}: run it with the interpreter of an environment holding the project "
          "and its test extra (pip install -e '.[test]')", file=sys.stderr)
    raise SystemExit(2) from None

INTERVAL = 60.0  # the watchdog's --interval: far beyond any answer, so answers are event-driven
RSS_LIMIT = 1024 * 1024  # bytes of growth after the warm-up
POLL_SECONDS = 0.001  # how often the storm looks for an answer
SAMPLE_SECONDS = 0.003  # how often the sampler thread looks at the process table
START_TIMEOUT = 20.0  # for the first copies of every service
SLOW_ANSWER = 0.1  # seconds: an answer slower than this is counted (the README promises milliseconds)


@dataclass
class RuleStats:
    """What happened to one rule during the storm."""

    service: Service
    kills: int = 0  # kills aimed at the rule (one per death asked for)
    immediate: int = 0  # of which aimed at a copy the moment it appeared
    extra_sigkills: int = 0  # SIGKILLs to further copies (only when a duplicate was alive)
    answered: int = 0  # answered within the answer timeout
    late: int = 0  # answered only after it (the periodic scan, say)
    lost: int = 0  # never answered
    latencies: list[float] = field(default_factory=list)  # seconds, kill to answer
    slow_after_immediate: int = 0  # slow answers to kills aimed at a copy the moment it appeared
    max_copies: int = 0  # the most copies of the service alive at one instant
    max_any_stage: int = 0  # the most live processes of the name, daemonizing stages included
    duplicates: dict[str, datetime] = field(default_factory=dict)  # coexisting pids: first seen
    unanswered: list[tuple[str, datetime]] = field(default_factory=list)  # pids killed, when: late or lost

    def slow(self) -> int:
        """Answers that took longer than SLOW_ANSWER."""
        return sum(latency > SLOW_ANSWER for latency in self.latencies)

    def latency(self, quantile: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]


@dataclass
class StormResult:
    """The storm's figures, and which promises they keep."""

    kills: int
    seed: int
    extra: int
    stable_after: float
    daemons: str
    rules: list[RuleStats]
    zombies: list[str]
    rss_warm: int
    rss_end: int
    exit_status: int | None
    elapsed: float
    samples: int
    most_processes: int = 0
    notes: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)  # the log around each duplicate or lost death
    # The watchdog's warnings that a rule took a process its matcher does not name for its
    # service: every service here is matched directly, so each one is another rule's process.
    stand_ins: list[str] = field(default_factory=list)
    aborted: str | None = None

    @property
    def answered(self) -> int:
        return sum(rule.answered for rule in self.rules)

    @property
    def kills_sent(self) -> int:
        return sum(rule.kills for rule in self.rules)

    @property
    def unanswered(self) -> int:
        return sum(rule.late + rule.lost for rule in self.rules)

    @property
    def duplicates(self) -> int:
        """Distinct sets of copies seen alive together (0 when nothing doubled)."""
        return sum(len(rule.duplicates) for rule in self.rules)

    @property
    def rss_growth(self) -> int:
        return self.rss_end - self.rss_warm

    def broken(self) -> list[str]:
        """Every promise the storm saw broken, in words; empty when all were kept."""
        broken = []
        if self.aborted:
            broken.append(f"storm aborted: {self.aborted}")
        if self.kills_sent != self.kills:
            broken.append(f"{self.kills_sent} kills sent, {self.kills} asked for")
        if self.answered != self.kills_sent:
            broken.append(f"{self.kills_sent - self.answered} of {self.kills_sent} deaths not "
                          "answered within the answer timeout")
        for rule in self.rules:
            if rule.max_copies > 1:
                seen = [f"pids {pids} at {when.isoformat(timespec='milliseconds')}"
                        for pids, when in list(rule.duplicates.items())[:5]]
                broken.append(f"{rule.service.name}: {rule.max_copies} copies alive at once: "
                              + "; ".join(seen))
        if self.stand_ins:
            broken.append(f"{len(self.stand_ins)} times a rule took another's process for its "
                          f"service, first: {self.stand_ins[0]}")
        if self.zombies:
            broken.append(f"zombies left: {', '.join(self.zombies)}")
        if self.rss_growth >= RSS_LIMIT:
            broken.append(f"RSS grew by {kb(self.rss_growth)} after the warm-up")
        if self.exit_status != 0:
            broken.append(f"exit status after SIGTERM: {self.exit_status}")
        return broken

    def table(self) -> str:
        """The figures as a small table, promises last."""
        lines = [
            f"kill storm: {self.kills_sent} SIGKILLs, seed {self.seed}, {self.extra} extra processes, "
            f"{self.elapsed:.0f} s; "
            f"one watchdog --interval {INTERVAL:g} --backoff-max 0 --stable-after "
            f"{self.stable_after:g}; daemons: {self.daemons}",
            "backoff is off (--backoff-max 0): the storm measures that no death is lost and "
            "nothing doubles, not the backoff policy (which would stretch it into hours)",
            "",
            f"{'rule':<14} {'kind':<10} {'kills':>6} {'immed.':>6} {'answered':>9} "
            f"{'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'>100 ms':>7} {'max copies':>10} "
            f"{'any stage':>9}",
        ]
        for rule in self.rules:
            lines.append(
                f"{rule.service.name:<14} {rule.service.kind:<10} {rule.kills:>6} "
                f"{rule.immediate:>6} {rule.answered:>9} {rule.latency(0.5) * 1000:>7.1f} "
                f"{rule.latency(0.99) * 1000:>7.1f} {rule.latency(1.0) * 1000:>7.1f} "
                f"{rule.slow():>7} {rule.max_copies:>10} {rule.max_any_stage:>9}"
            )
        rss = f"{kb(self.rss_growth)} ({self.rss_warm // 1024:,} -> {self.rss_end // 1024:,} KB)"
        promises = [
            ("deaths answered", f"{self.answered}/{self.kills_sent}", "all",
             self.answered == self.kills_sent and self.kills_sent == self.kills),
            ("duplicate copies seen", str(self.duplicates), "0", self.duplicates == 0),
            ("another's process taken as a service", str(len(self.stand_ins)), "0",
             not self.stand_ins),
            ("zombies left (children of the watchdog)", str(len(self.zombies)), "0",
             not self.zombies),
            ("watchdog RSS growth after warm-up", rss, "< 1 MB", self.rss_growth < RSS_LIMIT),
            ("exit status after SIGTERM", str(self.exit_status), "0", self.exit_status == 0),
        ]
        lines += ["", f"{'promise':<42} {'figure':<28} {'limit':<7} ok"]
        for what, figure, limit, ok in promises:
            lines.append(f"{what:<42} {figure:<28} {limit:<7} {'yes' if ok else 'NO'}")
        lines.append(f"(process table sampled {self.samples:,} times, at most {self.most_processes:,} "
                     "processes in it; a copy is a live process of the name that is the daemon "
                     "proper, see the docstring)")
        late = sum(rule.late for rule in self.rules)
        lost = sum(rule.lost for rule in self.rules)
        if late or lost:
            lines.append(f"{late} deaths answered only after the answer timeout, {lost} never")
        slow = sum(rule.slow() for rule in self.rules)
        if slow:
            after_immediate = sum(rule.slow_after_immediate for rule in self.rules)
            lines.append(f"{slow} answers took over {SLOW_ANSWER * 1000:.0f} ms, {after_immediate} "
                         "of them to a kill aimed at a copy the moment it appeared (the README "
                         "promises milliseconds; not one of the storm's promises)")
        lines += [f"note: {note}" for note in self.notes]
        if self.aborted:
            lines.append(f"ABORTED: {self.aborted}")
        if self.evidence:
            lines += ["", "the watchdog's log around each duplicate and each death not answered in "
                      "time:", *self.evidence]
        return "\n".join(lines)


class Observer:
    """Looks at the process table (from the storm and from the sampler thread) and keeps score."""

    def __init__(self, stats: dict[str, RuleStats], skip: frozenset[str] = frozenset()) -> None:
        self.stats = stats
        self.skip = skip  # /proc entries of the extra processes: never a service
        self.names = {name[:15]: name for name in stats}
        self.samples = 0
        self.most_processes = 0  # the largest process table seen: the watchdog reads all of it
        self._lock = threading.Lock()

    def look(self) -> dict[str, list[Seen]]:
        """The live copies of each rule's service now; records the most seen at once."""
        any_stage: dict[str, list[Seen]] = {name: [] for name in self.stats}
        entries = _proc_entries()
        for entry in entries:
            if entry in self.skip:
                continue
            seen = read_stat(entry)
            if seen is not None and seen.alive and seen.name in self.names:
                any_stage[self.names[seen.name]].append(seen)
        copies = {name: [seen for seen in found if self.stats[name].service.is_proper(seen)]
                  for name, found in any_stage.items()}
        with self._lock:
            self.samples += 1
            self.most_processes = max(self.most_processes, len(entries))
            for name, stats in self.stats.items():
                stats.max_any_stage = max(stats.max_any_stage, len(any_stage[name]))
                stats.max_copies = max(stats.max_copies, len(copies[name]))
                if len(copies[name]) > 1:
                    together = ",".join(str(seen.pid) for seen in sorted(copies[name],
                                                                         key=lambda s: s.pid))
                    stats.duplicates.setdefault(together, datetime.now(UTC))
        return copies


def _proc_entries() -> list[str]:
    return [entry for entry in os.listdir("/proc") if entry.isdigit()]


def sampler(observer: Observer, stop: threading.Event) -> None:
    """Look at the process table every few milliseconds until ``stop`` is set."""
    while not stop.wait(SAMPLE_SECONDS):
        observer.look()


@dataclass
class Timeline:
    """One rule's part of the storm: its own RNG, its quota of kills, where it stands."""

    name: str
    rng: random.Random
    quota: int
    current: Seen | None = None  # the copy that answered the last kill (or the first copy)
    killed_at: float | None = None  # set while an answer is awaited
    killed: tuple[str, datetime] | None = None  # the pids killed and when, while an answer is awaited
    kill_at: float = 0.0  # when to kill next, while the service is up
    immediate: bool = False  # the next kill hits the copy the moment it appeared
    awaited_immediate: bool = False  # the kill whose answer is awaited was such a kill


class Storm:
    """The kills, their answers and the bookkeeping of one storm.

    Each rule runs its own timeline (kill, wait for the answer, then kill the
    replacement at once or after a random delay) and the three run side by
    side in one polling loop, so deaths of different rules overlap in every
    way timing allows; a burst also kills every other rule that is up.
    """

    def __init__(self, services: list[Service], observer: Observer, watchdog: Watchdog, *,
                 kills: int, seed: int, immediate: float, burst: float, max_delay: float,
                 answer_timeout: float, stop_at_first_loss: bool) -> None:
        self.services = {service.name: service for service in services}
        self.observer = observer
        self.watchdog = watchdog
        self.immediate = immediate
        self.burst = burst
        self.max_delay = max_delay
        self.answer_timeout = answer_timeout
        self.stop_at_first_loss = stop_at_first_loss
        self.killed: set[tuple[int, int]] = set()  # identities of every process killed
        self.timelines = [
            Timeline(service.name, random.Random(f"{seed}/{index}"),
                     kills // len(services) + (index < kills % len(services)))
            for index, service in enumerate(services)
        ]
        self.sent = 0

    def answer(self, name: str, copies: dict[str, list[Seen]]) -> Seen | None:
        """A copy of ``name``'s service that was never killed (for a pidfile rule: the one named)."""
        service = self.services[name]
        fresh = [seen for seen in copies[name] if seen.identity not in self.killed]
        if service.pidfile is not None:
            pid = read_pidfile(service.pidfile)
            fresh = [seen for seen in fresh if seen.pid == pid]
        return fresh[0] if fresh else None

    def start(self) -> None:
        """Wait for the first copy of every service."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            copies = self.observer.look()
            for line in self.timelines:
                line.current = line.current or self.answer(line.name, copies)
            if all(line.current for line in self.timelines):
                return
            fail_if_not_running(self.watchdog)
            if time.monotonic() > deadline:
                missing = [line.name for line in self.timelines if line.current is None]
                raise RuntimeError(f"never started: {missing}\n{self.watchdog.log_text()[-3000:]}")
            time.sleep(POLL_SECONDS)

    def run(self, on_kill: Callable[[int], None]) -> str | None:
        """Send every kill and await every answer; a reason when the storm had to stop, else None."""
        now = time.monotonic()
        for line in self.timelines:
            line.kill_at = now + line.rng.uniform(0, self.max_delay)
        while True:
            copies = self.observer.look()
            now = time.monotonic()
            for line in self.timelines:
                if line.killed_at is not None:
                    problem = self._await(line, copies, now)
                    if problem:
                        return problem
            for line in self.timelines:
                if line.killed_at is None and line.quota and now >= line.kill_at:
                    bursting = line.rng.random() < self.burst
                    others = [other for other in self.timelines if bursting and other is not line
                              and other.killed_at is None and other.quota]
                    for victim_line in [line, *others]:
                        problem = self._kill(victim_line, copies, now)
                        if problem:
                            return problem
                        on_kill(self.sent)
                    self.observer.look()  # right after the kills
            if all(line.killed_at is None and not line.quota for line in self.timelines):
                return None
            fail_if_not_running(self.watchdog)
            time.sleep(POLL_SECONDS)

    def _kill(self, line: Timeline, copies: dict[str, list[Seen]], now: float) -> str | None:
        stats = self.observer.stats[line.name]
        assert line.current is not None
        victims = copies[line.name] or [line.current]  # every copy: a duplicate must not answer
        sent = [victim for victim in victims if sigkill(victim)]
        if not sent:
            return f"{line.name}: no copy left to kill (expected pid {line.current.pid})"
        self.killed.update(victim.identity for victim in sent)
        stats.kills += 1
        stats.immediate += line.immediate
        line.awaited_immediate = line.immediate
        stats.extra_sigkills += len(sent) - 1
        line.quota -= 1
        line.killed_at = now
        line.killed = (",".join(str(victim.pid) for victim in sent), datetime.now(UTC))
        line.immediate = False
        self.sent += 1
        return None

    def _await(self, line: Timeline, copies: dict[str, list[Seen]], now: float) -> str | None:
        assert line.killed_at is not None and line.killed is not None
        stats = self.observer.stats[line.name]
        waited = now - line.killed_at
        seen = self.answer(line.name, copies)
        if seen is None:
            if waited > INTERVAL + self.answer_timeout:
                stats.lost += 1
                stats.unanswered.append(line.killed)
                return f"{line.name}: a death never answered, not even by the {INTERVAL:g} s scan"
            if waited > self.answer_timeout and self.stop_at_first_loss:
                stats.lost += 1
                stats.unanswered.append(line.killed)
                return f"{line.name}: a death not answered within {self.answer_timeout:g} s"
            return None
        stats.latencies.append(waited)
        if waited > SLOW_ANSWER and line.awaited_immediate:
            stats.slow_after_immediate += 1
        if waited > self.answer_timeout:
            stats.late += 1  # the event path lost it; the periodic scan (or luck) brought it back
            stats.unanswered.append(line.killed)
        else:
            stats.answered += 1
        line.current = seen
        line.killed_at = None
        line.killed = None
        line.immediate = line.rng.random() < self.immediate
        line.kill_at = now if line.immediate else now + line.rng.uniform(0, self.max_delay)
        return None


def run_storm(
    kills: int = 1000,
    seed: int = 1,
    *,
    immediate: float = 0.2,
    burst: float = 0.1,
    max_delay: float = 0.1,
    answer_timeout: float = 10.0,
    stable_after: float = 0.5,
    settle: float = 1.0,
    stop_at_first_loss: bool = False,
    python_daemon: bool = False,
    extra: int = 0,
    keep_log: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> StormResult:
    """Run one storm of ``kills`` SIGKILLs against a real watchdog; every process is gone after."""
    report = progress or (lambda message: None)
    started = time.monotonic()
    with workspace("st", python_daemon) as space, ExtraProcesses(space, extra) as load:
        services = [space.foreground("fg"), space.daemon("dm"), space.daemon("pf", pidfile=True)]
        stats = {service.name: RuleStats(service) for service in services}
        observer = Observer(stats, frozenset(str(pid) for pid in load.pids))
        args = [arg for service in services for arg in service.watchdog_args()]
        args += ["--interval", f"{INTERVAL:g}", "--backoff-max", "0",
                 "--stable-after", f"{stable_after:g}"]
        watchdog = Watchdog(args, space)
        stop = threading.Event()
        thread = threading.Thread(target=sampler, args=(observer, stop), daemon=True)
        try:
            storm = Storm(services, observer, watchdog, kills=kills, seed=seed,
                          immediate=immediate, burst=burst, max_delay=max_delay,
                          answer_timeout=answer_timeout, stop_at_first_loss=stop_at_first_loss)
            storm.start()
            thread.start()
            warmup = max(1, kills // 10)
            rss_warm = watchdog.rss()

            def on_kill(sent: int) -> None:
                nonlocal rss_warm
                if sent <= warmup:
                    rss_warm = watchdog.rss()
                if sent % 100 == 0 or sent == kills:
                    answered = sum(rule.answered for rule in stats.values())
                    report(f"{sent}/{kills} kills sent, {answered} answered")

            aborted = storm.run(on_kill)
            time.sleep(settle)
            observer.look()
            fail_if_not_running(watchdog)
            zombies = [f"{seen.name}[{seen.pid}]" for seen in watchdog.zombie_children()]
            rss_end = watchdog.rss()
            stop.set()
            thread.join()
            exit_status = watchdog.stop()
        finally:
            stop.set()
            if thread.is_alive():
                thread.join()
            watchdog.close()
        log = watchdog.log_text()
        if keep_log is not None:
            keep_log.write_text(log)
        notes = list(space.notes)
        stand_ins = [line for line in log.splitlines() if "taking it as the service" in line]
        if "Traceback" in log:
            notes.append("the watchdog's log holds a traceback: " + log[log.index("Traceback"):][:800])
        evidence = [line for rule in stats.values() for pids, when in rule.duplicates.items()
                    for line in log_around(log, rule.service.name, pids, when)]
        # A death not answered: the rule's lines from a little before the kill to the end
        # of the wait (the start it made, or the process it took for its service instead).
        evidence += [line for rule in stats.values() for pids, when in rule.unanswered
                     for line in log_around(log, rule.service.name, pids, when, after=answer_timeout,
                                            what="killed, not answered in time")]
    return StormResult(
        kills=kills, seed=seed, extra=extra, stable_after=stable_after, daemons=space.describe_daemons(),
        rules=list(stats.values()), zombies=zombies, rss_warm=rss_warm, rss_end=rss_end,
        exit_status=exit_status, elapsed=time.monotonic() - started, samples=observer.samples,
        most_processes=observer.most_processes, notes=notes, evidence=evidence, aborted=aborted,
        stand_ins=stand_ins,
    )


def log_around(log: str, name: str, pids: str, when: datetime, seconds: float = 1.5,
               after: float | None = None, what: str = "alive together",
               most: int = 80) -> list[str]:
    """The log lines of rule ``name`` from ``seconds`` before ``when`` to ``after`` seconds
    after it (``seconds`` when None), at most ``most`` of them (the log's lines begin with
    an ISO time), headed by the pids and ``what`` happened to them."""
    lines = [f"-- {name}: pids {pids} {what} at {when.isoformat(timespec='milliseconds')}"]
    start = when - timedelta(seconds=seconds)
    end = when + timedelta(seconds=seconds if after is None else after)
    found = []
    for line in log.splitlines():
        try:
            stamp = datetime.fromisoformat(line.split(" ", 1)[0])
        except ValueError:
            continue
        if f" {name}:" in line and start <= stamp <= end:
            found.append(line)
    if len(found) > most:
        found[most:] = [f"... {len(found) - most} more lines of {name}"]
    return lines + found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--kills", type=int, default=1000, help="SIGKILLs to send (default 1000)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the RNG (default 1)")
    parser.add_argument("--immediate", type=float, default=0.2,
                        help="chance that the next kill hits the copy that just appeared (0.2)")
    parser.add_argument("--burst", type=float, default=0.1,
                        help="chance that a kill hits every rule at once (0.1)")
    parser.add_argument("--max-delay", type=float, default=0.1,
                        help="longest random wait between kills, seconds (0.1)")
    parser.add_argument("--answer-timeout", type=float, default=10.0,
                        help="seconds a death may take to be answered (10)")
    parser.add_argument("--stable-after", type=float, default=0.5,
                        help="the watchdog's --stable-after (0.5)")
    parser.add_argument("--extra", type=int, default=0, metavar="N",
                        help="N more sleeping processes in the table throughout (0)")
    parser.add_argument("--python-daemon", action="store_true",
                        help="use tests/programs/service.py --daemon even where cc is found")
    parser.add_argument("--keep-log", type=Path, metavar="PATH",
                        help="copy the watchdog's whole log to PATH")
    args = parser.parse_args(argv)
    install_stop_handlers()
    try:
        result = run_storm(
            args.kills, args.seed, immediate=args.immediate, burst=args.burst,
            max_delay=args.max_delay, answer_timeout=args.answer_timeout,
            stable_after=args.stable_after, python_daemon=args.python_daemon, extra=args.extra,
            keep_log=args.keep_log,
            progress=lambda message: print(f"storm: {message}", file=sys.stderr, flush=True),
        )
    except KeyboardInterrupt:
        print("storm: interrupted; every process it started was stopped", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"storm: {exc}", file=sys.stderr)
        return 1
    print(result.table())
    broken = result.broken()
    for promise in broken:
        print(f"BROKEN: {promise}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
