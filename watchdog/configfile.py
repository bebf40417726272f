"""``--config FILE``: the command line's model written as TOML.

    interval = 2                    # any option, by its long name
    max-restarts = 5

    [rules.sshd]                    # one table per rule, keyed by its NAME
    command = "/usr/sbin/sshd"

    [rules.apache2]
    command = "/etc/init.d/apache2 start"
    pidfile = "/run/apache2/apache2.pid"   # any per-rule flag: regex, pidfile, stop-signal...
    stop-signal = "TERM"

Flags and ``WATCHDOG_*`` variables override the file: an option given either
way replaces the file's value, a per-rule flag replaces that rule's value, and
a command with the same NAME replaces that rule. Errors name the file, the
line and the key.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Iterable
from typing import Any

import click

# Options that make no sense in a file: plugins are loaded before it is read,
# and the rest are modes of a single run.
NOT_IN_FILE = {"plugins", "disable", "config", "commands", "rule", "show_status", "status_json",
               "list_plugins", "help", "version", "print_config"}


# A configuration file is a page or two of TOML; anything larger, or nested deeper
# than a rule's table needs, is a mistake (or /dev/zero), not configuration.
MAX_SIZE = 1024 * 1024
MAX_NESTING = 32


def is_per_rule(param: click.Parameter) -> bool:
    """Per-rule flags take ``NAME=VALUE`` and may repeat (the hookspecs' convention)."""
    metavar = getattr(param, "metavar", None) or ""
    return bool(param.multiple and metavar.startswith(("NAME=", "[NAME=]")))


def takes_default(param: click.Parameter) -> bool:
    """A per-rule flag whose bare ``VALUE`` is the default for every rule (``--grace 8 --grace db=30``).

    In a file it is a top-level key as well as a key of a rule's table.
    """
    return bool(param.multiple and (getattr(param, "metavar", None) or "").startswith("[NAME=]"))


def param_key(key: str) -> str:
    return key.replace("-", "_")


class ConfigFile:
    def __init__(self, path: str, text: str, options: dict[str, Any], rules: dict[str, dict[str, Any]],
                 translated: bool = False) -> None:
        self.path = path
        self.text = text
        self.options = options
        self.rules = rules
        # "NAME=VALUE" per per-rule parameter, with the key and rule each came from (its
        # line is looked up only for an error: a lookup per value made loading quadratic)
        self.per_rule: dict[str, list[str]] = {}
        self.origins: dict[tuple[str, str], tuple[str, str | None]] = {}
        # A file translated from another format (supervisord's) says where each key came
        # from, why a key this build lacks is wanted, and what to say when it is read.
        self.places: dict[tuple[str | None, str], str] = {}
        self.wanted_for: dict[tuple[str | None, str], str] = {}
        self.comments: dict[tuple[str | None, str | None], list[str]] = {}
        self.notes: list[tuple[int, str]] = []
        self.translated = translated

    def where(self, key: str, rule: str | None = None) -> str:
        """``FILE:LINE: key`` for messages."""
        if (rule, key) in self.places:
            return self.places[(rule, key)]
        lines = self.text.splitlines()
        start = 0
        if rule is not None:
            header = re.compile(rf"""^\s*\[\s*rules\s*\.\s*["']?{re.escape(rule)}["']?\s*\]""")
            start = next((i for i, line in enumerate(lines) if header.match(line)), 0)
        assignment = re.compile(rf"""^\s*["']?{re.escape(key)}["']?\s*=""")
        number = next((i for i in range(start, len(lines)) if assignment.match(lines[i])), start)
        return f"{self.path}:{number + 1}: {f'rules.{rule}.' if rule else ''}{key}"

    def origin(self, name: str, value: str) -> str:
        """Where a per-rule parameter's value came from in this file (``FILE:LINE: key``), or ""."""
        found = self.origins.get((name, value))
        return self.where(*found) if found is not None else ""

    def error(self, message: str, key: str, rule: str | None = None) -> click.UsageError:
        return click.UsageError(f"{self.where(key, rule)}: {message}")


def read_config_file(path: str) -> ConfigFile:
    """A TOML file, or a supervisord configuration (``watchdog.inifile`` says how they are told apart)."""
    import tomllib  # here: only a run with --config reads TOML

    raw = read_bounded(path)
    from watchdog.inifile import is_supervisord_format

    if is_supervisord_format(raw.decode("utf-8", "replace")):
        from watchdog.supervisorconf import read_supervisord_config

        return read_supervisord_config(path)
    try:
        content = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise click.UsageError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise click.UsageError(f"{path}: {exc}") from None
    except RecursionError:  # the parser recurses once per level of nesting
        raise click.UsageError(f"{path}: nested too deeply (at most {MAX_NESTING} levels)") from None
    if nesting(content) > MAX_NESTING:
        raise click.UsageError(f"{path}: nested too deeply (at most {MAX_NESTING} levels)")
    text = raw.decode("utf-8")
    rules = content.pop("rules", {})
    cf = ConfigFile(path, text, content, {})
    if not isinstance(rules, dict) or not all(isinstance(t, dict) for t in rules.values()):
        raise cf.error("expected tables such as [rules.NAME]", "rules")
    cf.rules = rules
    return cf


def read_bounded(path: str) -> bytes:
    """The file's bytes, refusing anything but a regular file of at most ``MAX_SIZE`` bytes.

    ``/dev/zero`` would fill memory and a FIFO would block PID 1 before anything
    starts: opened without blocking and checked before a byte is read, and read no
    further than the limit in case the file grows meanwhile.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise click.UsageError(f"--config {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise click.UsageError(f"--config {path}: is a directory")
        if not stat.S_ISREG(info.st_mode):
            raise click.UsageError(f"--config {path}: not a regular file")
        if info.st_size > MAX_SIZE:
            raise click.UsageError(f"--config {path}: larger than {MAX_SIZE // 1024} KiB")
        chunks = []
        size = 0
        while size <= MAX_SIZE and (chunk := os.read(fd, MAX_SIZE + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise click.UsageError(f"--config {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if size > MAX_SIZE:
        raise click.UsageError(f"--config {path}: larger than {MAX_SIZE // 1024} KiB")
    return b"".join(chunks)


def nesting(value: Any) -> int:
    """How deeply tables and arrays nest in ``value`` (walked without recursion)."""
    deepest = 0
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth + 1)
            if depth < MAX_NESTING:
                pending.extend((child, depth + 1)
                               for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def check_options(cf: ConfigFile, params: Iterable[click.Parameter]) -> dict[str, Any]:
    """The file's option values as click defaults, each checked by its option's type."""
    by_name = {param.name: param for param in params if param.name not in NOT_IN_FILE}
    ctx = click.Context(click.Command("watchdog"))
    defaults = {}
    for key, value in cf.options.items():
        param = by_name.get(param_key(key))
        if param is not None and param.name and takes_default(param):
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise cf.error("expected a string or a number", key)
            try:
                param.type.convert(str(value), param, ctx)
            except click.BadParameter as exc:
                raise cf.error(exc.format_message(), key) from None
            cf.per_rule.setdefault(param.name, []).append(str(value))
            cf.origins[(param.name, str(value))] = (key, None)
            continue
        if param is None or is_per_rule(param):
            hint = " (per-rule flags go in [rules.NAME] tables)" if param is not None else ""
            raise cf.error(f"unknown option{hint}", key)
        try:
            defaults[param.name] = param.type_cast_value(ctx, value)
        except click.BadParameter as exc:
            raise cf.error(exc.format_message(), key) from None
    return defaults


def collect_rules(cf: ConfigFile, params: Iterable[click.Parameter]) -> list[str]:
    """``NAME=COMMAND`` per rule table; fills ``cf.per_rule`` from the tables' other keys."""
    per_rule = {param.name: param for param in params
                if is_per_rule(param) and param.name and param.name not in NOT_IN_FILE}
    commands = []
    for name, table in cf.rules.items():
        command = table.get("command")
        if not isinstance(command, str) or not command.strip():
            raise cf.error("every rule needs a command (a non-empty string)", "command", name)
        commands.append(f"{name}={command}")
        for key, value in table.items():
            if key == "command":
                continue
            param_name = param_key(key)
            if param_name not in per_rule:
                allowed = ", ".join(sorted(k.replace("_", "-") for k in per_rule))
                raise cf.error(f"unknown key (a rule takes command, {allowed})", key, name)
            takes_bool = (per_rule[param_name].metavar or "").endswith("=BOOL")
            for item in table_values(cf, value, key, name, takes_bool):
                assignment = f"{name}={item}"
                cf.per_rule.setdefault(param_name, []).append(assignment)
                cf.origins[(param_name, assignment)] = (key, name)
    return commands


def table_values(cf: ConfigFile, value: Any, key: str, rule: str, takes_bool: bool = False) -> list[str]:
    """A rule's key as flag values: a string or a number is one; an array is one per item
    (``env-file = ["a", "b"]``); a table is ``KEY=VALUE`` per entry (``env = {PORT = 8000}``).
    ``true``/``false`` only for a flag whose metavar ends in ``=BOOL``."""
    def scalar(item: Any) -> bool:
        return isinstance(item, str | int | float) and (takes_bool or not isinstance(item, bool))

    def text(item: Any) -> str:
        return ("true" if item else "false") if isinstance(item, bool) else str(item)

    if scalar(value):
        return [text(value)]
    if isinstance(value, list) and all(scalar(item) for item in value):
        return [text(item) for item in value]
    if isinstance(value, dict) and all(scalar(item) for item in value.values()):
        return [f"{k}={text(v)}" for k, v in value.items()]
    raise cf.error("expected a string, a number, an array of them, or a table of them", key, rule)


def drop_unknown(cf: ConfigFile, params: Iterable[click.Parameter]) -> None:
    """A translated file's keys this build has no parameter for: dropped, each with a warning.

    Each such key says what it is wanted for (``cf.wanted_for``), so a key is
    honoured as soon as the parameter exists (a plugin that adds it, say).
    """
    if not cf.translated:
        return
    known = {param.name: param for param in params if param.name not in NOT_IN_FILE}
    unknown: list[tuple[str | None, str]] = [
        (None, key) for key in cf.options
        if param_key(key) not in known
        or (is_per_rule(known[param_key(key)]) and not takes_default(known[param_key(key)]))]
    unknown += [(rule, key) for rule, table in cf.rules.items() for key in table
                if key != "command" and (param_key(key) not in known
                                         or not is_per_rule(known[param_key(key)]))]
    for rule, key in unknown:
        table = cf.options if rule is None else cf.rules[rule]
        value = table.pop(key)
        why = cf.wanted_for.get((rule, key), "")
        message = (logging.WARNING, f"{cf.where(key, rule)}: cannot honour: this watchdog has no "
                                    f"{key!r} setting{f' ({why})' if why else ''}")
        if message not in cf.notes:
            cf.notes.append(message)
        import json  # here: only a configuration file with such a key needs it, and every start would pay

        cf.comments.setdefault((rule, None), []).append(
            f"{key} = {json.dumps(value, ensure_ascii=False)}: not honoured, this watchdog has no "
            f"{key!r} setting")


def locate(cf: ConfigFile, message: str) -> str | None:
    """Where in the file the value a plugin complains about came from, if it did."""
    for (_, assignment), (key, rule) in cf.origins.items():
        name, _, value = assignment.partition("=")
        if name in message and value in message:
            return cf.where(key, rule)
    return None


def merge_per_rule(given: Iterable[str], from_file: Iterable[str]) -> list[str]:
    """Flag values first; the file's only for rules the flags did not name (and its bare
    default only when the flags give none)."""
    given = list(given)
    named = {target(value) for value in given}
    return given + [value for value in from_file if target(value) not in named]


def target(value: str) -> str:
    """The rule a ``NAME=VALUE`` value is for; "" for a bare default."""
    name, sep, _ = value.partition("=")
    return name.strip() if sep else ""
