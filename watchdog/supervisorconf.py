"""A supervisord configuration as a ``ConfigFile``: the tables a TOML file would give.

Each ``[program:x]`` becomes one rule per process (``numprocs``), named as
supervisord names it, its keys converted by the table in
``watchdog.supervisor_keys``; ``[supervisord]`` gives every rule its
environment and limits. Expansions (``%(ENV_X)s``, ``%(here)s``,
``%(program_name)s``, ``%(process_num)02d``, ``%(group_name)s``,
``%(host_node_name)s``, ``%(numprocs)d``) are Python's ``%`` formatting, as
supervisord's. The result goes the normal way (``watchdog.cli``), so a key
whose setting this build lacks is one warning and is left out
(``configfile.drop_unknown``).
"""

from __future__ import annotations

import logging
import platform
import tempfile
from typing import Any

import click

from watchdog.configfile import ConfigFile
from watchdog.inifile import Entry, Section, env_expansions, read_ini
from watchdog.supervisor_keys import (
    BY_SECTION,
    IGNORED_SECTIONS,
    Context,
    Setting,
    Unhonoured,
    integer,
    key_value_pairs,
)

INFO, WARNING = logging.INFO, logging.WARNING
EXIT_EVENTS = ("PROCESS_STATE_FATAL", "PROCESS_STATE_EXITED")
DEFAULT_PRIORITY = 999


def read_supervisord_config(path: str) -> ConfigFile:
    return Translation(path, read_ini(path)).run()


