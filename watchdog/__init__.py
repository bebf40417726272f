"""watchdog: keep several services alive in one container by watching the process table.

Plugin authors need two names from here: ``hookimpl`` to mark their hook
functions, and ``NAME``, the entry-point group their package registers under.
"""

import pluggy

NAME = "watchdog"
__version__ = "0.1.0"

hookspec = pluggy.HookspecMarker(NAME)
hookimpl = pluggy.HookimplMarker(NAME)
