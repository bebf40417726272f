"""The seed's container with an HTTP check on apache2: a hung apache2 is restarted, one copy after.

    docker run IMAGE "/usr/sbin/sshd" "/etc/init.d/apache2 start" \
        --health-http apache2=http://127.0.0.1/ --max-memory apache2=512M

is played here by ``unshare --pid --fork --mount-proc --net watchdog ...``.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import psutil
import pytest
from helpers import wait_for
from namespace import Container, prepare_sshd
from test_seed import INIT_SCRIPT, SSHD, http_status, seed_problem

pytestmark = pytest.mark.skipif(seed_problem() is not None, reason=str(seed_problem()))


def main_processes(procs: list[psutil.Process]) -> list[psutil.Process]:
    """The processes whose parent is not among ``procs``: one per running copy of the service."""
    pids = {proc.pid for proc in procs}
    mains = []
    for proc in procs:
        try:
            if proc.ppid() not in pids:
                mains.append(proc)
        except psutil.NoSuchProcess:
            continue  # ended since it was listed (a copy being stopped): not a running copy
    return mains


def test_a_hung_apache2_is_restarted_by_its_http_check_and_comes_back_as_one_copy(
    tmp_path: Path
) -> None:
    prepare_sshd()
    status_file = tmp_path / "status.json"
    box = Container([SSHD, f"{INIT_SCRIPT} start", "--health-http", "apache2=http://127.0.0.1/",
                     "--health-interval", "apache2=1", "--health-timeout", "apache2=2",
                     "--health-retries", "apache2=2", "--max-memory", "apache2=512M",
                     "--status-file", str(status_file)], tmp_path)
    try:
        box.wait_log("apache2: healthy (", timeout=60)
        assert http_status(box) == "200"
        hung = box.named("apache2")
        for proc in hung:  # every apache2 process stopped: the port still accepts, nothing answers
            os.kill(proc.pid, signal.SIGSTOP)
        log = box.wait_log("apache2: restarting (unhealthy: timed out after 2 s for 2 checks)", 60)
        assert "warning: apache2: unhealthy (timed out after 2 s for 2 checks)" in log
        old = {proc.pid for proc in hung}
        wait_for(lambda: http_status(box) == "200"
                 and not old & {proc.pid for proc in box.named("apache2")}, 60, "a new apache2 answering")
        wait_for(lambda: box.log().count("apache2: healthy (") == 2, 60, "apache2 healthy again")
        # the init script (named apache2 too) ends; then one main apache2 with its workers is left
        wait_for(lambda: len(main_processes(box.named("apache2"))) == 1, 30, "one copy of apache2")
        rules = {rule["name"]: rule for rule in json.loads(status_file.read_text())["rules"]}
        assert rules["apache2"]["health"] == "healthy" and rules["apache2"]["restarts"] == 1
        assert "HTTP 200" in rules["apache2"]["health_detail"]
        assert "rss " in rules["apache2"]["health_detail"]  # the memory limit was measured too
        assert rules["sshd"]["health"] == "unknown" and rules["sshd"]["restarts"] == 0
    finally:
        box.close()
