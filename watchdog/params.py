"""Click parameter types shared by the core and plugins."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # generic for type checkers in recent click, a plain class at run time
    FloatParam = click.ParamType[float]
else:
    FloatParam = click.ParamType


class Seconds(FloatParam):
    """A finite number of seconds, at least ``minimum`` (click's FloatRange lets NaN through)."""

    name = "seconds"

    def __init__(self, minimum: float = 0.0) -> None:
        self.minimum = minimum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not math.isfinite(seconds) or seconds < self.minimum:
            self.fail(f"{value!r} is not a finite number of seconds >= {self.minimum:g}", param, ctx)
        return seconds
