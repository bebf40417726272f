"""The plugin guide's tables list every hook and every engine verb the code has.

A hook added to ``hookspecs.py`` or a verb added to ``EngineAPI`` without a row
in plugins/README.md fails here, so the guide cannot fall behind the code.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from watchdog import hookspecs
from watchdog.api import EngineAPI

GUIDE = (Path(__file__).parent.parent / "plugins" / "README.md").read_text()


def table_rows() -> list[str]:
    return [line for line in GUIDE.splitlines() if line.startswith("| `")]


def test_every_hook_has_one_row_in_the_hook_table() -> None:
    hooks = [name for name, value in vars(hookspecs).items()
             if name.startswith("watchdog_") and inspect.isfunction(value)]
    assert hooks
    rows = table_rows()
    counts = {hook: sum(f"`{hook}(" in row.split("|")[1] for row in rows) for hook in hooks}
    assert {hook: n for hook, n in counts.items() if n != 1} == {}


def test_every_engine_verb_and_attribute_is_in_the_engine_table() -> None:
    members = [name for name in (*EngineAPI.__annotations__, *vars(EngineAPI))
               if not name.startswith("_")]
    assert {"start", "set_ready", "adopt", "clock"} <= set(members)
    first_cells = " ".join(row.split("|")[1] for row in table_rows())
    assert [name for name in members if f"`engine.{name}" not in first_cells] == []
