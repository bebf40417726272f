"""How long a configuration of many rules takes to load and check, beside supervisord's.

    python tests/benchmarks/config_bench.py [--rules 1000,5000,10000] [--runs 3]

Not part of the test suite. For each size, a TOML file with that many rules
(each a command, a regex or a pidfile, and a stop signal) is loaded the way start-up and
``watchdogctl reload`` load it (``watchdog.cli.reread``: read, parse, every
plugin configured, every check made, nothing started), and supervisord reads
an equal file of ``[program:x]`` sections (``ServerOptions.realize``). Each
figure is the median of ``--runs`` runs. Loading is linear when the time per
rule stays flat as the rules grow; the target is 10,000 rules in under a second.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from supervisor.options import ServerOptions

from watchdog.cli import reread

MATCHERS = {"regex": 'regex = "^/bin/sleep {i}$"', "pidfile": 'pidfile = "/run/r{i}.pid"'}


def watchdog_config(directory: Path, rules: int, matcher: str = "regex") -> Path:
    """Rules of one program, told apart by a regex each (compiled at load) or a pidfile each."""
    path = directory / f"watchdog-{rules}-{matcher}.toml"
    path.write_text("".join(f'[rules.r{i}]\ncommand = "/bin/sleep {i}"\n{MATCHERS[matcher].format(i=i)}\n'
                            f'stop-signal = "TERM"\n' for i in range(rules)))
    return path


def supervisord_config(directory: Path, rules: int) -> Path:
    path = directory / f"supervisord-{rules}.conf"
    head = f"[supervisord]\nlogfile={directory}/supervisord.log\npidfile={directory}/supervisord.pid\n"
    path.write_text(head + "".join(f"[program:r{i}]\ncommand=/bin/sleep {i}\nstopsignal=TERM\n"
                                   for i in range(rules)))
    return path


def load_watchdog(path: Path) -> Callable[[], int]:
    def load() -> int:
        return len(reread(["--config", str(path), "--no-control-socket"]).rules)
    return load


def load_supervisord(path: Path) -> Callable[[], int]:
    def load() -> int:
        options = ServerOptions()
        options.realize(args=["-c", str(path)])
        return sum(len(group.process_configs) for group in options.process_group_configs)
    return load


def median_seconds(load: Callable[[], int], rules: int, runs: int) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        loaded = load()
        times.append(time.perf_counter() - began)
        if loaded != rules:
            raise SystemExit(f"config bench: loaded {loaded} rules of {rules}")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", default="1000,2500,5000,10000")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(size) for size in args.rules.split(",")]
    print(f"{'rules':>6}  {'watchdog (regex)':>17}  {'watchdog (pidfile)':>18}  {'supervisord':>17}"
          "    (seconds, µs per rule)")
    with tempfile.TemporaryDirectory(prefix="wd-config-bench-") as tmp:
        directory = Path(tmp)
        for rules in sizes:
            figures = [
                median_seconds(load_watchdog(watchdog_config(directory, rules, "regex")), rules, args.runs),
                median_seconds(load_watchdog(watchdog_config(directory, rules, "pidfile")), rules, args.runs),
                median_seconds(load_supervisord(supervisord_config(directory, rules)), rules, args.runs),
            ]
            cells = [f"{seconds:.3f}s {seconds / rules * 1e6:>5.0f}µs" for seconds in figures]
            print(f"{rules:>6}  {cells[0]:>17}  {cells[1]:>18}  {cells[2]:>17}", flush=True)
    print("target: 10,000 rules load in under 1 s", file=sys.stderr)


if __name__ == "__main__":
    main()
