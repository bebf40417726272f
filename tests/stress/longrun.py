"""Long run: 100,000 checks and thousands of restarts; the watchdog's memory and fds must stay flat.

    python tests/stress/longrun.py [--checks N] [--restarts M] [--quick] [--prefix] [--csv PATH]

One ``python -m watchdog`` subprocess (its working directory a temporary
directory) keeps ten rules alive: four foreground copies of sleep, three
double-forking daemons matched by name and three matched by ``--pidfile``
(``daemon.c`` compiled with ``cc``, or tests/programs/service.py without a
compiler), at ``--interval 0.01``, the shortest the command line accepts, so
that 100,000 checks take a quarter of an hour or so rather than a week. It
runs with the default backoff and ``--stable-after 1``; a service is killed
only once it has run for MIN_AGE (1.5 s), so every kill is answered at once
and the respawn bookkeeping is exercised on every restart.

How checks are counted: exactly, by a plugin. ``check_counter.py`` (loaded with
``-p``) counts the engine's ``watchdog_checked`` calls, one at the end of
every check, and its ``watchdog_process_started`` calls, and writes both to a
file every 100 checks and at each start. Elapsed time divided by the interval
is printed beside it: it is only an upper bound, as a check takes time too
(the next one is due an interval after the last one began), while kills add
event-driven checks.

Kills (SIGKILL through a pidfd, to the daemon proper, never an intermediate
fork) are paced by the checks: after C of N checks, ``M * C / N`` kills are due,
each aimed at a random rule whose service has run for MIN_AGE. Restarts are the
starts the plugin counted beyond the first start of each rule.

Every ``--sample-every`` seconds (2) the run samples the watchdog's resident
memory (psutil RSS) and open file descriptors (``/proc/PID/fd``). The samples
of the warm-up (the first tenth of the checks) are left out; over the rest it
prints the first and last values and the least-squares slopes per 10,000
checks and per 1,000 restarts, and exits 1 when either grows steadily:

- RSS slope above 100 KB per 10,000 checks;
- fds not flat: a slope above 0.5 per 10,000 checks, or a spread (max - min)
  of more than 10 after the warm-up (the pidfds of the six daemons come and
  go with their restarts).

A slope counts only when the growth it fits over the window (the slope times
the checks the window spans) is above the noise: 256 KB of RSS, 2 fds. Over
the full run that changes nothing (100 KB per 10,000 checks is 900 KB over
90,000 checks), but a ``--quick`` run lies inside the warm-up creep of the
interpreter's allocator (~100 KB over the first ~10,000 checks), which a slope
per 10,000 checks would magnify into a false alarm; it catches gross leaks only.

The slopes per 1,000 restarts are printed beside them, not judged: kills are
paced by the checks, so restarts grow in step with checks and a leak per
restart shows in the slope per check as well.

It also fails when two copies of a service were ever seen alive together (at
the kill scans), when zombies are left, or when the watchdog does not exit 0
on SIGTERM at the end. ``--quick`` is a run of about a minute (5,000 checks,
150 restarts); ``--prefix`` runs the watchdog with ``--prefix``, so that every
start also makes two output pipes and their relays. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

try:
    from stresskit import (
        HERE,
        Seen,
        Service,
        Watchdog,
        fail_if_not_running,
        install_stop_handlers,
        process_table,
        sigkill,
        workspace,
    )
except ImportError as missing:
    print(f"longrun: {missing}: run it with the interpreter of an environment holding the "
          "project and its test extra (pip install -e '.[test]')", file=sys.stderr)
    raise SystemExit(2) from None

MIN_AGE = 1.5  # seconds a service runs before it may be killed (above --stable-after 1)
STABLE_AFTER = 1.0
WARMUP = 0.1  # the share of the checks whose samples the slopes leave out
RSS_LIMIT_KB = 100.0  # per 10,000 checks
FD_SLOPE_LIMIT = 0.5  # per 10,000 checks
FD_SPREAD_LIMIT = 10
# Growth over the fitted window below these is noise, whatever the slope: a short
# run (--quick) sits inside the allocator's warm-up creep (~100 KB over the first
# ~10,000 checks on CPython 3.11), which a slope per 10,000 checks magnifies.
RSS_NOISE_KB = 256.0
FD_NOISE = 2.0
LOOP_SECONDS = 0.02


@dataclass(frozen=True)
class Sample:
    """The watchdog at one instant."""

    elapsed: float
    checks: int
    restarts: int
    rss: int  # bytes
    fds: int
    processes: int  # in the process table, which the watchdog reads whole at each check


@dataclass
class Trend:
    """One measure over the samples after the warm-up."""

    label: str
    unit: str
    first: float
    last: float
    low: float
    high: float
    per_10k_checks: float
    per_1k_restarts: float
    fitted_growth: float  # the slope times the checks the window spans


@dataclass
class LongRunResult:
    """The run's figures, and whether anything grew."""

    checks_target: int
    restarts_target: int
    interval: float
    rules: int
    elapsed: float = 0.0
    checks: int = 0
    restarts: int = 0
    kills: int = 0
    samples: list[Sample] = field(default_factory=list)
    max_copies: dict[str, int] = field(default_factory=dict)
    zombies: list[str] = field(default_factory=list)
    exit_status: int | None = None
    daemons: str = ""
    notes: list[str] = field(default_factory=list)
    aborted: str | None = None

    def after_warmup(self) -> list[Sample]:
        return [s for s in self.samples if s.checks >= WARMUP * self.checks_target]

    def trends(self) -> list[Trend]:
        samples = self.after_warmup()
        if len(samples) < 3:
            return []
        return [
            trend("RSS", "KB", samples, lambda s: s.rss / 1024),
            trend("open fds", "", samples, lambda s: float(s.fds)),
        ]

    def broken(self) -> list[str]:
        """What went wrong, in words; empty when memory and fds stayed flat and all else held."""
        broken = []
        if self.aborted:
            broken.append(f"run aborted: {self.aborted}")
        trends = self.trends()
        if not trends:
            broken.append("fewer than 3 samples after the warm-up: nothing to fit")
        for t in trends:
            limit, noise = (RSS_LIMIT_KB, RSS_NOISE_KB) if t.label == "RSS" else (FD_SLOPE_LIMIT,
                                                                                    FD_NOISE)
            if t.per_10k_checks > limit and t.fitted_growth > noise:
                broken.append(f"{t.label} grows: {t.per_10k_checks:+.2f} {t.unit} per 10,000 checks "
                              f"(limit {limit:g}), {t.fitted_growth:+.1f} {t.unit} over the window, "
                              f"{t.per_1k_restarts:+.2f} per 1,000 restarts")
            if t.label == "open fds" and t.high - t.low > FD_SPREAD_LIMIT:
                broken.append(f"open fds range from {t.low:.0f} to {t.high:.0f} after the warm-up")
        doubled = {name: n for name, n in self.max_copies.items() if n > 1}
        if doubled:
            broken.append(f"two copies of a service alive at once: {doubled}")
        if self.zombies:
            broken.append(f"zombies left: {', '.join(self.zombies)}")
        if self.exit_status != 0:
            broken.append(f"exit status after SIGTERM: {self.exit_status}")
        return broken

    def table(self) -> str:
        rate = self.checks / self.elapsed if self.elapsed else 0.0
        nominal = self.elapsed / self.interval
        warm = len(self.samples) - len(self.after_warmup())
        lines = [
            f"long run: {self.checks:,} checks in {self.elapsed:,.0f} s ({rate:.0f} checks/s), "
            f"{self.restarts:,} restarts ({self.kills:,} kills), {self.rules} rules, "
            f"--interval {self.interval:g}; daemons: {self.daemons}",
            f"checks counted by the check_counter plugin (one per watchdog_checked call); "
            f"elapsed/interval would say {nominal:,.0f}, an upper bound",
            f"{len(self.samples)} samples; the {warm} of the warm-up (first "
            f"{WARMUP * self.checks_target:,.0f} checks) are left out of the slopes",
            "",
            f"{'measure':<10} {'first':>9} {'first*':>9} {'last':>9} {'min':>9} {'max':>9} "
            f"{'per 10k checks':>15} {'limit':>8} {'per 1k restarts':>16}",
        ]
        first = self.samples[0] if self.samples else None
        for t in self.trends():
            limit = f"{RSS_LIMIT_KB:g} KB" if t.label == "RSS" else f"{FD_SLOPE_LIMIT:g}"
            very_first = (first.rss / 1024 if t.label == "RSS" else first.fds) if first else math.nan
            lines.append(
                f"{t.label + (' KB' if t.unit else ''):<10} {very_first:>9,.0f} {t.first:>9,.0f} "
                f"{t.last:>9,.0f} {t.low:>9,.0f} {t.high:>9,.0f} {t.per_10k_checks:>+15.2f} "
                f"{limit:>8} {t.per_1k_restarts:>+16.2f}"
            )
        lines.append("(first: the very first sample; first*: the first after the warm-up; slopes "
                     "by least squares over the samples after the warm-up)")
        for t in self.trends():
            lines.append(f"{t.label}: fitted growth over the window {t.fitted_growth:+,.1f} "
                         f"{t.unit or 'fds'} (judged only above {RSS_NOISE_KB if t.unit else FD_NOISE:g})")
        if self.samples:
            sizes = [s.processes for s in self.samples]
            lines.append(f"process table: {min(sizes):,} to {max(sizes):,} processes (the watchdog "
                         "reads all of it at each check; a larger table can raise its RSS for good)")
        copies = max(self.max_copies.values(), default=0)
        lines.append(f"most copies of one service alive at once: {copies}; zombies left: "
                     f"{len(self.zombies)}; exit status after SIGTERM: {self.exit_status}")
        lines += [f"note: {note}" for note in self.notes]
        if self.aborted:
            lines.append(f"ABORTED: {self.aborted}")
        return "\n".join(lines)


