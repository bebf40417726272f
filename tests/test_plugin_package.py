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
from helpers import Watchdog, install_package, wait_for

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
