"""watchdog: keep several services alive in one container by watching the process table.

Plugin authors need two names from here: ``hookimpl`` to mark their hook
functions, and ``NAME``, the entry-point group their package registers under.

pluggy is imported when a marker is first asked for, not with the package:
``watchdog --status``, run every few seconds by health checks, never needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

NAME = "watchdog"
__version__ = "0.1.0"

if TYPE_CHECKING:
    import pluggy

    hookspec: pluggy.HookspecMarker
    hookimpl: pluggy.HookimplMarker


def __getattr__(name: str) -> Any:
    if name not in ("hookspec", "hookimpl"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import pluggy

    # Made once and kept as module attributes: every plugin marks with the same objects.
    globals().update(hookspec=pluggy.HookspecMarker(NAME), hookimpl=pluggy.HookimplMarker(NAME))
    return globals()[name]
