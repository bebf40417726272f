"""A plugin is named the same in every message: by the name it was registered under.

An entry-point plugin is its entry point's name (``boom-timer``), not its module
(``wd_boom``), in a hook's failure and in a timer's, a background job's or a
reader's alike, and that is the name ``--disable`` takes.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import Watchdog, install_package, program, wait_for

Start = Callable[..., Watchdog]

MODULE = '''
"""wd_boom: a plugin whose every kind of callback raises once."""

import os

from watchdog import hookimpl


def tick():
    raise RuntimeError("a bug in a module function's timer")


class Boom:
    def __init__(self):
        self.done = False

    @hookimpl
    def watchdog_started(self, engine):
        engine.call_later(0.01, tick)
        engine.call_later(0.02, lambda: 1 / 0)
        engine.run_in_background(lambda: None, self.on_done)
        read, write = os.pipe()
        os.write(write, b"x")

        def readable():
            engine.remove_reader(read)
            raise LookupError("a bug in a closure's reader")

        engine.add_reader(read, readable)

    def on_done(self, future):
        raise ValueError("a bug in a bound method's on_done")

    @hookimpl
    def watchdog_checked(self, engine):
        if not self.done:
            self.done = True
            raise KeyError("a bug in a hook")
'''

PYPROJECT = '''
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "wd-boom"
version = "1.0"

[tool.setuptools]
py-modules = ["wd_boom"]

[project.entry-points.watchdog]
boom-timer = "wd_boom:Boom"
'''


@pytest.fixture(scope="module")
def boom_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    package = tmp_path_factory.mktemp("wd-boom-package")
    (package / "wd_boom.py").write_text(textwrap.dedent(MODULE))
    (package / "pyproject.toml").write_text(PYPROJECT)
    return install_package(package, tmp_path_factory.mktemp("wd-boom"))


def test_every_failure_names_the_entry_point(tmp_path: Path, watchdog: Start,
                                             boom_env: dict[str, str]) -> None:
    exe = program(tmp_path, "wd-boom-svc")
    wd = watchdog(f"{exe} 1000", env=boom_env)
    expected = [
        "plugin boom-timer failed in tick: RuntimeError: a bug in a module function's timer",
        "plugin boom-timer failed in Boom.watchdog_started.<locals>.<lambda>: ZeroDivisionError",
        "plugin boom-timer failed in Boom.on_done: ValueError: a bug in a bound method's on_done",
        "plugin boom-timer failed in Boom.watchdog_started.<locals>.readable: LookupError",
        "plugin boom-timer failed in watchdog_checked: KeyError",
    ]

    def named() -> str | None:
        log = wd.log()
        return log if all(line in log for line in expected) else None

    log = wait_for(named, what="every failure named")
    assert "plugin wd_boom " not in log
    wd.wait_log("wd-boom-svc: running")
    assert wd.stop() == 0, wd.log()


def test_the_entry_point_name_is_what_disable_takes(tmp_path: Path, watchdog: Start,
                                                    boom_env: dict[str, str]) -> None:
    exe = program(tmp_path, "wd-boom-off")
    wd = watchdog("--disable", "boom-timer", f"{exe} 1000", env=boom_env)
    wd.wait_log("wd-boom-off: running")
    assert wd.stop() == 0, wd.log()
    assert "boom-timer" not in wd.log() and "a bug" not in wd.log()