def trend(label: str, unit: str, samples: list[Sample], value: Callable[[Sample], float]) -> Trend:
    ys = [value(s) for s in samples]
    return Trend(
        label, unit, ys[0], ys[-1], min(ys), max(ys),
        slope([s.checks for s in samples], ys) * 10_000,
        slope([s.restarts for s in samples], ys) * 1_000,
        slope([s.checks for s in samples], ys) * (samples[-1].checks - samples[0].checks),
    )


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ys over xs; 0 when xs do not vary."""
    try:
        return statistics.linear_regression(xs, ys).slope
    except statistics.StatisticsError:
        return 0.0


def read_counts(path: Path) -> tuple[int, int]:
    """(checks, starts) as the plugin last wrote them."""
    try:
        checks, starts = path.read_text().split()
        return int(checks), int(starts)
    except (OSError, ValueError):
        return 0, 0


def copies_now(services: list[Service]) -> dict[str, list[Seen]]:
    """The live copies of every service (daemons proper only), from one pass over /proc."""
    by_name = {service.name[:15]: service for service in services}
    found: dict[str, list[Seen]] = {service.name: [] for service in services}
    for seen in process_table():
        service = by_name.get(seen.name)
        if service is not None and service.is_proper(seen):
            found[service.name].append(seen)
    return found


def run_longrun(
    checks: int = 100_000,
    restarts: int = 3000,
    *,
    interval: float = 0.01,
    sample_every: float = 2.0,
    seed: int = 1,
    python_daemon: bool = False,
    prefix: bool = False,
    progress: Callable[[str], None] | None = None,
) -> LongRunResult:
    """Run the watchdog for ``checks`` checks while causing about ``restarts`` restarts."""
    report = progress or (lambda message: None)
    rng = random.Random(seed)
    with workspace("lr", python_daemon) as space:
        services = [space.foreground(f"f{i}") for i in range(4)]
        services += [space.daemon(f"d{i}") for i in range(3)]
        services += [space.daemon(f"p{i}", pidfile=True) for i in range(3)]
        result = LongRunResult(checks, restarts, interval, len(services),
                               max_copies={service.name: 0 for service in services})
        counts = space.path / "counts"
        args = [arg for service in services for arg in service.watchdog_args()]
        args += ["--interval", f"{interval:g}", "--stable-after", f"{STABLE_AFTER:g}",
                 "-p", "check_counter:CheckCounter"]
        if prefix:  # every start makes two output pipes and their relays
            args.append("--prefix")
        pythonpath = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
        env = {"PYTHONPATH": pythonpath, "STRESS_COUNTS_FILE": str(counts)}
        started = time.monotonic()
        deadline = started + max(120.0, 20 * checks * interval)
        watchdog = Watchdog(args, space, env)
        try:
            next_sample = started
            next_report = started + 60
            done = 0
            while done < checks:
                fail_if_not_running(watchdog)
                now = time.monotonic()
                if now > deadline:
                    result.aborted = f"only {done:,} checks after {now - started:,.0f} s"
                    break
                done, starts = read_counts(counts)
                if now >= next_sample:
                    result.samples.append(Sample(
                        now - started, done, max(0, starts - len(services)), watchdog.rss(),
                        watchdog.fds(), sum(entry.isdigit() for entry in os.listdir("/proc")),
                    ))
                    next_sample += sample_every
                if now >= next_report:
                    report(f"{done:,}/{checks:,} checks, {result.kills:,} kills, "
                           f"{starts - len(services):,} restarts")
                    next_report += 60
                if result.kills < math.ceil(restarts * done / checks):
                    kill_one(services, result, rng)
                time.sleep(LOOP_SECONDS)
            result.elapsed = time.monotonic() - started
            time.sleep(MIN_AGE)  # the last kills are answered
            for name, found in copies_now(services).items():
                result.max_copies[name] = max(result.max_copies[name], len(found))
                if not found:
                    result.notes.append(f"{name}: no copy running at the end")
            result.zombies = [f"{seen.name}[{seen.pid}]" for seen in watchdog.zombie_children()]
            result.checks, starts = read_counts(counts)
            result.restarts = starts - len(services)
            result.exit_status = watchdog.stop()
        finally:
            watchdog.close()
        log = watchdog.log_text()
        result.daemons = space.describe_daemons()
        result.notes += space.notes
        if "Traceback" in log:
            result.notes.append("the watchdog's log holds a traceback: "
                                + log[log.index("Traceback"):][:800])
        if result.restarts != result.kills:
            result.notes.append(f"{result.restarts:,} restarts for {result.kills:,} kills: "
                                f"{result.restarts - result.kills:+,} starts nobody asked for")
    return result


def kill_one(services: list[Service], result: LongRunResult, rng: random.Random) -> None:
    """SIGKILL the service of a random rule that has run for MIN_AGE; note any duplicate."""
    found = copies_now(services)
    for name, copies in found.items():
        result.max_copies[name] = max(result.max_copies[name], len(copies))
    ready = [copies[0] for copies in found.values() if len(copies) == 1 and copies[0].age() >= MIN_AGE]
    if ready and sigkill(rng.choice(ready)):
        result.kills += 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--checks", type=int, default=100_000, help="checks to run (100000)")
    parser.add_argument("--restarts", type=int, default=3000, help="restarts to cause (3000)")
    parser.add_argument("--interval", type=float, default=0.01,
                        help="the watchdog's --interval (0.01, the least it accepts)")
    parser.add_argument("--sample-every", type=float, default=2.0,
                        help="seconds between samples of RSS and fds (2)")
    parser.add_argument("--quick", action="store_true",
                        help="about a minute: 5000 checks, 150 restarts, a sample a second")
    parser.add_argument("--seed", type=int, default=1, help="seed of the RNG choosing victims (1)")
    parser.add_argument("--csv", type=Path, metavar="PATH",
                        help="also write every sample to PATH (elapsed, checks, restarts, rss, fds, "
                             "processes)")
    parser.add_argument("--python-daemon", action="store_true",
                        help="use tests/programs/service.py --daemon even where cc is found")
    parser.add_argument("--prefix", action="store_true",
                        help="run the watchdog with --prefix: services' output through its relays")
    args = parser.parse_args(argv)
    if args.quick:
        args.checks, args.restarts, args.sample_every = 5000, 150, 1.0
    install_stop_handlers()
    try:
        result = run_longrun(
            args.checks, args.restarts, interval=args.interval, sample_every=args.sample_every,
            seed=args.seed, python_daemon=args.python_daemon, prefix=args.prefix,
            progress=lambda message: print(f"longrun: {message}", file=sys.stderr, flush=True),
        )
    except KeyboardInterrupt:
        print("longrun: interrupted; every process it started was stopped", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"longrun: {exc}", file=sys.stderr)
        return 1
    print(result.table())
    if args.csv is not None:
        rows = [f"{s.elapsed:.2f},{s.checks},{s.restarts},{s.rss},{s.fds},{s.processes}"
                for s in result.samples]
        args.csv.write_text("\n".join(["elapsed,checks,restarts,rss,fds,processes", *rows]) + "\n")
    broken = result.broken()
    for problem in broken:
        print(f"BROKEN: {problem}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
