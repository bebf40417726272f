"""Calling plugins so that one plugin's bug costs that plugin, never the services.

The engine calls every event hook through ``SafeHooks``: each
implementation runs on its own, an exception is logged with the plugin's
name and the hook (the traceback at ``-v``), and the other implementations
still run. A plugin whose calls of one hook fail ``MAX_FAILURES_IN_A_ROW``
times in a row is unregistered with one error line: counted by hook, so that
its other hooks succeeding in between do not hide one that always fails.
Timer, reader, writer and background callbacks go through
``SafeHooks.call_contained``: logged the same way, never raised into the loop,
and named like the hooks by the plugin's registered name (the entry point's
name, ``-p``'s MODULE, a built-in's name), found from the callable.

"An exception" is any ``BaseException``: a plugin's ``sys.exit()``,
``KeyboardInterrupt`` or stray ``GeneratorExit`` is its bug like any other,
and must not end the watchdog with its services left unsupervised. The
watchdog's own exit does not pass through here: its stop signals are
recorded by handlers, never raised, and it leaves ``Engine.run`` by returning.

Every call is timed on the loop (``PluginCalls``): the loop does nothing
else while a plugin runs, so a call of ``SLOW_CALL`` seconds or more is
named in the log when it returns. A call that does not return cannot be
named by the loop it blocks: a watcher thread, which only reads the
(call, start time) the loop last wrote and logs, names it after
``STUCK_CALL`` seconds and again each time the wait doubles.
"""

from __future__ import annotations

import functools
import itertools
import logging
import threading
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pluggy

from watchdog.logs import logger

MAX_FAILURES_IN_A_ROW = 5
# A restart waits for whatever the loop is doing: half a second is already a late restart.
SLOW_CALL = 0.5
SLOW_REPEAT = 60.0  # one slow plugin is named at most once a minute per hook, with a count
STUCK_CALL = 5.0  # a call still running after this long is named by the watcher thread


# A plugin's name or a callback's, or how to find it when a message needs it.
Name = str | Callable[[], str]


def named(name: Name) -> str:
    return name if isinstance(name, str) else name()


def log_failure(owner: str, where: str, exc: BaseException) -> None:
    logger.error("plugin %s failed in %s: %s: %s", owner, where, type(exc).__name__, exc,
                 exc_info=exc if logger.isEnabledFor(logging.DEBUG) else None,
                 extra={"event": "plugin-error"})


class PluginCalls:
    """Times plugin calls made on the loop, and watches for one that does not return.

    ``current`` is the innermost call under way, ``(serial, owner, where,
    started)``, or None: written only by the loop, read by the watcher thread.
    The time a plugin spends in calls it makes back into the engine (which
    may call other plugins) is the inner calls', not its own.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.current: tuple[int, Name, Name, float] | None = None
        self._serial = itertools.count()
        self._nested: list[list[float]] = []  # per call under way: time spent in its inner calls
        self._slow_noted: dict[tuple[str, str], tuple[float, int]] = {}  # last named at, since then

    def run(self, owner: Name, where: Name, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)``, timed; what it raises is raised."""
        started = self.clock()
        inner = [0.0]
        outer = self.current
        self._nested.append(inner)
        self.current = (next(self._serial), owner, where, started)
        try:
            return fn(*args)
        finally:
            self.current = outer
            self._nested.pop()
            took = self.clock() - started
            if self._nested:
                self._nested[-1][0] += took
            if took - inner[0] >= SLOW_CALL:
                self._slow(named(owner), named(where), took - inner[0])

    def _slow(self, owner: str, where: str, took: float) -> None:
        now = self.clock()
        noted_at, since = self._slow_noted.get((owner, where), (-SLOW_REPEAT, 0))
        if now - noted_at < SLOW_REPEAT:
            self._slow_noted[(owner, where)] = (noted_at, since + 1)
            return
        self._slow_noted[(owner, where)] = (now, 0)
        more = f" ({since} more slow calls since the last warning)" if since else ""
        logger.warning("plugin %s took %.2fs in %s%s: the loop (reaping, restarts, signals) waited "
                       "for it; blocking work belongs in engine.run_in_background", owner, took, where,
                       more, extra={"event": "plugin-slow"})

    @contextmanager
    def watching(self) -> Iterator[None]:
        """While the loop runs: a daemon thread names a call that has not returned."""
        stop = threading.Event()
        thread = threading.Thread(target=self._watch, args=(stop,), daemon=True, name="watchdog-stuck")
        try:
            thread.start()
        except RuntimeError:  # no thread to be had (a pid limit): slow calls are still named
            pass
        try:
            yield
        finally:
            stop.set()

    def _watch(self, stop: threading.Event) -> None:
        reported: tuple[int, float] | None = None  # the call named last, and after how long
        while not stop.wait(STUCK_CALL / 5):  # named within 6 s; one wake-up a second costs nothing
            current = self.current
            if current is None:
                continue
            serial, owner, where, started = current
            stuck = self.clock() - started
            if stuck < STUCK_CALL or (reported is not None and reported[0] == serial
                                      and stuck < 2 * reported[1]):
                continue
            reported = (serial, stuck)
            logger.error("plugin %s has been in %s for %.0fs and has not returned: the loop is "
                         "blocked (no reaping, no restarts; stop signals wait until it returns)",
                         named(owner), named(where), stuck, extra={"event": "plugin-stuck"})


