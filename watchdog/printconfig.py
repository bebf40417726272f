"""``--print-config``: the resolved configuration as TOML that ``--config`` reads back.

Whatever it came from (flags, ``WATCHDOG_*`` variables, a TOML file, a
supervisord configuration), each value is printed once, at the place a TOML
file would hold it, with a comment saying where it came from and, for a
translated value that is not exactly the original's behaviour, how it differs.
Nothing is started and no program needs to exist.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from typing import Any

import click
from click.core import ParameterSource

from watchdog.configfile import NOT_IN_FILE, ConfigFile, is_per_rule, merge_per_rule, takes_default
from watchdog.rules import split_assignment, split_command

BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
# Modes of one run, never configuration.
NOT_PRINTED = NOT_IN_FILE | {"print_config"}


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def typed(text: str) -> Any:
    """A per-rule flag's text as TOML would best hold it: ``10`` and ``false`` unquoted."""
    if text in ("true", "false"):
        return text == "true"
    try:
        number = int(text)
    except ValueError:
        return text
    return number if str(number) == text else text


def table_name(name: str) -> str:
    return f"[rules.{name if BARE_KEY.fullmatch(name) else json.dumps(name, ensure_ascii=False)}]"


def line(key: str, value: Any, comments: Iterable[str]) -> str:
    said = "; ".join(comment for comment in comments if comment)
    text = f"{key} = {toml_value(value)}"
    return f"{text}  # {said}" if said else text


def source_of(ctx: click.Context, name: str) -> str:
    """Where click took an option's value from: a flag, a variable, or the file."""
    source = ctx.get_parameter_source(name)
    if source is ParameterSource.COMMANDLINE:
        return "flag --" + name.replace("_", "-")
    if source is ParameterSource.ENVIRONMENT:
        return f"WATCHDOG_{name.upper()}"
    return ""


def render(ctx: click.Context, params: Sequence[click.Parameter], options: dict[str, Any],
           config_file: ConfigFile | None, file_rules: Sequence[str]) -> str:
    cf = config_file
    comments = cf.comments if cf is not None else {}
    out: list[str] = []
    out.extend(f"# {text}" for text in comments.get((None, None), []))
    for param in params:
        name = param.name
        if isinstance(param, click.Option) and name and name not in NOT_PRINTED and takes_default(param):
            out.extend(bare_default(ctx, param, options, cf, comments))
            continue
        if not isinstance(param, click.Option) or not name or name in NOT_PRINTED or is_per_rule(param):
            continue
        source = ctx.get_parameter_source(name)
        if source not in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT,
                          ParameterSource.DEFAULT_MAP):
            continue
        value = options[name]
        if value is None or value == () or value == []:
            continue
        key = name.replace("_", "-")
        origin = source_of(ctx, name) or (cf.where(key) if cf is not None else "")
        out.append(line(key, list(value) if isinstance(value, tuple) else value,
                        [origin, *comments.get((None, key), [])]))
    rules = rule_commands(ctx, options, cf, file_rules)
    settings = per_rule_settings(ctx, params, options, cf)
    for name, (command, origin) in rules.items():
        out.append("")
        out.append(table_name(name))
        out.extend(f"# {text}" for text in comments.get((name, None), []))
        out.append(line("command", command, [origin]))
        for key, (values, origins) in settings.get(name, {}).items():
            value = values[0] if len(values) == 1 else values
            out.append(line(key, value, [*dict.fromkeys(origins), *comments.get((name, key), [])]))
    return "\n".join(out).lstrip("\n") + "\n"


def bare_default(ctx: click.Context, param: click.Option, options: dict[str, Any], cf: ConfigFile | None,
                 comments: dict[tuple[str | None, str | None], list[str]]) -> list[str]:
    """A per-rule flag's bare value (``--grace 8``): the default for every rule, a top-level key."""
    name = str(param.name)
    key = name.replace("_", "-")
    from_file = cf.per_rule.get(name, []) if cf is not None else []
    bare = [value for value in merge_per_rule(options.get(name, ()), from_file) if "=" not in value]
    if not bare:
        return []
    value = bare[-1]
    origin = cf.origin(name, value) if cf is not None and value in from_file else ""
    return [line(key, typed(value), [origin or source_of(ctx, name), *comments.get((None, key), [])])]


def rule_commands(ctx: click.Context, options: dict[str, Any], cf: ConfigFile | None,
                  file_rules: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Each rule's command and where it came from, in the order the watchdog builds them."""
    rules: dict[str, tuple[str, str]] = {}
    for command in options["commands"]:
        name = os.path.basename(split_command(command)[0])
        rules.setdefault(name, (command, "argument"))
    for value in options["rule"]:
        name, command = split_assignment("--rule", value)
        rules.setdefault(name, (command, source_of(ctx, "rule")))
    for value in file_rules:
        name, command = split_assignment("[rules]", value)
        if name not in rules and cf is not None:
            rules[name] = (command, cf.where("command", name))
    return rules


def per_rule_settings(ctx: click.Context, params: Sequence[click.Parameter], options: dict[str, Any],
                      cf: ConfigFile | None) -> dict[str, dict[str, tuple[list[Any], list[str]]]]:
    """rule -> key -> (values, where each came from), flags' values before the file's."""
    found: dict[str, dict[str, tuple[list[Any], list[str]]]] = {}
    for param in params:
        name = param.name
        if not name or name in NOT_PRINTED or not is_per_rule(param):
            continue
        from_file = cf.per_rule.get(name, []) if cf is not None else []
        for assignment in merge_per_rule(options.get(name, ()), from_file):
            if "=" not in assignment:  # a bare value: the default for every rule (--grace 8)
                continue
            rule, text = split_assignment("--" + name.replace("_", "-"), assignment)
            origin = cf.origin(name, assignment) if cf is not None else ""
            values, origins = found.setdefault(rule, {}).setdefault(name.replace("_", "-"), ([], []))
            values.append(typed(text))
            origins.append(origin if assignment in from_file and origin else source_of(ctx, name))
    return found
