"""Running a click command so that every error is one line with its exit status, never a traceback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from watchdog.logs import one_line


def exit_status(run: Callable[[], Any], prog: str, on_abort: Callable[[], int]) -> int:
    """Call ``run`` (a click ``main`` with ``standalone_mode=False``) and return its exit status.

    Usage errors print ``PROG: message`` on one line; Ctrl-C is ``on_abort()``'s.
    """
    try:
        return int(run() or 0)
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.Abort:
        return on_abort()
    except click.ClickException as exc:
        click.echo(f"{prog}: {one_line(exc.format_message())}", err=True)
        return exc.exit_code


def printable(value: Any) -> Any:
    """``value`` (JSON-like: dicts, lists, strings...) with every string passed through
    ``one_line``: what a service or another process said can neither break a table's
    lines nor send the terminal an escape sequence."""
    if isinstance(value, str):
        return one_line(value)
    if isinstance(value, dict):
        return {printable(key): printable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [printable(item) for item in value]
    return value
