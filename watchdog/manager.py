"""The plugin manager: hook specs, built-ins, entry points and ``-p`` plugins.

A plugin is a module, an object, or a class: a class is instantiated once for
each plugin manager, so a plugin that keeps settings and memory in its
instance shares nothing between two runs in one process. Built-ins are
loaded through the same call as entry points and ``-p`` plugins.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
from collections.abc import Iterable
from types import FunctionType, ModuleType
from typing import TYPE_CHECKING

import click
import pluggy

from watchdog import NAME, hookspecs

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

# Registered first, so that any later plugin is asked before them.
BUILTIN_PLUGINS = {
    "basename": "watchdog.plugins.basename",
    "regex": "watchdog.plugins.regex",
    "pidfile": "watchdog.plugins.pidfile",
    "child": "watchdog.plugins.child:Child",
    "respawn": "watchdog.plugins.respawn:Respawn",
    "log": "watchdog.plugins.log:Log",
    "status": "watchdog.plugins.status:Status",
    "essential": "watchdog.plugins.essential",
    "notify": "watchdog.plugins.notify:Notify",
    "control": "watchdog.plugins.control:Control",
    "probes": "watchdog.plugins.probes:Probes",
    "health": "watchdog.plugins.health:Health",
    "health_cmd": "watchdog.plugins.health_cmd",
    "health_http": "watchdog.plugins.health_http",
    "health_tcp": "watchdog.plugins.health_tcp",
    "limits": "watchdog.plugins.limits",
    "groups": "watchdog.plugins.groups",
}
AUTOLOAD_OFF_VARIABLE = "WATCHDOG_DISABLE_PLUGIN_AUTOLOAD"


class PluginManager(pluggy.PluginManager):
    """pluggy's manager, remembering where each plugin came from (for ``--list-plugins``)."""

    def __init__(self) -> None:
        super().__init__(NAME)
        self.origins: dict[str, str] = {}
        # Every name a plugin could be registered under in this run, disabled or not.
        self.known_names: list[str] = list(BUILTIN_PLUGINS)

    def parse_hookimpl_opts(self, plugin: object, name: str) -> pluggy.HookimplOpts | None:
        # pluggy asks this of every attribute of every plugin, through inspect.getattr_static:
        # a module plugin's attributes are mostly what it imported, and that was most of
        # start-up's plugin set-up. Only a function that carries the hookimpl mark can be a
        # hook: the plain namespace says so without running anything; pluggy decides the rest.
        value = static_attribute(plugin, name)
        if not (isinstance(value, FunctionType) and MARK in value.__dict__) \
                and not isinstance(value, (staticmethod, classmethod)):
            return None
        return super().parse_hookimpl_opts(plugin, name)


MARK = f"{NAME}_impl"  # the attribute pluggy's HookimplMarker sets on a marked function


def static_attribute(plugin: object, name: str) -> object:
    """``plugin.name`` as found in the namespaces, without calling a descriptor or ``__getattr__``."""
    if isinstance(plugin, ModuleType):
        return plugin.__dict__.get(name)
    namespaces = [getattr(plugin, "__dict__", {})] if not isinstance(plugin, type) else []
    for klass in (plugin if isinstance(plugin, type) else type(plugin)).__mro__:
        namespaces.append(klass.__dict__)
    for namespace in namespaces:
        if name in namespace:
            return namespace[name]
    return None


