"""The plugin guide's tables list every hook, engine verb, Config helper, Proc field and state the code has.

A hook added to ``hookspecs.py``, a verb added to ``EngineAPI``, a state or arrow
added to ``rulerun.ARROWS`` without its row in plugins/README.md fails here, so the
guide cannot fall behind the code.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from watchdog import hookspecs, rulerun
from watchdog.api import EngineAPI
from watchdog.config import Config
from watchdog.rulerun import ARROWS
from watchdog.snapshot import Proc
from watchdog.state import RunState

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


def state_table() -> dict[str, set[str]]:
    """The guide's state table: each state's row and the states its "may go to" cell names."""
    table = GUIDE.split("| state | meaning | may go to | left by |", 1)[1].split("\n\n", 1)[0]
    rows = [line.split(" | ") for line in table.splitlines() if line.startswith("| `")]
    return {row[0].strip("| `"): set(re.findall(r"`(\w+)`", row[2])) for row in rows}


def test_the_state_table_has_every_state_and_arrow_of_the_code() -> None:
    arrows = {old.value: {new.value for new in news} for old, news in ARROWS.items()}
    assert set(arrows) == {state.value for state in RunState}
    assert state_table() == arrows


def test_the_state_diagram_is_the_one_in_rulerun() -> None:
    diagram = rulerun.__doc__.split("::\n\n", 1)[1].split("\n\n\n", 1)[0]  # type: ignore[union-attr]
    diagram = diagram.split("\nA final state", 1)[0].rstrip()
    assert diagram.count("\n") > 10
    assert diagram in GUIDE


def test_every_config_helper_and_proc_field_is_in_the_guide() -> None:
    helpers = [name for name, value in vars(Config).items()
               if not name.startswith("_") and callable(value)]
    assert {"per_rule", "with_default", "parse_with_default"} <= set(helpers)
    assert [name for name in helpers if f"`config.{name}(" not in GUIDE] == []
    assert [name for name in Proc._fields if f"`{name}`" not in GUIDE] == []
