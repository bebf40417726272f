"""Action ``log``: one line per rule event on stderr (time, rule, event, pid, status).

A failure's ``exited`` line carries the last lines the run wrote (stderr
first), indented below it or as the JSON field ``output``; an exit while the
rule or the watchdog is stopping is no failure. A worker of an adopted daemon
that ends while the service runs on is a debug line: apache2 and nginx
replace workers all day.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from watchdog import hookimpl
from watchdog.logs import logger
from watchdog.rules import Rule
from watchdog.snapshot import Proc
from watchdog.state import STOPPING

if TYPE_CHECKING:
    from watchdog.api import EngineAPI


def event(rule: Rule, name: str, message: str, pid: int | None = None,
          status: int | None = None) -> None:
    logger.info(message, extra={"rule": rule.name, "event": name, "pid": pid, "status": status})


class Log:
    def __init__(self) -> None:
        self.stopping = False  # the final stop: every exit from now on was asked for

    @hookimpl
    def watchdog_rule_found(self, rule: Rule, procs: list[Proc]) -> None:
        rule.state["log.missing"] = False
        pids = ",".join(str(proc.pid) for proc in procs[:5]) + (",..." if len(procs) > 5 else "")
        event(rule, "found", f"running (pid {pids})", pid=procs[0].pid)

    @hookimpl
    def watchdog_rule_missing(self, rule: Rule, engine: EngineAPI) -> None:
        if not rule.state.get("log.missing"):  # once per change, not at every check
            rule.state["log.missing"] = True
            event(rule, "missing", f"missing: no {engine.describe(rule).removeprefix('a ')}")

    @hookimpl
    def watchdog_process_started(self, rule: Rule, pid: int) -> None:
        event(rule, "started", f"started {rule.command!r}", pid=pid)

    @hookimpl
    def watchdog_process_exited(self, rule: Rule, pid: int, returncode: int | None,
                                engine: EngineAPI) -> None:
        status = engine.status[rule.name]
        extra = {"rule": rule.name, "event": "exited", "pid": pid, "status": returncode}
        if returncode is None and status.pids:
            logger.debug("a process of the service exited; it runs on (pid %s)",
                         ",".join(map(str, status.pids[:5])), extra=extra)
            return
        failed = returncode != 0 and status.state != STOPPING and not self.stopping
        output = [line["line"] for line in status.last_output] if failed else []
        logger.info("exited", extra={**extra, "output": output})

    @hookimpl
    def watchdog_rule_gave_up(self, rule: Rule, reason: str) -> None:
        logger.error(f"giving up: {reason}", extra={"rule": rule.name, "event": "gave-up"})

    @hookimpl
    def watchdog_stopping(self) -> None:
        self.stopping = True
