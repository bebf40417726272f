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

import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import click

# Options that make no sense in a file: plugins are loaded before it is read,
# and the rest are modes of a single run.
NOT_IN_FILE = {"plugins", "disable", "config", "commands", "rule", "show_status", "status_json",
               "list_plugins", "help", "version"}


# A configuration file is a page or two of TOML; anything larger, or nested deeper
# than a rule's table needs, is a mistake (or /dev/zero), not configuration.
MAX_SIZE = 1024 * 1024
MAX_NESTING = 32


def is_per_rule(param: click.Parameter) -> bool:
    """Per-rule flags take ``NAME=VALUE`` and may repeat (the hookspecs' convention)."""
    return bool(param.multiple and (getattr(param, "metavar", None) or "").startswith("NAME="))


def param_key(key: str) -> str:
    return key.replace("-", "_")


@dataclass
class ConfigFile:
    path: str
    text: str
    options: dict[str, Any]
    rules: dict[str, dict[str, Any]]
    # "NAME=VALUE" per per-rule parameter, with where each came from
    per_rule: dict[str, list[str]] = field(default_factory=dict)
    origins: dict[tuple[str, str], str] = field(default_factory=dict)

    def where(self, key: str, rule: str | None = None) -> str:
        """``FILE:LINE: key`` for messages."""
        lines = self.text.splitlines()
        start = 0
        if rule is not None:
            header = re.compile(rf"""^\s*\[\s*rules\s*\.\s*["']?{re.escape(rule)}["']?\s*\]""")
            start = next((i for i, line in enumerate(lines) if header.match(line)), 0)
        assignment = re.compile(rf"""^\s*["']?{re.escape(key)}["']?\s*=""")
        number = next((i for i in range(start, len(lines)) if assignment.match(lines[i])), start)
        return f"{self.path}:{number + 1}: {f'rules.{rule}.' if rule else ''}{key}"

    def error(self, message: str, key: str, rule: str | None = None) -> click.UsageError:
        return click.UsageError(f"{self.where(key, rule)}: {message}")


def read_config_file(path: str) -> ConfigFile:
    import tomllib  # here: only a run with --config reads TOML

    raw = read_bounded(path)
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
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise cf.error("expected a string or a number", key, name)
            assignment = f"{name}={value}"
            cf.per_rule.setdefault(param_name, []).append(assignment)
            cf.origins[(param_name, assignment)] = cf.where(key, name)
    return commands


def locate(cf: ConfigFile, message: str) -> str | None:
    """Where in the file the value a plugin complains about came from, if it did."""
    for (_, assignment), where in cf.origins.items():
        name, _, value = assignment.partition("=")
        if name in message and value in message:
            return where
    return None


def merge_per_rule(given: Iterable[str], from_file: Iterable[str]) -> list[str]:
    """Flag values first; the file's only for rules the flags did not name."""
    given = list(given)
    named = {value.partition("=")[0].strip() for value in given}
    return given + [value for value in from_file if value.partition("=")[0] not in named]
