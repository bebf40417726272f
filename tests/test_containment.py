"""A plugin that calls sys.exit, raises KeyboardInterrupt or hangs costs that plugin, never the services.

programs/wd_exits.py raises what a test names where it names: in a hook, a
timer, a reader callback, background work and its on_done, a health probe.
Before, any of these ended the watchdog (exit 0 after sys.exit) with its
services left running unsupervised.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import PROGRAMS, Watchdog, pids, program, wait_for

Start = Callable[..., Watchdog]

# (where, what is raised, how the log names the failing call)
CASES = [
    ("hook", "SystemExit", "plugin wd_exits:Exits failed in watchdog_checked: SystemExit"),
    ("hook", "KeyboardInterrupt", "plugin wd_exits:Exits failed in watchdog_checked: KeyboardInterrupt"),
    ("hook", "GeneratorExit", "plugin wd_exits:Exits failed in watchdog_checked: GeneratorExit"),
    ("timer", "SystemExit", "plugin wd_exits:Exits failed in Exits.timer: SystemExit"),
    ("reader", "KeyboardInterrupt", "plugin wd_exits:Exits failed in Exits.readable: KeyboardInterrupt"),
    ("on_done", "SystemExit", "plugin wd_exits:Exits failed in Exits.on_done: SystemExit"),
    ("work", "SystemExit", "plugin wd_exits:Exits failed in Exits.take_result: SystemExit"),
    ("probe", "SystemExit", "unhealthy (probe error: SystemExit"),
]


def env(**values: str) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([str(PROGRAMS), os.environ.get("PYTHONPATH", "")]), **values}


@pytest.mark.parametrize(("where", "raised", "logged"), CASES, ids=[f"{w}-{r}" for w, r, _ in CASES])
def test_a_plugin_that_exits_anywhere_leaves_the_services_supervised(
    tmp_path: Path, watchdog: Start, where: str, raised: str, logged: str
) -> None:
    name = f"wd-ex-{where}"[:15]
    exe = program(tmp_path, name)
    health = ["--health-interval", f"{name}=0.2", "--health-retries", f"{name}=1",
              "--on-unhealthy", f"{name}=report"] if where == "probe" else []
    wd = watchdog("-p", "wd_exits:Exits", f"{exe} 1000", *health,
                  env=env(WD_EXITS_WHERE=where, WD_EXITS_RAISE=raised))
    wd.wait_log(logged)
    [first] = wait_for(lambda: pids(name), what="the service")
    assert wd.proc.poll() is None, wd.log()
    os.kill(first, signal.SIGKILL)  # still supervised: restarted
    wait_for(lambda: pids(name) - {first}, what="the killed service started again")
    assert wd.stop() == 0, wd.log()
    assert not pids(name)
    assert "internal error" not in wd.log()


def test_a_slow_hook_is_named_when_it_returns_and_a_stuck_one_while_it_hangs(
    tmp_path: Path, watchdog: Start
) -> None:
    exe = program(tmp_path, "wd-ex-stuck")
    wd = watchdog("-p", "wd_exits:Exits", f"{exe} 1000", env=env(WD_EXITS_SLEEP="8"))
    # Named by the watcher thread while the loop is still blocked in the hook...
    log = wd.wait_log("plugin wd_exits:Exits has been in watchdog_rule_found for ", timeout=15)
    assert "took" not in log
    # ...and by the loop once it returns, with how long it took.
    log = wd.wait_log("plugin wd_exits:Exits took ", timeout=15)
    took = re.search(r"plugin wd_exits:Exits took (\d+\.\d+)s in watchdog_rule_found: the loop", log)
    assert took is not None and 7.5 <= float(took.group(1)) < 30, log
    assert wd.stop() == 0


def test_a_stuck_timer_is_named_by_its_plugin_and_callback(tmp_path: Path, watchdog: Start) -> None:
    # A timer's names are found only when a message needs them: here by the watcher thread.
    exe = program(tmp_path, "wd-ex-stucktm")
    wd = watchdog("-p", "wd_exits:Exits", f"{exe} 1000", env=env(WD_EXITS_WHERE="timer", WD_EXITS_SLEEP="6"))
    wd.wait_log("plugin wd_exits:Exits has been in Exits.timer for ", timeout=15)
    log = wd.wait_log("plugin wd_exits:Exits took ", timeout=15)
    assert re.search(r"plugin wd_exits:Exits took \d+\.\d+s in Exits.timer: the loop", log), log
    assert wd.stop() == 0


def test_a_hook_under_half_a_second_is_not_named(tmp_path: Path, watchdog: Start) -> None:
    exe = program(tmp_path, "wd-ex-quick")
    wd = watchdog("-p", "wd_exits:Exits", f"{exe} 1000", env=env(WD_EXITS_SLEEP="0.1"))
    wd.wait_log("wd-ex-quick: running")
    assert wd.stop() == 0
    assert "took" not in wd.log() and "has not returned" not in wd.log()
