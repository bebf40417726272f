"""The documentation tells the truth: the plugin guide's example runs, and every flag is documented."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from helpers import Watchdog, program, wait_for

from watchdog.cli import make_cli
from watchdog.manager import make_plugin_manager

README = Path(__file__).parent.parent / "README.md"
MANUAL = Path(__file__).parent.parent / "MANUAL.md"
PLUGIN_GUIDE = Path(__file__).parent.parent / "plugins" / "README.md"
MARKER = "<!-- readme-plugin-example"


def plugin_example() -> str:
    after_marker = PLUGIN_GUIDE.read_text().split(MARKER, 1)[1]
    return re.search(r"```python\n(.*?)```", after_marker, re.S).group(1)  # type: ignore[union-attr]


def test_the_readme_plugin_is_at_most_30_lines_and_works(
    tmp_path: Path, watchdog: Callable[..., Watchdog]
) -> None:
    source = plugin_example()
    assert len(source.strip().splitlines()) <= 30
    (tmp_path / "watchdog_stamp.py").write_text(source)
    exe = program(tmp_path, "wd-stamped")
    stamps = tmp_path / "stamps"
    stamps.mkdir()
    wd = watchdog("-p", "watchdog_stamp:Stamp", "--stamp-dir", str(stamps), f"{exe} 1000",
                  env={"PYTHONPATH": str(tmp_path)})
    stamp = stamps / "wd-stamped.started"
    wait_for(stamp.exists, what="the stamp file")
    assert f"started '{exe} 1000' pid={stamp.read_text().strip()}" in wd.wait_log("pid=")


def test_every_flag_of_the_command_is_in_the_readme_or_the_manual(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_DISABLE_PLUGIN_AUTOLOAD", "1")  # the project's own flags only
    readme = README.read_text() + MANUAL.read_text()
    command = make_cli(make_plugin_manager())
    flags = [opt for param in command.params if isinstance(param, click.Option)
             for opt in param.opts if opt.startswith("--")]
    assert flags
    undocumented = [flag for flag in flags if f"`{flag}" not in readme]
    assert undocumented == []


def test_the_exit_status_table_has_a_row_for_every_status_in_exits_py() -> None:
    from watchdog import exits

    statuses = {value for name, value in vars(exits).items() if name.startswith("EXIT_")}
    table = README.read_text().split("| exit status | when |", 1)[1].split("\n\n", 1)[0]
    rows = {int(match) for match in re.findall(r"^\| (\d+) \|", table, re.M)}
    assert rows == statuses


def test_the_disable_row_names_every_built_in_plugin() -> None:
    from watchdog.manager import BUILTIN_PLUGINS

    row = next(line for line in MANUAL.read_text().splitlines() if line.startswith("| `--disable NAME`"))
    assert [name for name in BUILTIN_PLUGINS if f"`{name}`" not in row] == []
