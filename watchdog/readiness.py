"""When a rule is *ready*: rules ``--after`` it may start, and status shows it.

A rule is ready while it runs and, since its last start:

* a plugin that reports readiness for it (the notify protocol's ``READY=1``)
  has said so with ``engine.set_ready`` — such a plugin marks the rule with
  ``rule.settings[READY_REPORTED] = True`` in ``watchdog_configure``;
* otherwise, when a plugin checks its health (it marks the rule with
  ``rule.settings[HEALTH_CHECKED] = True``), its first check has passed;
* otherwise, as soon as its matcher finds its processes.

A rule found running without the watchdog starting it (it ran before the
watchdog did) cannot be told where to report, so it is ready once found.
Readiness is lost when the rule's processes end or it is stopped; a failed
health check later does not take it back (the checks act on that).
"""

from __future__ import annotations

from watchdog.rules import Rule
from watchdog.state import RUNNING, RuleStatus

READY_REPORTED = "ready.reported"  # a plugin will call engine.set_ready for this rule
HEALTH_CHECKED = "health.checked"  # a plugin will call engine.set_health for this rule


def is_ready(rule: Rule, status: RuleStatus) -> bool:
    if status.state != RUNNING:
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
