"""The Prometheus example plugin, installed with its dependency, serving a real watchdog's rules."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import signal
import socket
import subprocess
import sys
import tomllib
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import Watchdog, pids, program, wait_for
from packaging.requirements import Requirement

Start = Callable[..., Watchdog]
PACKAGE = Path(__file__).parent.parent / "examples" / "plugins" / "watchdog-prometheus"
# The watchdog under test: never a distribution of that name fetched from an index.
CORE = "procwatchdog"


def pip_install(target: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target",
                           str(target), *args], capture_output=True, text=True, timeout=300)


def missing_dependencies() -> list[str]:
    """The package's requirements that this environment lacks (the core aside)."""
    declared = tomllib.loads((PACKAGE / "pyproject.toml").read_text())["project"]["dependencies"]
    missing = []
    for text in declared:
        name = Requirement(text).name
        if name == CORE:
            continue
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(text)
    return missing


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment variables under which ``python -m watchdog`` sees the package installed.

    As in test_plugin_package.py: pip installs it into a directory of its own,
    first on PYTHONPATH, so its entry point is found through installed metadata
    and the shared environment is left as it was. Its dependencies that this
    environment lacks (prometheus_client) come from the index into the same
    directory; the watchdog itself stays the one under test.
    """
    work = tmp_path_factory.mktemp("watchdog-prometheus")
    source, target = work / "source", work / "site"
    # A copy: setuptools writes build/ and *.egg-info beside the sources it builds.
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    # Offline first, with the setuptools at hand; else pip fetches a build backend.
    built = pip_install(target, "--no-deps", "--no-build-isolation", str(source))
    if built.returncode != 0:
        built = pip_install(target, "--no-deps", str(source))
    assert built.returncode == 0, f"pip install {PACKAGE.name} failed:\n{built.stderr[-3000:]}"
    dependencies = missing_dependencies()
    if dependencies:
        fetched = pip_install(target, *dependencies)
        if fetched.returncode != 0:
            pytest.skip(f"cannot install {', '.join(dependencies)} from the package index: "
                        f"{fetched.stderr.strip().splitlines()[-1:]}")
    path = os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path}


def run_watchdog(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "watchdog", *args], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=60)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def scrape(port: int) -> dict[str, float]:
    """Every sample at ``/metrics``, by series (``name{labels}``); empty while nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:  # refused: the server is not up yet
        return {}
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            samples[series] = float(value)
    return samples


def series(metric: str, rule: str) -> str:
    return f'{metric}{{rule="{rule}"}}'


def start_served(start: Start, env: dict[str, str], command: str, port: int) -> Watchdog:
    return start(command, "--metrics-port", str(port), "--metrics-addr", "127.0.0.1",
                 "--interval", "60", env=env)


def test_the_installed_package_adds_its_flags_and_disable_removes_them(
    plugin_env: dict[str, str]
) -> None:
    helped = run_watchdog(plugin_env, "--help")
    assert helped.returncode == 0, helped.stderr
    assert "--metrics-port PORT" in helped.stdout
    assert "--metrics-addr ADDR" in helped.stdout
    disabled = run_watchdog(plugin_env, "--disable", "prometheus", "--help")
    assert disabled.returncode == 0, disabled.stderr
    assert "--metrics-port" not in disabled.stdout


def test_a_killed_service_shows_as_a_restart_with_its_signal_and_is_up_again(
    plugin_env: dict[str, str], tmp_path: Path, watchdog: Start
) -> None:
    rule, port = "wd-prom-sleep", free_port()
    up, restarts, last_exit = (series(metric, rule) for metric in (
        "watchdog_rule_up", "watchdog_restarts_total", "watchdog_last_exit_status"))
    wd = start_served(watchdog, plugin_env, f"{program(tmp_path, rule)} 1000", port)

    before = wait_for(lambda: (found := scrape(port)).get(up) == 1.0 and found,
                      what=f"{up} 1.0 at /metrics")
    assert before[restarts] == 0.0
    assert last_exit not in before, "no exit is known yet"
    # The plugin's own registry: no process, platform or gc metrics of the interpreter.
    assert all(name.startswith("watchdog_") for name in before), sorted(before)

    (pid,) = pids(rule)
    os.kill(pid, signal.SIGKILL)
    after = wait_for(lambda: (found := scrape(port)).get(restarts) == 1.0
                     and found.get(up) == 1.0 and found, what=f"{restarts} 1.0 and up again")
    assert after[last_exit] == -signal.SIGKILL
    assert pids(rule) - {pid}, "a new process runs"
    assert wd.stop() == 0


def test_a_metrics_port_in_use_is_one_error_line_and_the_services_still_run(
    plugin_env: dict[str, str], tmp_path: Path, watchdog: Start
) -> None:
    rule = "wd-prom-busy"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        wd = start_served(watchdog, plugin_env, f"{program(tmp_path, rule)} 1000", port)
        log = wd.wait_log(f"{rule}: running")
    errors = [line for line in log.splitlines() if " error: " in line]
    assert len(errors) == 1, log
    assert f"metrics: cannot serve on 127.0.0.1 port {port}: Address already in use" in errors[0]
    assert "Traceback" not in log
    assert wd.stop() == 0


def test_without_a_metrics_port_the_plugin_serves_nothing(
    plugin_env: dict[str, str], tmp_path: Path, watchdog: Start
) -> None:
    rule = "wd-prom-quiet"
    wd = watchdog(f"{program(tmp_path, rule)} 1000", env=plugin_env)
    log = wd.wait_log(f"{rule}: running")
    assert wd.stop() == 0
    assert "watchdog: metrics:" not in log


def test_health_per_rule_is_exported_as_one_series_per_state(
    plugin_env: dict[str, str], tmp_path: Path, watchdog: Start
) -> None:
    sick, plain, port = "wd-prom-sick", "wd-prom-plain", free_port()
    wd = watchdog(f"{program(tmp_path, sick)} 1000", f"{program(tmp_path, plain)} 1000",
                  "--health-tcp", f"{sick}={free_port()}", "--health-interval", f"{sick}=0.2",
                  "--health-retries", f"{sick}=1", "--on-unhealthy", f"{sick}=report",
                  "--metrics-port", str(port), "--metrics-addr", "127.0.0.1", env=plugin_env)

    def health(rule: str, state: str) -> str:
        return f'watchdog_rule_health{{health="{state}",rule="{rule}"}}'

    found = wait_for(lambda: (got := scrape(port)).get(health(sick, "unhealthy")) == 1.0 and got,
                     30, f"{sick} unhealthy at /metrics")
    assert found[health(sick, "healthy")] == 0.0 and found[health(sick, "unknown")] == 0.0
    assert found[health(plain, "unknown")] == 1.0, "a rule without checks is unknown"
    assert found[health(plain, "unhealthy")] == 0.0
    assert wd.stop() == 0
