"""The container examples, checked as far as a machine without a Docker engine or a cluster can."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from watchdog.cli import DEFAULT_GRACE, make_cli
from watchdog.manager import make_plugin_manager
from watchdog.rules import make_rules

ROOT = Path(__file__).parent.parent
DOCKER = ROOT / "examples" / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
COMPOSE = DOCKER / "compose.yaml"
KUBERNETES = ROOT / "examples" / "kubernetes"
SUPERVISORD = ROOT / "examples" / "supervisord"
POD = KUBERNETES / "pod.yaml"
SERVICES = ("/usr/sbin/apache2", "/usr/sbin/sshd")
IMAGE = "watchdog-demo"  # the tag the README builds
STATUS_COMMAND = ["watchdog", "--status"]  # exit 0 only while every rule runs


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's ``(INSTRUCTION, arguments)``, continuation lines joined."""
    lines, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):  # Docker drops these, even mid-instruction
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "the Dockerfile ends in a continuation line"
    return [(word.upper(), rest.strip()) for word, _, rest in (line.partition(" ") for line in lines)]


def arguments(kind: str) -> list[str]:
    return [args for word, args in instructions() if word == kind]


def exec_form(kind: str) -> list[str]:
    """The JSON array of the last ``kind`` instruction (Docker uses the last one)."""
    found = arguments(kind)
    assert found, f"no {kind} in the Dockerfile"
    value = json.loads(found[-1])  # fails on the shell form, which would wrap it in /bin/sh -c
    assert isinstance(value, list)
    return value


def shell_commands() -> list[list[str]]:
    """Every command of every RUN, split at ``&&``."""
    return [shlex.split(part) for args in arguments("RUN") for part in args.split("&&")]


def apt_packages() -> set[str]:
    installs = [words for words in shell_commands() if words[:2] == ["apt-get", "install"]]
    return {word for words in installs for word in words[2:] if not word.startswith("-")}


def require_services() -> None:
    missing = [path for path in SERVICES if not os.path.exists(path)]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: apt-get install apache2 openssh-server")


def test_the_image_runs_watchdog_as_its_entry_point() -> None:
    assert exec_form("ENTRYPOINT") == ["watchdog"]


def test_the_default_commands_are_rules_the_watchdog_accepts() -> None:
    require_services()
    # make_rules checks each program exists and is executable, as `watchdog` does at start.
    rules = make_rules(exec_form("CMD"), (), shell=False)
    # Both services detach; the default matcher finds them by these process names.
    assert [rule.name for rule in rules] == ["sshd", "apache2"]


def test_the_default_commands_come_from_the_packages_the_image_installs() -> None:
    require_services()
    if shutil.which("dpkg") is None:
        pytest.skip("dpkg not found: not a Debian machine")
    for command in exec_form("CMD"):
        program = shlex.split(command)[0]
        owner = subprocess.run(["dpkg", "-S", program], capture_output=True, text=True)
        assert owner.returncode == 0, owner.stderr
        package = owner.stdout.split(":")[0]
        assert package in apt_packages(), f"{program} comes from {package}, not installed"


def test_sshd_gets_its_runtime_directory_and_host_keys() -> None:
    commands = shell_commands()
    assert ["mkdir", "-p", "/run/sshd"] in commands
    assert ["ssh-keygen", "-A"] in commands


def test_pip_installs_the_copied_repository_into_a_venv_of_its_own_on_path() -> None:
    copies = [args.split() for args in arguments("COPY")]
    destinations = [words[-1] for words in copies if words[-2:-1] == ["."]]
    assert len(destinations) == 1, f"the repository (.) should be copied once: {copies}"
    venvs = [words[3] for words in shell_commands() if words[1:3] == ["-m", "venv"]]
    assert len(venvs) == 1, "one venv for the watchdog"
    pip = [words for words in shell_commands() if "pip" in Path(words[0]).name and "install" in words]
    assert len(pip) == 1, pip
    installed = [word for word in pip[0][pip[0].index("install") + 1 :] if not word.startswith("-")]
    assert installed == destinations
    assert Path(pip[0][0]).parent == Path(venvs[0]) / "bin"
    assert f"PATH={venvs[0]}/bin:$PATH" in arguments("ENV")


def test_the_image_exposes_ssh_and_http() -> None:
    assert sorted(" ".join(arguments("EXPOSE")).split()) == ["22", "80"]


def test_the_readme_builds_from_the_root_and_runs_the_default_commands() -> None:
    readme = (DOCKER / "README.md").read_text()
    assert "docker build -f examples/docker/Dockerfile -t watchdog-demo ." in readme
    run_lines = [line for line in readme.splitlines() if line.startswith("docker run ")]
    assert run_lines, "no docker run line"
    assert shlex.split(run_lines[0])[-len(exec_form("CMD")) :] == exec_form("CMD")


# --- health checks, Compose and Kubernetes ------------------------------------


def load_yaml(path: Path) -> Any:
    yaml = pytest.importorskip("yaml", reason="PyYAML parses the Compose and Kubernetes examples")
    return yaml.safe_load(path.read_text())


def watchdog_params(args: list[str]) -> dict[str, Any]:
    """What the watchdog's own command line makes of ``args`` (defaults filled in)."""
    command = make_cli(make_plugin_manager())
    with command.make_context("watchdog", list(args)) as ctx:
        return ctx.params