def make_plugin_manager(modules: Iterable[str] = (), disabled: Iterable[str] = ()) -> PluginManager:
    """Built-ins, then entry points in group ``watchdog``, then ``-p`` plugins.

    ``disabled`` names are blocked before anything registers, so ``--disable``
    works the same for built-ins, entry points and ``-p`` plugins.
    """
    pm = PluginManager()
    pm.add_hookspecs(hookspecs)
    for name in disabled:
        pm.set_blocked(name)
    for name, target in BUILTIN_PLUGINS.items():
        register(pm, target, name, "built-in")
    if not os.environ.get(AUTOLOAD_OFF_VARIABLE):
        for entry_point in entry_points(NAME):
            dist = entry_point.dist
            origin = f"{dist.name} {dist.version}" if dist is not None else "entry point"
            pm.known_names.append(entry_point.name)
            register(pm, entry_point.value, entry_point.name, origin)
    for module in modules:
        pm.known_names.append(module)
        register(pm, module, module, "-p")
    check_disabled(pm, disabled)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise click.UsageError(f"plugin {exc.plugin!r}: {exc}") from None
    return pm


def check_disabled(pm: PluginManager, disabled: Iterable[str]) -> None:
    """A ``--disable`` name that is no plugin's is a typo: say which names there are."""
    unknown = [name for name in disabled if name not in pm.known_names]
    if unknown:
        raise click.UsageError(
            f"--disable {unknown[0]}: no plugin has that name (plugins: {', '.join(pm.known_names)})")


def entry_points(group: str) -> list[EntryPoint]:
    """The entry points installed distributions declare in ``group``.

    importlib.metadata brings the email and zipfile packages with it: about
    3 MiB that PID 1 would hold for its whole life. Most runs have no plugin
    installed, so it is imported only once a distribution on ``sys.path``
    may declare the group.
    """
    if not may_declare(group):
        return []
    import importlib.metadata

    return list(importlib.metadata.entry_points(group=group))


def may_declare(group: str) -> bool:
    """Whether some ``entry_points.txt`` on ``sys.path`` has a ``[group]`` section.

    The names are those importlib.metadata looks for (``*.dist-info``,
    ``*.egg-info``, an egg's ``EGG-INFO``, in any case). A path that is not a
    directory (a zip file) can only be read by importlib.metadata, so it
    counts as a yes.
    """
    section = re.compile(rf"^\s*\[\s*{re.escape(group)}\s*\]", re.MULTILINE)
    for entry in sys.path:
        folder = entry or "."
        try:
            names = os.listdir(folder)
        except NotADirectoryError:
            return True
        except OSError:
            continue
        in_an_egg = folder.lower().endswith(".egg")  # easy_install's: metadata in EGG-INFO
        for name in names:
            lower = name.lower()
            is_metadata = lower.endswith((".dist-info", ".egg-info")) or (in_an_egg and lower == "egg-info")
            if not is_metadata:
                continue
            try:
                with open(os.path.join(folder, name, "entry_points.txt"), encoding="utf-8") as f:
                    if section.search(f.read()):
                        return True
            except (OSError, UnicodeDecodeError):
                continue
    return False


def load(target: str) -> object:
    """``module`` or ``module:attribute``; a class is instantiated."""
    module_name, _, attribute = target.partition(":")
    try:
        plugin: object = importlib.import_module(module_name)
        for part in filter(None, attribute.split(".")):
            plugin = getattr(plugin, part)
    except (ImportError, AttributeError) as exc:
        raise click.UsageError(f"cannot load plugin {target!r}: {exc}") from None
    return plugin() if inspect.isclass(plugin) else plugin


def register(pm: PluginManager, target: str, name: str, origin: str) -> None:
    if pm.is_blocked(name) or pm.has_plugin(name):
        return
    plugin = load(target)
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        raise click.UsageError(f"plugin {name!r}: {exc}") from None
    except ValueError:  # the same module given twice under two names
        return
    pm.origins[name] = origin


def describe_plugins(pm: PluginManager, disabled: Iterable[str] = ()) -> str:
    """One line per plugin: name, where it came from, its hooks; blocked ones last."""
    lines = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        hooks = ", ".join(sorted(impl.name for impl in pm.get_hookcallers(plugin) or ()))
        lines.append(f"{name}  ({pm.origins.get(name, '-p')})  {hooks}")
    for name in disabled:
        lines.append(f"{name}  (disabled)")
    return "\n".join(lines)
