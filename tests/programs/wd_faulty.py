"""A test plugin with every event hook; the one named by ``WD_FAULTY_HOOK`` raises.

Loaded with ``-p wd_faulty:Faulty``. With ``WD_FAULTY_HOOK=all`` every hook
raises. A plugin's bug must cost that plugin, never the services.
"""

from __future__ import annotations

import os
from typing import Any

from watchdog import hookimpl

FAULTY = os.environ.get("WD_FAULTY_HOOK", "")


def maybe_fail(hook: str) -> None:
    if FAULTY in (hook, "all"):
        raise RuntimeError(f"a bug in {hook}")


class Faulty:
    @hookimpl
    def watchdog_started(self, engine: Any) -> None:
        maybe_fail("watchdog_started")

    @hookimpl
    def watchdog_checked(self, engine: Any) -> None:
        maybe_fail("watchdog_checked")

    @hookimpl
    def watchdog_rule_found(self, rule: Any, procs: Any) -> None:
        maybe_fail("watchdog_rule_found")

    @hookimpl
    def watchdog_rule_missing(self, rule: Any, engine: Any) -> None:
        maybe_fail("watchdog_rule_missing")

    @hookimpl
    def watchdog_rule_stopping(self, rule: Any, reason: str) -> None:
        maybe_fail("watchdog_rule_stopping")

    @hookimpl
    def watchdog_rule_stopped(self, rule: Any, reason: str) -> None:
        maybe_fail("watchdog_rule_stopped")

    @hookimpl
    def watchdog_rule_restarted(self, rule: Any, reason: str) -> None:
        maybe_fail("watchdog_rule_restarted")

    @hookimpl
    def watchdog_rule_health(self, rule: Any, health: str, detail: str) -> None:
        maybe_fail("watchdog_rule_health")

    @hookimpl
    def watchdog_process_started(self, rule: Any, pid: int) -> None:
        maybe_fail("watchdog_process_started")

    @hookimpl
    def watchdog_process_exited(self, rule: Any, pid: int, returncode: Any) -> None:
        maybe_fail("watchdog_process_exited")

    @hookimpl
    def watchdog_rule_gave_up(self, rule: Any, reason: str) -> None:
        maybe_fail("watchdog_rule_gave_up")

    @hookimpl
    def watchdog_stopping(self, signal_name: str) -> None:
        maybe_fail("watchdog_stopping")

    @hookimpl
    def watchdog_stopped(self, exit_code: int) -> None:
        maybe_fail("watchdog_stopped")
