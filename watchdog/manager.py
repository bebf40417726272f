"""The plugin manager: hook specs, built-ins, entry points and ``-p`` modules."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable

import click
import pluggy

from watchdog import NAME, hookspecs

# Registered first, so that any later plugin is asked before them.
BUILTIN_PLUGINS = ("basename", "regex", "pidfile", "respawn", "log", "status")
AUTOLOAD_OFF_VARIABLE = "WATCHDOG_DISABLE_PLUGIN_AUTOLOAD"


def make_plugin_manager(
    modules: Iterable[str] = (), disabled: Iterable[str] = ()
) -> pluggy.PluginManager:
    """Built-ins, then entry points in group ``watchdog``, then ``-p`` modules.

    ``disabled`` names are blocked before anything registers, so ``--disable``
    works the same for built-ins, entry points and ``-p`` modules.
    """
    pm = pluggy.PluginManager(NAME)
    pm.add_hookspecs(hookspecs)
    for name in disabled:
        pm.set_blocked(name)
    for name in BUILTIN_PLUGINS:
        register_module(pm, f"watchdog.plugins.{name}", name)
    if not os.environ.get(AUTOLOAD_OFF_VARIABLE):
        pm.load_setuptools_entrypoints(NAME)
    for module in modules:
        register_module(pm, module, module)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise click.UsageError(f"plugin {exc.plugin!r}: {exc}") from None
    return pm


def register_module(pm: pluggy.PluginManager, module: str, name: str) -> None:
    if pm.is_blocked(name):
        return
    try:
        plugin = importlib.import_module(module)
    except ImportError as exc:
        raise click.UsageError(f"cannot load plugin {module!r}: {exc}") from None
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        raise click.UsageError(f"plugin {name!r}: {exc}") from None
    except ValueError:  # the same module given twice
        pass


def describe_plugins(pm: pluggy.PluginManager, disabled: Iterable[str] = ()) -> str:
    """One line per plugin: name, where it came from, its hooks; blocked ones last."""
    origins = {id(plugin): f"{dist.project_name} {dist.version}"
               for plugin, dist in pm.list_plugin_distinfo()}
    lines = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        if name in BUILTIN_PLUGINS:
            origin = "built-in"
        else:
            origin = origins.get(id(plugin), "-p")
        hooks = ", ".join(sorted(impl.name for impl in pm.get_hookcallers(plugin) or ()))
        lines.append(f"{name}  ({origin})  {hooks}")
    for name in disabled:
        lines.append(f"{name}  (disabled)")
    return "\n".join(lines)
