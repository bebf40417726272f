"""A plugin written from plugins/README.md alone, run on real processes.

``--max-age [NAME=]SECONDS`` restarts a service once it has run that long (as
gunicorn's ``--max-requests`` or a nightly restart would): a planned restart, so
it never counts as a failure. It uses what the guide describes, and nothing it
does not: ``DefaultOrPerRule`` and ``config.parse_with_default``, per-rule values in
``rule.settings`` (so a reload applies an edited file), ``watchdog_rule_found``'s
``Proc`` list, a timer armed with ``engine.call_later`` and cancelled when the rule
leaves, ``engine.status`` and ``engine.restart(..., planned=True)``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from helpers import Watchdog, program, wait_for

Start = Callable[..., Watchdog]

PLUGIN = '''
"""watchdog_maxage: restart a service once it has run for --max-age seconds."""

import click

from watchdog import hookimpl
from watchdog.params import DefaultOrPerRule, Seconds

KEY = "max-age"


class MaxAge:
    def __init__(self):  # one instance per run
        self.engine = None
        self.timers = {}  # rule name -> the timer armed for its current process

    @hookimpl
    def watchdog_add_options(self):
        return [click.Option(["--max-age"], multiple=True, metavar="[NAME=]SECONDS",
                             type=DefaultOrPerRule(Seconds()),
                             help="Restart a service once it has run this long (0: never).")]

    @hookimpl
    def watchdog_configure(self, config):
        default, pairs = config.parse_with_default("--max-age", Seconds(), 0.0)
        for rule in config.rules:  # on the rule, so that a reload sees a change
            rule.settings[KEY] = default
        for rule, seconds in pairs:
            rule.settings[KEY] = seconds

    @hookimpl
    def watchdog_started(self, engine):
        self.engine = engine

    @hookimpl
    def watchdog_rule_found(self, rule, procs):
        age = rule.settings.get(KEY, 0.0)
        if not age or self.engine is None:
            return
        self.forget(rule)
        oldest = min(procs, key=lambda proc: proc.start_ticks)
        self.timers[rule.name] = self.engine.call_later(age, lambda: self.expire(rule, oldest.pid))

    def expire(self, rule, pid):
        self.timers.pop(rule.name, None)
        if pid in self.engine.status[rule.name].pids:  # still the run the timer was set for
            self.engine.restart(rule, f"ran for its max-age {rule.settings[KEY]:g}s", planned=True)

    def forget(self, rule):
        timer = self.timers.pop(rule.name, None)
        if timer is not None:
            timer.cancel()

    @hookimpl
    def watchdog_rule_removed(self, rule, reason):
        self.forget(rule)

    @hookimpl
    def watchdog_rule_stopped(self, rule, reason):
        self.forget(rule)
'''


def status(wd: Watchdog) -> dict[str, dict[str, object]]:
    done = subprocess.run([sys.executable, "-m", "watchdog", "--status", "--json"], capture_output=True,
                          text=True, env={"WATCHDOG_STATUS_FILE": str(wd.log_path.with_suffix(".status")),
                                          "PATH": "/usr/bin:/bin"}, timeout=30)
    if done.returncode not in (0, 1):
        return {}
    return {rule["name"]: rule for rule in json.loads(done.stdout)["rules"]}


def pid_of(wd: Watchdog, name: str) -> int | None:
    rule = status(wd).get(name)
    pids = rule["pids"] if rule else []
    return pids[0] if isinstance(pids, list) and pids and rule and rule["state"] == "running" else None


def test_a_service_is_restarted_at_its_max_age_and_a_reload_applies_a_new_one(
    tmp_path: Path, watchdog: Start
) -> None:
    (tmp_path / "watchdog_maxage.py").write_text(PLUGIN)
    young, old = program(tmp_path, "wd-maxage-young"), program(tmp_path, "wd-maxage-old")
    config = tmp_path / "watchdog.toml"
    config.write_text(f'[rules.young]\ncommand = "{young} 1000"\nmax-age = 1\n'
                      f'[rules.old]\ncommand = "{old} 1000"\n')
    wd = watchdog("-p", "watchdog_maxage:MaxAge", "--config", str(config), "--max-age", "0",
                  env={"PYTHONPATH": str(tmp_path)})

    # young is restarted every second, each time a new process; old is left alone.
    first = wait_for(lambda: pid_of(wd, "young"), what="young running")
    second = wait_for(lambda: (pid := pid_of(wd, "young")) not in (None, first) and pid, 10,
                      "young restarted at its max-age")
    wait_for(lambda: pid_of(wd, "young") not in (None, first, second), 10, "young restarted again")
    log = wd.wait_log("ran for its max-age 1s")
    assert "a planned restart: not a failure" in log
    old_pid = wait_for(lambda: pid_of(wd, "old"), what="old running")
    rules = status(wd)
    assert rules["old"]["restarts"] == 0 and rules["young"]["restarts"] >= 2

    # An edited file gives old a max-age: a reload changes the rule, and the plugin object
    # of the run reads the new value from the new rule.
    config.write_text(f'[rules.young]\ncommand = "{young} 1000"\n'
                      f'[rules.old]\ncommand = "{old} 1000"\nmax-age = 1\n')
    reloaded = subprocess.run([sys.executable, "-m", "watchdog.ctl", "--socket",
                               str(wd.log_path.parent / "control.sock"), "reload"],
                              capture_output=True, text=True, timeout=60)
    assert reloaded.returncode == 0, reloaded.stderr
    assert "changed: young, old" in reloaded.stdout or "changed: old, young" in reloaded.stdout
    new_old = wait_for(lambda: (pid := pid_of(wd, "old")) not in (None, old_pid) and pid, 10,
                       "old started again by the reload")
    young_now = wait_for(lambda: pid_of(wd, "young"), what="young running without a max-age")
    # old's own max-age is the clock: two of its restarts (2 s) and young is still the same process.
    third = wait_for(lambda: (pid := pid_of(wd, "old")) not in (None, old_pid, new_old) and pid, 10,
                     "old restarted at its new max-age")
    wait_for(lambda: pid_of(wd, "old") not in (None, old_pid, new_old, third), 10, "old restarted again")
    assert pid_of(wd, "young") == young_now
    assert wd.stop() == 0, wd.log()