def longest_grace(values: tuple[str, ...]) -> float:
    """The longest of ``--grace`` values, bare (every rule's) or ``NAME=SECONDS`` (one rule's)."""
    return max((float(value.rpartition("=")[2]) for value in values), default=DEFAULT_GRACE)


def seconds(duration: str) -> float:
    """A Compose duration such as ``10s``, ``1m30s`` or ``500ms``, in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"not a duration: {duration!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


def compose_service() -> dict[str, Any]:
    services = load_yaml(COMPOSE)["services"]
    assert len(services) == 1, f"one container, as with docker run: {list(services)}"
    service: dict[str, Any] = next(iter(services.values()))
    return service


def pod_container() -> dict[str, Any]:
    containers = load_yaml(POD)["spec"]["containers"]
    assert len(containers) == 1, "one container, as with docker run"
    container: dict[str, Any] = containers[0]
    return container


def test_the_dockerfile_health_check_runs_watchdog_status() -> None:
    checks = arguments("HEALTHCHECK")
    assert len(checks) == 1, checks
    found = re.fullmatch(r"((?:--[a-z-]+=\S+\s+)*)CMD\s+(.*)", checks[0])
    assert found, f"HEALTHCHECK [OPTIONS] CMD [...] expected: {checks[0]}"
    assert json.loads(found.group(2)) == STATUS_COMMAND  # the exec form: no shell in between
    options = dict(option.removeprefix("--").split("=") for option in found.group(1).split())
    assert seconds(options["timeout"]) < seconds(options["interval"])


def test_compose_builds_the_image_from_the_root_and_runs_the_default_commands() -> None:
    service = compose_service()
    assert (DOCKER / service["build"]["context"]).resolve() == ROOT.resolve()
    assert ROOT / service["build"]["dockerfile"] == DOCKERFILE
    assert service["image"] == IMAGE
    assert "entrypoint" not in service, "ENTRYPOINT [\"watchdog\"] stays"
    assert service["command"] == exec_form("CMD")
    assert sorted(port.split(":")[1] for port in service["ports"]) == ["22", "80"]


def test_compose_checks_health_with_watchdog_status() -> None:
    test = compose_service()["healthcheck"]["test"]
    assert test == ["CMD", *STATUS_COMMAND]


def test_compose_waits_longer_than_the_watchdog_grace_before_killing() -> None:
    service = compose_service()
    grace = longest_grace(watchdog_params(service["command"])["grace"])
    assert seconds(service["stop_grace_period"]) > grace


def test_the_pod_is_valid_against_the_kubernetes_schemas() -> None:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate (test extras) holds the Kubernetes schemas"
    )
    version = kubernetes_validate.latest_version()
    # strict: a misspelt field (terminationGracePeriodSecond) is an error, not ignored
    kubernetes_validate.validate(load_yaml(POD), version, strict=True)
    misspelt = load_yaml(POD)
    misspelt["spec"]["terminationGracePeriodSecond"] = misspelt["spec"].pop("terminationGracePeriodSeconds")
    with pytest.raises(kubernetes_validate.ValidationError, match="terminationGracePeriodSecond"):
        kubernetes_validate.validate(misspelt, version, strict=True)


def test_the_pod_runs_the_image_with_the_default_commands_as_arguments() -> None:
    pod = load_yaml(POD)
    assert (pod["apiVersion"], pod["kind"]) == ("v1", "Pod")
    container = pod_container()
    assert container["image"] == IMAGE
    assert "command" not in container, "a command would replace ENTRYPOINT [\"watchdog\"]"
    assert list(watchdog_params(container["args"])["commands"]) == exec_form("CMD")
    assert sorted(port["containerPort"] for port in container["ports"]) == [22, 80, PROBE_PORT]


PROBE_PORT = 8081
PROBES = {"startupProbe": "/startupz", "readinessProbe": "/readyz", "livenessProbe": "/livez"}


@pytest.mark.parametrize("probe", list(PROBES))
def test_the_pod_probes_ask_the_watchdogs_probe_endpoints(probe: str) -> None:
    container = pod_container()
    assert watchdog_params(container["args"])["probe_address"] == str(PROBE_PORT)
    # A number, not the port's name: podman 4 resolves only numbers when it plays the pod.
    assert container[probe]["httpGet"] == {"path": PROBES[probe], "port": PROBE_PORT}


def test_the_pod_ends_with_its_containers_fields() -> None:
    """container-test.sh appends a volume mount to the container and volumes to the spec."""
    last = [line for line in POD.read_text().splitlines() if line.strip()][-1]
    assert re.match(r" {8}\S", last), f"the last line is not one of the container's fields: {last!r}"


def test_the_kubernetes_readme_keeps_the_exec_probe_as_the_alternative() -> None:
    readme = (KUBERNETES / "README.md").read_text()
    assert 'command: ["watchdog", "--status"]' in readme


def test_the_pod_termination_grace_period_exceeds_the_watchdog_grace() -> None:
    pod = load_yaml(POD)
    grace = longest_grace(watchdog_params(pod_container()["args"])["grace"])
    assert pod["spec"]["terminationGracePeriodSeconds"] > grace


@pytest.mark.parametrize("directory", [DOCKER, KUBERNETES, SUPERVISORD], ids=lambda path: path.name)
def test_each_example_readme_names_every_file_beside_it(directory: Path) -> None:
    readme = (directory / "README.md").read_text()
    files = [path.name for path in directory.iterdir() if path.name != "README.md"]
    assert files
    assert [name for name in files if f"`{name}`" not in readme] == []
