"""supervisord's configuration file, read the way supervisord reads it.

supervisord parses with Python's ``RawConfigParser``: ``;`` and ``#`` start a
comment line, and also an inline comment when whitespace comes before them
(``command=nginx ; the web server``); an indented line continues the value
above it; a section or key given twice keeps its last value. The same parser
does the same here, file by file, so each value keeps the file and line it
came from for messages.

``[include] files=`` takes space-separated globs, relative to the directory of
the file that holds the ``[include]``; included files may include others
(supervisord reads only the main file's ``[include]``: nesting is ours).

What decides the format of ``--config FILE``: a section header that only
supervisord uses (``[supervisord]``, ``[include]``, ``[program:x]``,
``[group:x]``, ``[eventlistener:x]``, ``[fcgi-program:x]``,
``[rpcinterface:x]``, ``[unix_http_server]``, ``[inet_http_server]``,
``[supervisorctl]``) makes it supervisord's format; anything else is TOML.
"""

from __future__ import annotations

import configparser
import glob
import os
import re

import click

from watchdog.configfile import read_bounded

HEADER = re.compile(
    r"^\s*\[\s*(supervisord|include|unix_http_server|inet_http_server|supervisorctl"
    r"|(program|group|eventlistener|fcgi-program|rpcinterface):[^\]]*)\s*\]\s*([;#].*)?$",
    re.MULTILINE,
)
SECTION_LINE = re.compile(r"^\[([^\]]+)\]")
KEY_LINE = re.compile(r"^([^\s=:;#\[][^=:]*?)\s*[=:]")
# Includes deeper than this are a loop (a file that includes itself), not configuration.
MAX_INCLUDE_DEPTH = 10


def is_supervisord_format(text: str) -> bool:
    """Whether ``text`` is a supervisord configuration (see the module's docstring)."""
    return HEADER.search(text) is not None


class Entry:
    def __init__(self, value: str, path: str, line: int) -> None:
        self.value = value
        self.path = path
        self.line = line

    @property
    def here(self) -> str:
        """``%(here)s``: the directory of the file this value is written in."""
        return os.path.dirname(os.path.abspath(self.path))

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


class Section:
    def __init__(self, name: str, path: str, line: int, entries: dict[str, Entry] | None = None) -> None:
        self.name = name
        self.path = path
        self.line = line
        self.entries: dict[str, Entry] = {} if entries is None else entries

    @property
    def kind(self) -> str:
        """``program`` for ``[program:web]``, ``supervisord`` for ``[supervisord]``."""
        return self.name.partition(":")[0]

    @property
    def label(self) -> str:
        """``web`` for ``[program:web]``."""
        return self.name.partition(":")[2]

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def read_ini(path: str) -> dict[str, Section]:
    """Every section of ``path`` and the files it includes, merged as supervisord merges them."""
    sections: dict[str, Section] = {}
    read_one(path, sections, depth=0)
    return sections


def read_one(path: str, sections: dict[str, Section], depth: int) -> None:
    text = decode(path, read_bounded(path))
    parsed = parse(path, text)
    lines = locate_lines(text)
    own_include: Section | None = None
    for name in parsed.sections():
        header_line, key_lines = lines.get(name, (1, {}))
        section = sections.setdefault(name, Section(name, path, header_line))
        for key, value in parsed.items(name):
            section.entries[key] = Entry(value, path, key_lines.get(key, header_line))
        if name == "include":
            own_include = Section(name, path, header_line, {
                key: Entry(value, path, key_lines.get(key, header_line))
                for key, value in parsed.items(name)})
    if own_include is None:
        return
    files = own_include.entries.get("files")
    if files is None:
        raise click.UsageError(f"{own_include.where}: [include] has no files= setting")
    if depth >= MAX_INCLUDE_DEPTH:
        raise click.UsageError(f"{files.where}: includes nested more than {MAX_INCLUDE_DEPTH} deep "
                               "(a file that includes itself?)")
    base = os.path.dirname(os.path.abspath(path))
    value = files.value.replace("%(here)s", base)
    try:
        value = value % {"here": base, **env_expansions()}
    except (KeyError, ValueError, TypeError) as exc:
        raise click.UsageError(f"{files.where}: include files={files.value!r}: cannot expand {exc}") from None
    for pattern in value.split():
        matched = sorted(glob.glob(os.path.join(base, pattern)))
        for included in matched:
            read_one(included, sections, depth + 1)


def decode(path: str, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise click.UsageError(f"{path}: not UTF-8 text") from None


def parse(path: str, text: str) -> configparser.RawConfigParser:
    """supervisord's parser settings (``UnhosedConfigParser``); errors name file and line."""
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";", "#"), strict=False,
                                          interpolation=None)
    try:
        parser.read_string(text, source=path)
    except configparser.MissingSectionHeaderError as exc:
        raise click.UsageError(f"{path}:{exc.lineno}: a line before any [section]: "
                               f"{exc.line.strip()!r}") from None
    except configparser.ParsingError as exc:
        lineno, line = exc.errors[0]
        raise click.UsageError(f"{path}:{lineno}: not KEY=VALUE: {line.strip()!r}") from None
    except configparser.Error as exc:
        raise click.UsageError(f"{path}: {exc.message}") from None
    return parser


def locate_lines(text: str) -> dict[str, tuple[int, dict[str, int]]]:
    """Each section's header line and its keys' lines (the last time each is given)."""
    found: dict[str, tuple[int, dict[str, int]]] = {}
    keys: dict[str, int] | None = None
    for number, line in enumerate(text.splitlines(), 1):
        header = SECTION_LINE.match(line)
        if header:
            name = header.group(1).strip()
            found.setdefault(name, (number, {}))
            keys = found[name][1]
            continue
        key = KEY_LINE.match(line)
        if key and keys is not None:
            keys[key.group(1).strip().lower()] = number
    return found


def env_expansions() -> dict[str, str]:
    """``%(ENV_X)s`` for every variable of the environment the watchdog runs in."""
    return {f"ENV_{key}": value for key, value in os.environ.items()}
