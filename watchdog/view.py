"""The one view of a rule, and what it means for an exit status.

The status file, ``GET /v1/status``, the events feed, ``watchdog --status``
and ``watchdogctl status`` and ``wait`` all show a rule as ``rule_view``
builds it, and judge it with the definitions here:

- *running*: its state is ``running`` (its processes are found);
- *ready*: ``watchdog.readiness`` (running, not unhealthy, and for a
  ``--notify`` rule ``READY=1`` since its last start); the engine keeps it;
- *healthy*: running, and its health checks say healthy;
- *fine* (exit status 0 of ``--status`` and ``watchdogctl status``): running
  and not unhealthy, or ``exited`` (a one-shot that ended with a success
  status). Anything else is exit status 1.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from watchdog.exits import EXIT_NOT_RUNNING, EXIT_OK
from watchdog.groups import group_of
from watchdog.runstates import EXITED, HEALTHY, RUNNING, UNHEALTHY

if TYPE_CHECKING:
    from watchdog.rules import Rule
    from watchdog.state import RuleStatus

# The fields of a rule that an event line carries.
EVENT_FIELDS = ("state", "health", "ready", "given_up", "pids", "restarts", "last_exit", "reason")


def rule_view(rule: Rule, status: RuleStatus) -> dict[str, Any]:
    """One rule as every status output shows it (JSON-ready)."""
    return {
        "name": rule.name, "command": rule.command, "matcher": rule.strategy,
        "state": str(status.state), "given_up": status.given_up, "pids": list(status.pids),
        "restarts": status.restarts, "last_exit": status.last_exit, "since": status.since,
        "reason": status.reason, "ready": status.ready, "waiting_for": list(status.waiting_for),
        "message": status.message, "health": status.health, "health_detail": status.health_detail,
        "restart": rule.restart, "success_exit": sorted(rule.success_exit),
        "start_timeout": rule.start_timeout, **rule.launch.view(), "grace": rule.grace,
        "group": group_of(rule),
        "last_output": status.last_output,  # the last lines of the last run that ended
    }


def fine(state: str | None, health: str | None) -> bool:
    """Running and not unhealthy, or a one-shot that is done with a success status."""
    return (state == RUNNING and health != UNHEALTHY) or state == EXITED


def reached(view: Mapping[str, Any], wanted: str) -> bool:
    """``watchdogctl wait --state WANTED``: ready, healthy, or a state by its name."""
    if wanted == "ready":
        return bool(view.get("ready"))
    if wanted == "healthy":
        return view.get("state") == RUNNING and view.get("health") == HEALTHY
    return view.get("state") == wanted


def exit_status(views: Iterable[Mapping[str, Any]]) -> int:
    """0 when every rule is fine, else 1: ``--status`` and ``watchdogctl status`` alike."""
    every = all(fine(view.get("state"), view.get("health")) for view in views)
    return EXIT_OK if every else EXIT_NOT_RUNNING


def format_table(views: Iterable[Mapping[str, Any]]) -> str:
    """The table ``--status`` and ``watchdogctl status`` print."""
    header = ("NAME", "STATE", "PIDS", "MATCHER", "RESTARTS", "LAST EXIT", "SINCE", "HEALTH",
              "LAST CHECK", "READY")
    rows = [header]
    for rule in views:
        state = rule["state"] + (" (gave up)" if rule.get("given_up") else "")
        if rule.get("waiting_for"):
            state += f" for {','.join(rule['waiting_for'])}"
        if rule.get("message"):
            state += f" ({rule['message']})"
        ready = "yes" if rule.get("ready") else "no"
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(rule["since"]))
        last_exit = "-" if rule["last_exit"] is None else str(rule["last_exit"])
        pids = ",".join(map(str, rule["pids"])) or "-"
        health, checked = rule.get("health", "unknown"), rule.get("health_detail") or "-"
        rows.append((rule["name"], state, pids, rule["matcher"], str(rule["restarts"]), last_exit,
                     since, "-" if health == "unknown" and checked == "-" else health, checked,
                     ready))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)
