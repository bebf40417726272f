"""Running a click command so that every error is one line with its exit status, never a traceback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from watchdog.escapes import one_line


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
