"""The example plugin package, built and installed by pip and found through its entry point."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from helpers import Watchdog, install_package, program, wait_for

from watchdog.manager import may_declare

Start = Callable[..., Watchdog]
PACKAGE = Path(__file__).parent.parent / "examples" / "plugins" / "watchdog-uptime"
HELP_LINE = "--port NAME=PORT"


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment variables under which ``python -m watchdog`` sees the package installed."""
    return install_package(PACKAGE, tmp_path_factory.mktemp("watchdog-uptime"))


def run_watchdog(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "watchdog", *args], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=60)


def match_choices(help_text: str) -> list[str]:
    found = re.search(r"--match \[([^\]]*)\]", help_text)
    assert found, help_text
    return found.group(1).split("|")


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def listeners(port: int) -> set[int]:
    """Pids of the processes with a TCP socket listening on ``port``."""
    return {
        conn.pid for conn in psutil.net_connections(kind="tcp")
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid
    }


def http_server_command(port: int, host: str, directory: Path) -> list[str]:
    # --directory puts the test's tmp_path in the command line, where the
    # watchdog fixture's clean-up looks for leftovers.
    return [sys.executable, "-m", "http.server", str(port), "--bind", host,
            "--directory", str(directory)]


def test_the_installed_package_adds_its_flag_and_strategy(plugin_env: dict[str, str]) -> None:
    helped = run_watchdog(plugin_env, "--help")
    assert helped.returncode == 0, helped.stderr
    assert HELP_LINE in helped.stdout
    assert "port" in match_choices(helped.stdout)


def test_the_plugin_comes_from_its_entry_point_not_from_the_path(
    plugin_env: dict[str, str]
) -> None:
    no_autoload = {**plugin_env, "WATCHDOG_DISABLE_PLUGIN_AUTOLOAD": "1"}
    helped = run_watchdog(no_autoload, "--help")
    assert helped.returncode == 0, helped.stderr
    assert HELP_LINE not in helped.stdout
    assert "port" not in match_choices(helped.stdout)
    # The same module still loads by its import name.
    assert HELP_LINE in run_watchdog(no_autoload, "-p", "watchdog_uptime", "--help").stdout


def test_disable_blocks_the_plugin_by_its_entry_point_name(plugin_env: dict[str, str]) -> None:
    helped = run_watchdog(plugin_env, "--disable", "uptime", "--help")
    assert helped.returncode == 0, helped.stderr
    assert HELP_LINE not in helped.stdout


def test_the_watchdogs_advice_offers_the_installed_matcher(plugin_env: dict[str, str]) -> None:
    failed = run_watchdog(plugin_env, "--rule", "web=/bin/sleep 100", "--rule", "worker=/bin/sleep 200")
    assert failed.returncode == 2 and len(failed.stderr.splitlines()) == 1, failed.stderr
    assert "--port web=PORT and --port worker=PORT" in failed.stderr
    assert "--regex web=PATTERN and --regex worker=PATTERN" in failed.stderr


def dist_info(folder: Path, entry_points: str, name: str = "some_package-1.0.dist-info") -> None:
    info = folder / name
    info.mkdir(parents=True)
    (info / "entry_points.txt").write_text(entry_points)


