"""The seed's container: sshd and apache2 kept alive by a watchdog as PID 1.

    docker run IMAGE "/usr/sbin/sshd" "/etc/init.d/apache2 start"

is played here by ``unshare --pid --fork --mount-proc --net watchdog ...``.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import wait_for
from namespace import Container, namespace_problem, prepare_sshd

SSHD, APACHE2, INIT_SCRIPT = "/usr/sbin/sshd", "/usr/sbin/apache2", "/etc/init.d/apache2"
APACHE_ERROR_LOG = Path("/var/log/apache2/error.log")


def seed_problem() -> str | None:
    missing = [path for path in (SSHD, APACHE2, INIT_SCRIPT) if not os.path.exists(path)]
    if missing:
        return f"needs Debian's apache2 and openssh-server ({', '.join(missing)} absent)"
    return namespace_problem()


pytestmark = pytest.mark.skipif(seed_problem() is not None, reason=str(seed_problem()))


@pytest.fixture
def seed(tmp_path: Path) -> Iterator[Container]:
    prepare_sshd()
    box = Container([SSHD, f"{INIT_SCRIPT} start"], tmp_path)
    try:
        yield box
    finally:
        box.close()


def http_status(box: Container) -> str:
    run = box.run("python3", "-c", "import urllib.request as u; "
                  "print(u.urlopen('http://127.0.0.1/', timeout=2).status)")
    return run.stdout.strip()


def ssh_banner(box: Container) -> str:
    run = box.run("python3", "-c", "import socket; s = socket.create_connection(('127.0.0.1', 22), 2); "
                  "print(s.recv(64).decode(errors='replace'))")
    return run.stdout.strip()


def serving(box: Container) -> bool:
    return http_status(box) == "200" and ssh_banner(box).startswith("SSH-2.0-")


def test_both_services_start_and_come_back_after_kill_9(seed: Container) -> None:
    wait_for(lambda: serving(seed), 20, "sshd on 22 and apache2 on 80")
    for name in ("apache2", "sshd"):
        before = {proc.pid for proc in seed.named(name)}
        for proc in seed.named(name):
            os.kill(proc.pid, signal.SIGKILL)
        wait_for(lambda: (now := {p.pid for p in seed.named(name)}) and not now & before,  # noqa: B023
                 20, f"a new {name}")
    wait_for(lambda: serving(seed), 20, "both services answering again")
    assert "apache2: started '/etc/init.d/apache2 start'" in seed.log()


def test_sigterm_gives_apache2_a_graceful_shutdown_well_under_10s(seed: Container) -> None:
    wait_for(lambda: serving(seed), 20, "sshd on 22 and apache2 on 80")
    log_size = APACHE_ERROR_LOG.stat().st_size if APACHE_ERROR_LOG.exists() else 0
    started = time.monotonic()
    seed.signal(signal.SIGTERM)
    assert seed.wait() == 0
    took = time.monotonic() - started
    assert took < 5, took
    with open(APACHE_ERROR_LOG) as log:
        log.seek(log_size)
        assert "caught SIGTERM, shutting down" in log.read()
    assert seed.processes() == []
