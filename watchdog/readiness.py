"""When a rule is *ready*: rules ``--after`` it may start, and status shows it.

A rule is ready while it runs, no health check says it is unhealthy, and,
since its last start:

* a plugin that reports readiness for it (the notify protocol's ``READY=1``)
  has said so with ``engine.set_ready`` — such a plugin marks the rule with
  ``rule.settings[READY_REPORTED] = True`` in ``watchdog_configure``;
* otherwise, when a plugin checks its health (it marks the rule with
  ``rule.settings[HEALTH_CHECKED] = True``), its first check has passed;
* otherwise, as soon as its matcher finds its processes.

A rule found running without the watchdog starting it (it ran before the
watchdog did) cannot be told where to report, so it is ready once found.
Readiness is lost when the rule's processes end, when it is stopped, and
while a check says it is unhealthy. A one-shot that ended with a success
status (state ``exited``, ``--restart no`` or ``on-failure``) is ready: its
work is done, and the rules ``--after`` it may start.

``--status``, the status file, ``GET /v1/status``, the events and
``watchdogctl wait --state ready`` all show this one value
(``RuleStatus.ready``, kept by the engine).
"""

from __future__ import annotations

from watchdog.rules import Rule
from watchdog.state import EXITED, RUNNING, UNHEALTHY, RuleStatus

READY_REPORTED = "ready.reported"  # a plugin will call engine.set_ready for this rule
HEALTH_CHECKED = "health.checked"  # a plugin will call engine.set_health for this rule


def is_ready(rule: Rule, status: RuleStatus) -> bool:
    if status.state == EXITED:
        return True
    if status.state != RUNNING or status.health == UNHEALTHY:
        return False
    if status.starts == 0:
        return True
    if rule.settings.get(READY_REPORTED):
        return status.ready_reported
    if rule.settings.get(HEALTH_CHECKED):
        return status.passed_check
    return True


def how(rule: Rule) -> str:
    """What the rule's readiness waits for, in words (for ``waiting for`` lines)."""
    if rule.settings.get(READY_REPORTED):
        return "its READY=1"
    if rule.settings.get(HEALTH_CHECKED):
        return "its first passing health check"
    return "it to run"
