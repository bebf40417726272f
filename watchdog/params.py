"""Click parameter types shared by the core and plugins."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # generic for type checkers in recent click, a plain class at run time
    FloatParam = click.ParamType[float]
    AnyParam = click.ParamType[Any]
else:
    FloatParam = click.ParamType
    AnyParam = click.ParamType


# Every duration a flag gives is at most a week. Longer ones are mistakes (3e6 for
# 3 s in microseconds), and the kernel's waits take milliseconds in an int (epoll:
# 24.8 days at most), so a larger value would end in an OverflowError mid-run.
MAX_SECONDS = 7 * 24 * 3600.0
MAX_SECONDS_TEXT = "604800 (7 days)"


def seconds_problem(seconds: float, minimum: float = 0.0, maximum: float = MAX_SECONDS) -> str | None:
    """Why ``seconds`` is no duration the watchdog takes; None when it is one."""
    if not math.isfinite(seconds) or seconds < minimum:
        return f"is not a finite number of seconds >= {minimum:g}"
    if seconds > maximum:
        return f"is more than {MAX_SECONDS_TEXT if maximum == MAX_SECONDS else f'{maximum:g}'} seconds"
    return None


class Seconds(FloatParam):
    """A finite number of seconds from ``minimum`` to ``maximum`` (click's FloatRange lets NaN through)."""

    name = "seconds"

    def __init__(self, minimum: float = 0.0, maximum: float = MAX_SECONDS) -> None:
        self.minimum = minimum
        self.maximum = maximum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        problem = seconds_problem(seconds, self.minimum, self.maximum)
        if problem is not None:
            self.fail(f"{value!r} {problem}", param, ctx)
        return seconds


class EnvList(click.types.StringParamType):
    """The type of a repeatable text option: how its ``WATCHDOG_*`` value splits into values.

    click splits such a value at every space, so ``WATCHDOG_RULE='web=python3 app.py'``
    became two broken values. See ``split_env_values`` for what happens instead.
    """

    def __init__(self, envvar: str, assignments: bool) -> None:
        self.envvar = envvar
        self.assignments = assignments

    def split_envvar_value(self, rv: str) -> Sequence[str]:
        return split_env_values(self.envvar, rv, self.assignments)


def split_env_values(envvar: str, text: str, assignments: bool) -> list[str]:
    """The values held by ``text``, the value of environment variable ``envvar``.

    One value per line when ``text`` has several lines (each line as the flag would
    take it). Otherwise words split at spaces, where single or double quotes keep a
    value with spaces together; backslashes stay as written, since they are a
    regex's. With ``assignments`` (``NAME=VALUE`` flags), a line in which some word
    is not ``NAME=VALUE`` is one value: ``web=python3 app.py`` is one rule.
    """
    if not text:  # the usual unset variable, which needs no shlex
        return []
    if "\n" in text.strip():
        return [line.strip() for line in text.splitlines() if line.strip()]
    import shlex  # here: a start with no such variable set needs none

    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace_split = True
    lexer.escape = ""
    try:
        words = list(lexer)
    except ValueError as exc:  # "No closing quotation"
        raise click.UsageError(f"{envvar}: {str(exc).lower()}") from None
    if assignments and not all("=" in word for word in words):
        return [text.strip()]
    return words


class DefaultOrPerRule(click.types.StringParamType):
    """``VALUE`` (the default for every rule) or ``NAME=VALUE`` (one rule's), each checked by
    ``inner`` as it is given; the text is kept, for ``Config.parse_with_default`` to read."""

    def __init__(self, inner: AnyParam) -> None:
        self.inner = inner
        self.name = f"[NAME=]{inner.name}"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip()
        name, sep, rest = text.partition("=")
        if sep and not name.strip():
            self.fail(f"{text!r}: expected VALUE or NAME=VALUE", param, ctx)
        self.inner.convert(rest if sep else text, param, ctx)
        return text


SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024 ** 2, "mb": 1024 ** 2,
              "mib": 1024 ** 2, "g": 1024 ** 3, "gb": 1024 ** 3, "gib": 1024 ** 3}
# Compiled at the first use (re caches it): most runs never give a size.
SIZE = r"\s*(\d+)\s*([a-zA-Z]*)\s*"


def parse_size(flag: str, text: str, maximum: int) -> int:
    """Bytes from ``1048576``, ``64K``, ``50MB`` or ``1GiB`` (supervisord's KB, MB and GB are
    1024-based too); a usage error beyond ``maximum``."""
    found = re.fullmatch(SIZE, text)
    unit = found.group(2).lower() if found else ""
    if found is None or unit not in SIZE_UNITS:
        raise click.UsageError(f"{flag}: {text!r} is not a size (bytes, or with K, M or G: 64K, 50MB)")
    size = int(found.group(1)) * SIZE_UNITS[unit]
    if size > maximum:
        raise click.UsageError(f"{flag}: {text!r} is more than the maximum, {maximum // 1024 ** 2} MiB")
    return size
