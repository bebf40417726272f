"""The container example, checked as far as a machine without a Docker engine can."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from watchdog.rules import make_rules

DOCKER = Path(__file__).parent.parent / "examples" / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
SERVICES = ("/usr/sbin/apache2", "/usr/sbin/sshd")


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
