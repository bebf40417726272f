"""Action ``log``: one line per rule event on stderr (time, rule, event, pid, status)."""

from __future__ import annotations

from watchdog import hookimpl
from watchdog.api import EngineAPI
from watchdog.logs import logger
from watchdog.rules import Rule
from watchdog.snapshot import Proc


def event(rule: Rule, name: str, message: str, pid: int | None = None,
          status: int | None = None) -> None:
    logger.info(message, extra={"rule": rule.name, "event": name, "pid": pid, "status": status})


@hookimpl
def watchdog_rule_found(rule: Rule, procs: list[Proc]) -> None:
    rule.state["log.missing"] = False
    pids = ",".join(str(proc.pid) for proc in procs[:5]) + (",..." if len(procs) > 5 else "")
    event(rule, "found", f"running (pid {pids})", pid=procs[0].pid)


@hookimpl
def watchdog_rule_missing(rule: Rule, engine: EngineAPI) -> None:
    if not rule.state.get("log.missing"):  # once per change, not at every check
        rule.state["log.missing"] = True
        event(rule, "missing", f"missing: no {engine.describe(rule).removeprefix('a ')}")


@hookimpl
def watchdog_process_started(rule: Rule, pid: int) -> None:
    event(rule, "started", f"started {rule.command!r}", pid=pid)


@hookimpl
def watchdog_process_exited(rule: Rule, pid: int, returncode: int | None) -> None:
    event(rule, "exited", "exited", pid=pid, status=returncode)


@hookimpl
def watchdog_rule_gave_up(rule: Rule, reason: str) -> None:
    logger.error(f"giving up: {reason}", extra={"rule": rule.name, "event": "gave-up"})
