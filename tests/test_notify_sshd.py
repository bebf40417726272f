"""Debian's sshd speaks the notify protocol: under ``--notify`` it reports itself ready.

Run in a PID namespace (the container's place), with a second service
``--after`` it that must not start before sshd said ``READY=1``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from helpers import wait_for
from namespace import Container, namespace_problem, prepare_sshd

SSHD = "/usr/sbin/sshd"


def sshd_problem() -> str | None:
    if not os.path.exists(SSHD):
        return "needs Debian's openssh-server (/usr/sbin/sshd absent)"
    return namespace_problem()


pytestmark = pytest.mark.skipif(sshd_problem() is not None, reason=str(sshd_problem()))


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Container]:
    prepare_sshd()
    after = tmp_path / "after-sshd"
    shutil.copy("/bin/sleep", after)
    container = Container(["-v", "--status-file", str(tmp_path / "status.json"), "--notify", "sshd",
                           "--rule", f"sshd={SSHD}", "--rule", f"after={after} 1000",
                           "--after", "after=sshd"], tmp_path)
    try:
        yield container
    finally:
        container.close()


def when(log: str, text: str) -> datetime:
    line = next(line for line in log.splitlines() if text in line)
    return datetime.fromisoformat(line.split()[0])


def test_sshd_says_ready_and_the_service_after_it_starts_then(box: Container, tmp_path: Path) -> None:
    log = box.wait_log("after: running", 30)
    assert "sshd: notify: READY='1'" in log  # its own datagram, accepted from its own process
    assert when(log, "sshd: ready") <= when(log, "after: started")
    banner = box.run("python3", "-c", "import socket; s = socket.create_connection(('127.0.0.1', 22), 2);"
                     " print(s.recv(64).decode(errors='replace'))")
    assert banner.stdout.startswith("SSH-2.0-")
    wait_for(lambda: readiness(tmp_path / "status.json") == {"sshd": True, "after": True}, 10,
             "both ready in the status file")


def readiness(path: Path) -> dict[str, bool]:
    try:
        return {rule["name"]: rule["ready"] for rule in json.loads(path.read_text())["rules"]}
    except (OSError, ValueError):
        return {}