def test_only_a_distribution_declaring_the_group_needs_the_metadata_reader(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    declares, other, archive = tmp_path / "declares", tmp_path / "other", tmp_path / "plugins.zip"
    dist_info(declares, "[console_scripts]\nx = x:main\n\n[watchdog]\nuptime = watchdog_uptime\n")
    dist_info(other, "[console_scripts]\nwatchdog = watchdog.cli:main\n")
    archive.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip file
    monkeypatch.setattr(sys, "path", [str(other), str(tmp_path / "missing")])
    assert not may_declare("watchdog")
    monkeypatch.setattr(sys, "path", [str(other), str(declares)])
    assert may_declare("watchdog")
    monkeypatch.setattr(sys, "path", [str(other), str(archive)])
    assert may_declare("watchdog")  # only importlib.metadata reads inside a zip file
    egg = tmp_path / "some_package-1.0-py3.11.egg"
    dist_info(egg, "[watchdog]\nuptime = watchdog_uptime\n", name="EGG-INFO")
    monkeypatch.setattr(sys, "path", [str(other), str(egg)])
    assert may_declare("watchdog")


MODULES_PLUGIN = """
import os
import sys

from watchdog import hookimpl


@hookimpl
def watchdog_started(engine):
    with open("modules.tmp", "w") as f:
        f.write("\\n".join(sorted(sys.modules)))
    os.rename("modules.tmp", "modules.txt")
"""


@pytest.mark.parametrize("limit, needs_psutil", [((), False), (("--max-memory", "wd-mods=1G"), True)],
                         ids=["no limit", "a memory limit"])
def test_pid_1_holds_no_module_its_run_does_not_use(
        tmp_path: Path, watchdog: Start, limit: tuple[str, ...], needs_psutil: bool) -> None:
    # importlib.metadata and psutil would cost PID 1 about 3 and 2 MiB for its whole life.
    if may_declare("watchdog"):
        pytest.skip("a plugin package is installed here: importlib.metadata must load to find it")
    (tmp_path / "list_modules.py").write_text(MODULES_PLUGIN)
    exe = program(tmp_path, "wd-mods")
    watchdog(f"{exe} 1000", "-p", "list_modules", *limit)
    listing = tmp_path / "modules.txt"
    modules = wait_for(lambda: listing.exists() and listing.read_text().split(), what="the module list")
    assert "importlib.metadata" not in modules
    assert ("psutil" in modules) == needs_psutil


@pytest.fixture(params=["127.0.0.1", "::1"], ids=["ipv4", "ipv6"])
def listening(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[int]:
    """The port of an HTTP server listening on loopback, not started by any watchdog."""
    host: str = request.param
    try:
        port = free_port(host)
    except OSError as exc:
        pytest.skip(f"cannot listen on {host}: {exc}")
    server = subprocess.Popen(http_server_command(port, host, tmp_path),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: server.pid in listeners(port), what=f"a listener on port {port}")
        yield port
    finally:
        server.kill()
        server.wait()


def test_a_rule_is_running_while_a_process_listens_on_its_port(
    plugin_env: dict[str, str], listening: int
) -> None:
    # The rule's own program (sleep) does not run at all: only the socket counts.
    served = run_watchdog(plugin_env, "sleep 1000", "--port", f"sleep={listening}", "--check")
    assert served.returncode == 0, served.stdout + served.stderr
    unserved = free_port()
    missing = run_watchdog(plugin_env, "sleep 1000", "--port", f"sleep={unserved}", "--check")
    assert missing.returncode == 1
    assert missing.stdout == f"missing: sleep (no process listening on TCP port {unserved})\n"


def test_a_killed_listener_is_started_again_and_serves_the_port(
    plugin_env: dict[str, str], tmp_path: Path, watchdog: Start
) -> None:
    port = free_port()
    # A uniquely named rule whose processes are named python: the basename
    # matcher would never find it, so "running" can only come from the port.
    server = tmp_path / "wd-port-http"
    server.write_text(f"#!/bin/sh\nexec {shlex.join(http_server_command(port, '127.0.0.1', tmp_path))}\n")
    server.chmod(0o755)
    wd = watchdog(str(server), "--port", f"wd-port-http={port}", "--interval", "60",
                  env=plugin_env)
    first = min(wait_for(lambda: listeners(port), what=f"a listener on port {port}"))
    wd.wait_log(f"wd-port-http: running (pid {first})")
    os.kill(first, signal.SIGKILL)
    second = min(wait_for(lambda: listeners(port) - {first}, what="a new listener"))
    wd.wait_log(f"wd-port-http: running (pid {second})")
    assert wd.stop() == 0


BAD_PORTS = ["0", "65536", "http", "-1", "8_0", "٨٠"]


@pytest.mark.parametrize("port", BAD_PORTS)
def test_a_bad_port_is_a_one_line_usage_error(plugin_env: dict[str, str], port: str) -> None:
    result = run_watchdog(plugin_env, "sleep 1", "--port", f"sleep={port}", "--check")
    assert result.returncode == 2
    assert result.stderr == f"watchdog: --port sleep={port}: a port is a number from 1 to 65535\n"


def test_match_port_without_a_port_is_a_one_line_usage_error(plugin_env: dict[str, str]) -> None:
    result = run_watchdog(plugin_env, "sleep 1", "--match", "port", "--check")
    assert result.returncode == 2
    assert result.stderr == "watchdog: --match port: rule 'sleep' needs --port sleep=PORT\n"
