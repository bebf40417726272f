"""The plugin guide's loop-services plugin, installed by its entry point, restarts a real service.

examples/plugins/watchdog-restart-file holds the module plugins/README.md shows, line
for line: a third-party plugin written from that guide alone uses an action
(engine.restart), a timer (engine.call_later) and background work
(engine.run_in_background).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import Watchdog, install_package, pids, ready_since, service, wait_for

Start = Callable[..., Watchdog]
PACKAGE = Path(__file__).parent.parent / "examples" / "plugins" / "watchdog-restart-file"
README = Path(__file__).parent.parent / "plugins" / "README.md"


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return install_package(PACKAGE, tmp_path_factory.mktemp("watchdog-restart-file"))


def test_the_readme_shows_the_package_module_line_for_line() -> None:
    after_marker = README.read_text().split("<!-- readme-loop-services-example", 1)[1]
    block = re.search(r"```python\n(.*?)```", after_marker, re.S)
    assert block is not None
    assert block.group(1) == (PACKAGE / "watchdog_restart_file.py").read_text()


def test_touching_the_file_restarts_the_service_once(
        watchdog: Start, tmp_path: Path, plugin_env: dict[str, str]) -> None:
    record = tmp_path / "signals"
    svc = service(tmp_path, "wd-touched", "--record", str(record))
    trigger = tmp_path / "restart.txt"
    trigger.write_text("")
    wd = watchdog("--restart-file", f"wd-touched={trigger}", "--restart-file-interval", "0.1",
                  str(svc), env=plugin_env)
    old = wait_for(lambda: pids("wd-touched"), what="the service")
    wd.wait_log("wd-touched: running")
    os.utime(trigger, (1, 1))  # a modification time that differs from the one seen
    new = wait_for(lambda: ready_since(record, old), what="the restarted service")
    assert len(new) == 1 and pids("wd-touched") == set(new)
    assert f"{next(iter(old))} SIGTERM" in record.read_text()
    assert f"restarting ({trigger} was touched)" in wd.log()
    assert wd.stop() == 0


def test_the_package_is_loaded_from_its_entry_point(
        tmp_path: Path, plugin_env: dict[str, str], watchdog: Start) -> None:
    wd = watchdog("--list-plugins", env=plugin_env)
    assert wd.proc.wait(20) == 0
    assert "restart-file  (watchdog-restart-file 0.1.0)" in wd.log()