class Translation:
    """One file's translation: the ConfigFile being filled, and what is known so far."""

    def __init__(self, path: str, sections: dict[str, Section]) -> None:
        self.sections = sections
        self.cf = ConfigFile(path, "", {}, {}, translated=True)
        self.host = platform.node()
        self.environ = env_expansions()
        self.global_env: dict[str, str] = {}
        self.global_env_where = ""
        self.childlogdir = tempfile.gettempdir()
        self.every_rule: list[tuple[Setting, str]] = []  # [supervisord]'s, with where they came from
        self.groups: dict[str, tuple[str, Section]] = {}  # program -> its [group:x]

    def run(self) -> ConfigFile:
        self.cf.options["match"] = "child"
        self.cf.places[(None, "match")] = f"{self.cf.path}: supervisord's programs"
        self.comment(None, "match", "a program is the process it started, and its children")
        for section in self.sections.values():
            if section.kind in IGNORED_SECTIONS:
                why = IGNORED_SECTIONS[section.kind]
                self.note(INFO, f"{section.where}: [{section.name}] ignored: {why}")
            elif section.kind == "eventlistener":
                self.event_listener(section)
            elif section.kind == "fcgi-program":
                self.note(WARNING, f"{section.where}: [{section.name}] not run: no FastCGI socket sharing")
            elif section.kind not in ("supervisord", "program", "group", "include"):
                self.note(WARNING, f"{section.where}: [{section.name}]: unknown section, ignored")
        supervisord = self.sections.get("supervisord")
        if supervisord is not None:
            self.supervisord(supervisord)
        for section in self.sections.values():
            if section.kind == "group":
                self.group(section)
        grace = 0
        for section in self.sections.values():
            if section.kind == "program":
                grace = max(grace, self.program(section))
        if not self.cf.rules:
            raise click.UsageError(f"{self.cf.path}: no [program:x] section")
        self.cf.options["grace"] = grace
        self.cf.places[(None, "grace")] = f"{self.cf.path}: the longest stopwaitsecs"
        self.comment(None, "grace", "the budget of the whole stop")
        return self.cf

    # --- messages -------------------------------------------------------------------

    def note(self, level: int, message: str) -> None:
        if (level, message) not in self.cf.notes:  # once, not once per numprocs copy
            self.cf.notes.append((level, message))

    def comment(self, rule: str | None, key: str | None, text: str) -> None:
        self.cf.comments.setdefault((rule, key), []).append(text)

    def fail(self, entry: Entry | Section, key: str, message: str) -> click.UsageError:
        return click.UsageError(f"{entry.where}: {key}: {message}")

    # --- values ---------------------------------------------------------------------

    def expand(self, entry: Entry, key: str, expansions: dict[str, Any]) -> str:
        try:
            return entry.value % {**expansions, "here": entry.here}
        except KeyError as exc:
            known = ", ".join(sorted(k for k in expansions if not k.startswith("ENV_")))
            raise self.fail(entry, key, f"{entry.value!r}: no expansion %({exc.args[0]})s "
                                        f"(known: {known}, here, ENV_X for each variable)") from None
        except (ValueError, TypeError) as exc:
            raise self.fail(entry, key, f"{entry.value!r}: badly formatted ({exc})") from None

    def expansions(self, **extra: Any) -> dict[str, Any]:
        return {**self.environ, "host_node_name": self.host, **extra}

    # --- sections -------------------------------------------------------------------

    def supervisord(self, section: Section) -> None:
        expansions = self.expansions()
        values = {key: self.expand(entry, key, expansions) for key, entry in section.entries.items()}
        if "environment" in values:
            try:
                self.global_env = key_value_pairs(values["environment"])
            except ValueError as exc:
                raise self.fail(section.entries["environment"], "environment", str(exc)) from None
            self.environ.update({f"ENV_{key}": value for key, value in self.global_env.items()})
            self.global_env_where = f"{section.entries['environment'].where}: [supervisord] environment"
        self.childlogdir = values.get("childlogdir", self.childlogdir)
        ctx = Context("", self.childlogdir, values)
        for key, value in values.items():
            entry = section.entries[key]
            row = BY_SECTION["supervisord"].get(key)
            if row is None:
                self.note(WARNING, f"{entry.where}: [supervisord] {key}: unknown key, ignored")
                continue
            if row.convert is None:
                continue
            where = f"{entry.where}: [supervisord] {key}"
            for setting in self.convert(row.convert, value, ctx, entry, where):
                if setting.rule:
                    self.every_rule.append((setting, where))
                else:
                    self.cf.options[setting.key] = setting.value
                    self.cf.places[(None, setting.key)] = f"{entry.where}: [supervisord] {key}"

    def group(self, section: Section) -> None:
        programs = section.entries.get("programs")
        if programs is None:
            raise self.fail(section, f"[{section.name}]", "no programs= line")
        for name in (word.strip() for word in programs.value.split(",")):
            if not name:
                continue
            if f"program:{name}" not in self.sections:
                raise self.fail(programs, "programs", f"names unknown program {name!r}")
            self.groups[name] = (section.label, section)
        for key, entry in section.entries.items():
            if key not in BY_SECTION["group"]:
                self.note(WARNING, f"{entry.where}: [{section.name}] {key}: unknown key, ignored")

    def event_listener(self, section: Section) -> None:
        events = section.entries.get("events")
        names = {word.strip().upper() for word in (events.value if events else "").split(",")}
        if names & set(EXIT_EVENTS):
            self.note(WARNING, f"{section.where}: [{section.name}] not run: the watchdog runs no event "
                               "listeners; to end the container when a program dies, give that rule "
                               "--essential NAME, or --on-give-up exit to end it when one is given up")
        else:
            self.note(WARNING, f"{section.where}: [{section.name}] not run: the watchdog runs no event "
                               "listeners")

    def program(self, section: Section) -> int:
        """The rules of one ``[program:x]``; returns its stopwaitsecs."""
        program_name = section.label
        group_name, group = self.groups.get(program_name, (program_name, None))
        entries = section.entries
        if "command" not in entries:
            raise self.fail(section, f"[{section.name}]", "no command= line")
        for key, entry in entries.items():
            if key not in BY_SECTION["program"]:
                self.note(WARNING, f"{entry.where}: [{section.name}] {key}: unknown key, ignored")
        base = self.expansions(program_name=program_name, group_name=group_name)
        numprocs = self.number(entries, "numprocs", base, 1)
        start = self.number(entries, "numprocs_start", base, 0)
        if numprocs < 1:
            raise self.fail(entries["numprocs"], "numprocs", "must be at least 1")
        process_name = entries.get("process_name")
        if numprocs > 1 and (process_name is None or "%(process_num)" not in process_name.value):
            raise self.fail(process_name or entries["numprocs"], "process_name",
                            "must contain %(process_num) when numprocs > 1")
        stopwait = 10
        for number in range(start, start + numprocs):
            expansions = {**base, "process_num": number, "numprocs": numprocs}
            env = dict(self.global_env)
            if "environment" in entries:
                try:
                    own = key_value_pairs(self.expand(entries["environment"], "environment", expansions))
                except ValueError as exc:
                    raise self.fail(entries["environment"], "environment", str(exc)) from None
                env.update(own)
                expansions.update({f"ENV_{key}": value for key, value in own.items()})
            values = {key: self.expand(entry, key, expansions) for key, entry in entries.items()}
            name = values.get("process_name", program_name).strip()
            if not name or any(char in name for char in " :/"):
                raise self.fail(entries.get("process_name", section), "process_name",
                                f"{name!r} is not a valid name (no spaces, colons or slashes)")
            if name in self.cf.rules:
                raise self.fail(section, f"[{section.name}]", f"a second process named {name!r}")
            self.rule(section, name, values, env, group or (section if numprocs > 1 else None),
                      group_name)
            stopwait = max(stopwait, integer(values.get("stopwaitsecs", "10")))
        return stopwait

    def number(self, entries: dict[str, Entry], key: str, expansions: dict[str, Any], default: int) -> int:
        entry = entries.get(key)
        if entry is None:
            return default
        try:
            return integer(self.expand(entry, key, expansions))
        except ValueError as exc:
            raise self.fail(entry, key, str(exc)) from None

    def rule(self, section: Section, name: str, values: dict[str, str], env: dict[str, str],
             group: Section | None, group_name: str) -> None:
        table: dict[str, Any] = {"command": values["command"]}
        self.cf.rules[name] = table
        self.cf.places[(name, "command")] = f"{section.entries['command'].where}: [{section.name}] command"
        ctx = Context(name, self.childlogdir, values)
        if group is not None:
            table["group"] = group_name
            self.cf.places[(name, "group")] = f"{group.where}: [{group.name}]"
        if group is not None and group.kind == "group" and "priority" in group.entries \
                and "priority" not in values:
            values["priority"] = group.entries["priority"].value
        for row in BY_SECTION["program"].values():
            entry = section.entries.get(row.name)
            value = values.get(row.name, row.default)
            if row.convert is None or value is None:
                continue
            where = f"{entry.where}: [{section.name}] {row.name}" if entry is not None else \
                f"{section.where}: [{section.name}] {row.name} (supervisord's default {row.default})"
            if row.name == "environment":
                continue  # the merged environment, below
            self.apply(name, self.convert(row.convert, value, ctx, entry or section, where), where)
        if env:
            own = section.entries.get("environment")
            where = f"{own.where}: [{section.name}] environment" if own is not None else self.global_env_where
            self.apply(name, [Setting("env", [f"{key}={value}" for key, value in env.items()],
                                      wanted_for="variables added to the command's environment")], where)
        for setting, where in self.every_rule:
            if setting.key not in table:
                self.apply(name, [setting], where)
            elif setting.key == "rlimit":
                table["rlimit"] = [*table["rlimit"], *setting.value]

    def convert(self, convert: Any, value: str, ctx: Context, entry: Entry | Section,
                where: str) -> list[Setting]:
        try:
            return list(convert(value, ctx))
        except Unhonoured as exc:
            self.note(WARNING, f"{where}={value.strip()}: cannot honour: {exc}")
            return []
        except ValueError as exc:
            raise click.UsageError(f"{where}: {exc}") from None

    def apply(self, rule: str, settings: list[Setting], where: str) -> None:
        table = self.cf.rules[rule]
        for setting in settings:
            if not setting.key:
                self.comment(rule, None, f"{where.partition(': ')[2]}: {setting.note}")
                continue
            if setting.key in table:
                if table[setting.key] != setting.value:
                    self.comment(rule, setting.key, f"{where.partition(': ')[2]} would be "
                                                    f"{setting.value!r}: one value for both")
                continue
            table[setting.key] = setting.value
            self.cf.places[(rule, setting.key)] = where
            if setting.wanted_for:
                self.cf.wanted_for[(rule, setting.key)] = setting.wanted_for
            if setting.note:
                self.comment(rule, setting.key, setting.note)
