"""Calling plugins so that one plugin's bug costs that plugin, never the services.

The engine calls every event hook through ``SafeHooks``: each
implementation runs on its own, an exception is logged with the plugin's
name and the hook (the traceback at ``-v``), and the other implementations
still run. A plugin whose calls of one hook fail ``MAX_FAILURES_IN_A_ROW``
times in a row is unregistered with one error line: counted by hook, so that
its other hooks succeeding in between do not hide one that always fails. Timer and background callbacks go
through ``call_contained``: logged the same way, never raised into the loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pluggy

from watchdog.logs import logger

MAX_FAILURES_IN_A_ROW = 5


def log_failure(owner: str, where: str, exc: Exception) -> None:
    logger.error("plugin %s failed in %s: %s: %s", owner, where, type(exc).__name__, exc,
                 exc_info=exc if logger.isEnabledFor(logging.DEBUG) else None,
                 extra={"event": "plugin-error"})


def call_contained(fn: Callable[..., Any], *args: Any) -> None:
    """Run a plugin's callback; an exception is logged, never raised."""
    try:
        fn(*args)
    except Exception as exc:
        log_failure(getattr(fn, "__module__", None) or "?", getattr(fn, "__qualname__", repr(fn)), exc)


class SafeHooks:
    """``hooks.watchdog_rule_found(rule=..., procs=...)``, one implementation at a time.

    Implementations run in pluggy's order (last registered first, ``tryfirst``
    and ``trylast`` honoured); the non-None results come back as a list.
    Hook wrappers are not supported on event hooks.
    """

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self._pm = pm
        self._failures: dict[tuple[str, str], int] = {}  # (plugin, hook): failures in a row

    def __getattr__(self, hook_name: str) -> Callable[..., list[Any]]:
        caller = getattr(self._pm.hook, hook_name)

        def call(**kwargs: Any) -> list[Any]:
            results = []
            for impl in reversed(caller.get_hookimpls()):
                if impl.hookwrapper or impl.wrapper:
                    continue
                try:
                    result = impl.function(*(kwargs[name] for name in impl.argnames))
                except Exception as exc:
                    self._failed(impl.plugin_name, impl.plugin, hook_name, exc)
                    continue
                self._failures[impl.plugin_name, hook_name] = 0
                if result is not None:
                    results.append(result)
            return results

        return call

    def _failed(self, name: str, plugin: object, hook_name: str, exc: Exception) -> None:
        log_failure(name, hook_name, exc)
        count = self._failures[name, hook_name] = self._failures.get((name, hook_name), 0) + 1
        if count >= MAX_FAILURES_IN_A_ROW and self._pm.is_registered(plugin):
            self._pm.unregister(plugin)
            logger.error("plugin %s failed %d times in a row in %s: disabled for the rest of this run; "
                         "the services go on", name, count, hook_name, extra={"event": "plugin-disabled"})
