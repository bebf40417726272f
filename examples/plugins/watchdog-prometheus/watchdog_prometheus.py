"""Action ``prometheus``: serve every rule's state as Prometheus metrics over HTTP.

``watchdog --metrics-port 9100 /usr/sbin/sshd`` serves ``http://0.0.0.0:9100/metrics``:

- ``watchdog_rule_up{rule}``: 1 while the service is running, 0 while starting or missing;
- ``watchdog_restarts_total{rule}``: starts of the command after the first;
- ``watchdog_last_exit_status{rule}``: exit status of the last command the watchdog
  started and reaped (negative: killed by that signal); absent until one exits.
- ``watchdog_rule_health{rule,health}``: 1 for the rule's current health
  (``healthy``, ``unhealthy``, or ``unknown`` without health checks or while it
  is not running), 0 for the other two, so ``watchdog_rule_health{health="unhealthy"} == 1``
  is an alert rule.

How a plugin author can read this one (hooks: ``watchdog/hookspecs.py``):

1. ``pyproject.toml`` registers the class ``Prometheus`` in the entry-point group
   ``watchdog`` as ``prometheus``, so installing the package is enough
   (``--disable prometheus``). The watchdog makes one instance per run: the
   settings live in it, not in module globals.
2. ``watchdog_add_options`` adds flags; their values reach ``watchdog_configure``
   in ``config.options``. Without ``--metrics-port`` the plugin does nothing.
3. ``watchdog_started`` receives the engine. The HTTP server answers in a thread
   of its own, so the collector only reads ``engine.status`` (a dict whose keys
   never change, of plain attributes) at each scrape and never calls the engine:
   no event hook is needed and the numbers cannot drift from the engine's.
4. A failure of the plugin is logged through ``logging.getLogger("watchdog")``
   and the watchdog goes on supervising: metrics matter less than the services.
   (An exception in a hook would be contained by the watchdog too.)
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import click
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from watchdog import hookimpl
from watchdog.api import EngineAPI
from watchdog.config import Config

logger = logging.getLogger("watchdog")
HEALTH_STATES = ("healthy", "unhealthy", "unknown")  # watchdog.state's health values


@dataclass
class Settings:
    port: int | None = None  # None: serve nothing
    addr: str = "0.0.0.0"  # every interface: a scraper reaches a container from outside



class RuleCollector:
    """Builds the metrics from ``engine.status`` at each scrape, in the server's thread."""

    def __init__(self, engine: EngineAPI) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("watchdog_rule_up", "1 while the rule's service is running, else 0",
                               labels=["rule"])
        restarts = CounterMetricFamily("watchdog_restarts", "Starts of the rule's command after "
                                       "the first", labels=["rule"])
        last_exit = GaugeMetricFamily("watchdog_last_exit_status", "Exit status of the rule's "
                                      "last started command (negative: signal)", labels=["rule"])
        health = GaugeMetricFamily("watchdog_rule_health", "1 for the rule's current health from "
                                   "its health checks, 0 for the others", labels=["rule", "health"])
        for name, status in list(self.engine.status.items()):
            up.add_metric([name], 1.0 if status.state == "running" else 0.0)
            restarts.add_metric([name], status.restarts)
            if status.last_exit is not None:
                last_exit.add_metric([name], status.last_exit)
            for state in HEALTH_STATES:
                health.add_metric([name, state], 1.0 if status.health == state else 0.0)
        yield from (up, restarts, last_exit, health)


class Prometheus:
    """One run's metrics server settings."""

    def __init__(self) -> None:
        self.settings = Settings()

    @hookimpl
    def watchdog_add_options(self) -> list[click.Option]:
        return [
            click.Option(["--metrics-port"], type=click.IntRange(1, 65535), metavar="PORT",
                         help="Serve Prometheus metrics on PORT at /metrics."),
            click.Option(["--metrics-addr"], default=Settings.addr, show_default=True,
                         metavar="ADDR", help="Address the --metrics-port server listens on."),
        ]

    @hookimpl
    def watchdog_configure(self, config: Config) -> None:
        self.settings = Settings(config.options.get("metrics_port"),
                                 config.options.get("metrics_addr") or Settings.addr)

    @hookimpl
    def watchdog_started(self, engine: EngineAPI) -> None:
        if self.settings.port is None:
            return
        # A registry of its own: only the watchdog's metrics, none of the default
        # registry's process, platform and gc collectors (they would describe the
        # watchdog's Python interpreter, not the services).
        registry = CollectorRegistry()
        registry.register(RuleCollector(engine))
        try:
            start_http_server(self.settings.port, self.settings.addr, registry=registry)
        except OSError as exc:  # port in use, address not ours: keep supervising anyway
            logger.error("metrics: cannot serve on %s port %s: %s; supervising without metrics",
                         self.settings.addr, self.settings.port, exc.strerror or exc,
                         extra={"event": "metrics"})
            return
        logger.info("metrics: serving /metrics on %s port %s", self.settings.addr,
                    self.settings.port, extra={"event": "metrics"})