# One loop per process: every plugin call made on it is timed by this one.
calls = PluginCalls()


def call_contained(fn: Callable[..., Any], *args: Any, owner: Name | None = None) -> None:
    """Run a plugin's callback; an exception is logged, never raised.

    ``owner`` names the plugin in the log (``SafeHooks.owner_of`` finds its
    registered name); without one, the callback's module does. Both names are
    found only when a message needs them: timers and sockets call back many
    times a second, and almost every call needs none.
    """
    where = functools.partial(qualname_of, fn)
    if owner is None:
        owner = functools.partial(module_of, fn)
    try:
        calls.run(owner, where, fn, *args)
    except BaseException as exc:
        log_failure(named(owner), where(), exc)


def qualname_of(fn: Callable[..., Any]) -> str:
    target = unwrap(fn)
    return getattr(target, "__qualname__", None) or repr(target)


def module_of(fn: Callable[..., Any]) -> str:
    return getattr(unwrap(fn), "__module__", None) or "?"


def unwrap(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The function a ``functools.partial`` (however nested) will call."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    return fn


class SafeHooks:
    """``hooks.watchdog_rule_found(rule=..., procs=...)``, one implementation at a time.

    Implementations run in pluggy's order (last registered first, ``tryfirst``
    and ``trylast`` honoured); the non-None results come back as a list.
    Hook wrappers are not supported on event hooks.
    """

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self._pm = pm
        self._failures: dict[tuple[str, str], int] = {}  # (plugin, hook): failures in a row

    def owner_of(self, fn: Callable[..., Any]) -> str:
        """The name ``fn``'s plugin was registered under: its entry point's name, the
        MODULE given to ``-p``, or a built-in's name, as every other message names it.

        A bound method belongs to the plugin object it is bound to; any other callable
        (a lambda, a closure, a module's function) to the plugin made from its module.
        A callable of no registered plugin is named by its module.
        """
        target = unwrap(fn)
        bound_to = getattr(target, "__self__", None)
        module = getattr(target, "__module__", None)
        by_module = None
        for name, plugin in self._pm.list_name_plugin():
            if bound_to is not None and plugin is bound_to:
                return str(name)
            if by_module is None and module is not None and module in plugin_modules(plugin):
                by_module = str(name)
        return by_module or module or "?"

    def call_contained(self, fn: Callable[..., Any], *args: Any) -> None:
        """``call_contained`` with the plugin named by its registered name."""
        call_contained(fn, *args, owner=functools.partial(self.owner_of, fn))

    def __getattr__(self, hook_name: str) -> Callable[..., list[Any]]:
        """The caller of hook ``hook_name``, made once: some hooks are called many times a second."""
        caller = getattr(self._pm.hook, hook_name)

        def call(**kwargs: Any) -> list[Any]:
            results = []
            for impl in reversed(caller.get_hookimpls()):
                if impl.hookwrapper or impl.wrapper:
                    continue
                try:
                    result = calls.run(impl.plugin_name, hook_name, impl.function,
                                       *[kwargs[name] for name in impl.argnames])
                except BaseException as exc:
                    self._failed(impl.plugin_name, impl.plugin, hook_name, exc)
                    continue
                if self._failures:  # a success ends the plugin's failures in a row
                    self._failures.pop((impl.plugin_name, hook_name), None)
                if result is not None:
                    results.append(result)
            return results

        setattr(self, hook_name, call)  # found without __getattr__ from now on
        return call

    def _failed(self, name: str, plugin: object, hook_name: str, exc: BaseException) -> None:
        log_failure(name, hook_name, exc)
        count = self._failures[name, hook_name] = self._failures.get((name, hook_name), 0) + 1
        if count >= MAX_FAILURES_IN_A_ROW and self._pm.is_registered(plugin):
            self._pm.unregister(plugin)
            logger.error("plugin %s failed %d times in a row in %s: disabled for the rest of this run; "
                         "the services go on", name, count, hook_name, extra={"event": "plugin-disabled"})


def plugin_modules(plugin: object) -> tuple[str, ...]:
    """The module a registered plugin's code comes from: a module plugin's own name,
    or the module of an object's class (or of a class registered as it is)."""
    if isinstance(plugin, types.ModuleType):
        return (plugin.__name__,)
    cls = plugin if isinstance(plugin, type) else type(plugin)
    return (cls.__module__,)
