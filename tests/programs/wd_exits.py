"""A test plugin that ends its calls the way a careless plugin can: sys.exit, Ctrl-C, a hang.

Loaded with ``-p wd_exits:Exits`` (tests/programs on PYTHONPATH).
``WD_EXITS_RAISE`` names what it raises (SystemExit, KeyboardInterrupt,
GeneratorExit) and ``WD_EXITS_WHERE`` where: ``hook`` (every
watchdog_checked), ``timer``, ``reader`` (an add_reader callback), ``on_done``,
``work`` (background work whose on_done takes its result) or ``probe`` (a
health probe of every rule). ``WD_EXITS_SLEEP=SECONDS`` instead makes its
first watchdog_rule_found take that long, or with ``WD_EXITS_WHERE=timer`` its
timer.
"""

from __future__ import annotations

import builtins
import os
import time
from concurrent.futures import Future
from typing import Any

from watchdog import hookimpl
from watchdog.api import EngineAPI
from watchdog.config import Config
from watchdog.health import Result, Target, add_probe


def throw() -> None:
    name = os.environ.get("WD_EXITS_RAISE", "SystemExit")
    raise getattr(builtins, name)(f"raised by wd_exits in {os.environ.get('WD_EXITS_WHERE')}")


class Exits:
    def __init__(self) -> None:
        self.where = os.environ.get("WD_EXITS_WHERE", "")
        self.sleep = float(os.environ.get("WD_EXITS_SLEEP", "0"))
        self.engine: EngineAPI | None = None
        self.pipe: tuple[int, int] | None = None

    @hookimpl
    def watchdog_configure(self, config: Config) -> None:
        if self.where == "probe":
            for rule in config.rules:
                add_probe(rule, self.probe)

    def probe(self, target: Target) -> Result:
        throw()
        return Result(True, "never")

    @hookimpl
    def watchdog_started(self, engine: EngineAPI) -> None:
        self.engine = engine
        if self.where == "timer":
            engine.call_later(0.05, self.timer)
        elif self.where == "reader":
            self.pipe = os.pipe()
            os.write(self.pipe[1], b"x")
            engine.add_reader(self.pipe[0], self.readable)
        elif self.where == "on_done":
            engine.run_in_background(lambda: 1, self.on_done)
        elif self.where == "work":
            engine.run_in_background(throw, self.take_result)

    @hookimpl
    def watchdog_checked(self, engine: EngineAPI) -> None:
        if self.where == "hook":
            throw()

    @hookimpl
    def watchdog_rule_found(self, rule: Any, procs: Any) -> None:
        if self.sleep and self.where != "timer":
            seconds, self.sleep = self.sleep, 0
            time.sleep(seconds)

    def timer(self) -> None:
        if self.sleep:
            time.sleep(self.sleep)
            return
        throw()

    def readable(self) -> None:
        assert self.engine is not None and self.pipe is not None
        self.engine.remove_reader(self.pipe[0])  # once: a readable pipe would call again at once
        throw()

    def on_done(self, future: Future[int]) -> None:
        throw()

    def take_result(self, future: Future[None]) -> None:
        future.result()
