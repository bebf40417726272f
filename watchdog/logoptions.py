"""The flags of services' output: memory, files, rotation, timestamps, readiness from a line.

Per rule (``NAME=VALUE``, repeatable; TOML keys and ``WATCHDOG_*`` like every
per-rule flag): ``--log-buffer``, ``--log-file``, ``--log-file-stderr``,
``--log-max-bytes``, ``--log-backups``, ``--log-stderr`` and ``--ready-log``.
Global: ``--timestamps``. What they do is in ``watchdog.output`` and
``watchdog.logfiles``; here they become each rule's ``OutputSettings``.
"""

from __future__ import annotations

import re
from typing import Any

import click

from watchdog.config import Config
from watchdog.output import SETTINGS_KEY, STDERR, STDOUT, OutputSettings
from watchdog.params import parse_size
from watchdog.readiness import READY_REPORTED

# Pebble keeps 100 KiB per service: about a thousand lines, enough for `logs -n 100`
# and a crash's last lines, and 100 rules still hold only 12.5 MiB.
DEFAULT_BUFFER = 128 * 1024
MAX_BUFFER = 64 * 1024 ** 2
# supervisord's defaults for stdout_logfile_maxbytes and stdout_logfile_backups.
DEFAULT_MAX_BYTES = 50 * 1024 ** 2
DEFAULT_BACKUPS = 10
MAX_FILE_BYTES = 1024 ** 4
MAX_BACKUPS = 1000


def options() -> list[click.Option]:
    return [
        click.Option(["--timestamps"], is_flag=True,
                     help="Put an RFC 3339 timestamp (UTC, ms) before each line a service writes, "
                          "relayed or written to its --log-file."),
        click.Option(["--log-buffer"], multiple=True, metavar="NAME=SIZE",
                     help="How much of rule NAME's recent output to keep in memory for "
                          "`watchdogctl logs` and crash reports (default 128K; 0 keeps none; max 64M)."),
        click.Option(["--log-file"], multiple=True, metavar="NAME=PATH",
                     help="Also write rule NAME's stdout (and stderr, unless --log-file-stderr) to PATH."),
        click.Option(["--log-file-stderr"], multiple=True, metavar="NAME=PATH",
                     help="Write rule NAME's stderr to PATH rather than to its --log-file."),
        click.Option(["--log-max-bytes"], multiple=True, metavar="NAME=SIZE",
                     help="Rotate rule NAME's log files at SIZE (default 50MB; 0: never), "
                          "keeping --log-backups of them as PATH.1 ... PATH.N."),
        click.Option(["--log-backups"], multiple=True, metavar="NAME=N",
                     help="How many rotated files to keep (default 10; 0: the file is emptied instead)."),
        click.Option(["--log-stderr"], multiple=True, metavar="NAME=stdout",
                     help="stdout: rule NAME's stderr joins its stdout stream (supervisord's "
                          "redirect_stderr); stderr (the default) keeps them apart."),
        click.Option(["--ready-log"], multiple=True, metavar="NAME=REGEX",
                     help="Rule NAME is ready once a line of its output matches REGEX "
                          "(since its last start); rules --after it wait for that."),
    ]


def configure(config: Config) -> None:
    """Each rule's ``OutputSettings`` in ``rule.settings[SETTINGS_KEY]``; bad values are usage errors."""
    options = config.options
    fields: dict[str, dict[str, Any]] = {rule.name: {} for rule in config.rules}

    def each(flag: str, key: str) -> list[tuple[str, str]]:
        return [(rule.name, text.strip())
                for rule, text in config.per_rule(flag, options.get(key, ()))]

    for name, text in each("--log-buffer", "log_buffer"):
        fields[name]["buffer"] = parse_size(f"--log-buffer {name}", text, MAX_BUFFER)
    for name, text in each("--log-file", "log_file"):
        fields[name]["file"] = text
    for name, text in each("--log-file-stderr", "log_file_stderr"):
        fields[name]["file_stderr"] = text
    for name, text in each("--log-max-bytes", "log_max_bytes"):
        fields[name]["max_bytes"] = parse_size(f"--log-max-bytes {name}", text, MAX_FILE_BYTES)
    for name, text in each("--log-backups", "log_backups"):
        if not text.isdigit() or int(text) > MAX_BACKUPS:
            raise click.UsageError(f"--log-backups {name}: {text!r} is not a number from 0 to {MAX_BACKUPS}")
        fields[name]["backups"] = int(text)
    for name, text in each("--log-stderr", "log_stderr"):
        if text.lower() not in (STDOUT, STDERR):
            raise click.UsageError(f"--log-stderr {name}: {text!r}: give stdout (join stdout) or stderr")
        fields[name]["stderr_to_stdout"] = text.lower() == STDOUT
    for name, text in each("--ready-log", "ready_log"):
        try:
            re.compile(text)
        except re.error as exc:
            raise click.UsageError(f"--ready-log {name}: {text!r} is not a regular expression: {exc}") \
                from None
        fields[name]["ready"] = text
    for rule in config.rules:
        given = fields[rule.name]
        has_file = "file" in given or "file_stderr" in given
        for key, flag in (("max_bytes", "--log-max-bytes"), ("backups", "--log-backups")):
            if key in given and not has_file:
                raise click.UsageError(f"{flag} {rule.name}: rule {rule.name!r} has no --log-file")
        if "file_stderr" in given and given.get("stderr_to_stdout"):
            raise click.UsageError(f"--log-file-stderr {rule.name}: its stderr joins stdout "
                                   "(--log-stderr stdout): give one or the other")
        identity = rule.launch.identity
        if identity is not None and rule.launch.switches_user():
            given["owner"] = (identity.uid, identity.gid)
        settings = default_settings()._replace(**given)
        rule.settings[SETTINGS_KEY] = settings
        if settings.ready is not None:
            rule.settings[READY_REPORTED] = True


def default_settings() -> OutputSettings:
    """For commands no flag speaks of (``--init`` tasks)."""
    return OutputSettings(buffer=DEFAULT_BUFFER, max_bytes=DEFAULT_MAX_BYTES, backups=DEFAULT_BACKUPS)
