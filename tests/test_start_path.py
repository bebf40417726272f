"""What a start loads before its first service starts: the guard of start-up's cost.

Start-up to the services running is measured by ``tests/benchmarks/bench.py``
(never asserted here). What it must not come back to is guarded here: a plain
run (no plugin flags) must not, before its first ``posix_spawn``, create
dataclasses (CPython compiles each one's methods at import), load a feature's
implementation that no flag asked for, or load what only comes after the first
start: the control socket's server, sockets and JSON.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from helpers import wait_for

# None of these is loaded before the first service starts, in a run without plugin flags.
NOT_BEFORE_THE_FIRST_START = {
    # costly to create or import, and needed by no plain start
    "dataclasses", "subprocess", "tempfile", "locale", "shlex", "queue", "grp",
    # served or written once the first check has started the services
    "socket", "json", "watchdog.unixhttp", "watchdog.controlserver", "watchdog.feed",
    "watchdog.logstream", "watchdog.reload",
    # features no flag asked for
    "watchdog.probeserver", "watchdog.sdnotify", "watchdog.plugins.schedule",
    "watchdog.plugins.cmdcheck", "watchdog.plugins.httpcheck", "watchdog.plugins.tcpcheck",
    "watchdog.launched", "watchdog.printconfig", "psutil",
}

# Runs the watchdog's program with posix_spawnp wrapped: at the first call, the names of every
# module loaded so far go to MODULES_OUT; the start then goes on unchanged.
RECORDER = textwrap.dedent("""
    import os, sys
    spawn = os.posix_spawnp

    def first_spawn(*args, **kwargs):
        os.posix_spawnp = spawn
        with open(os.environ["MODULES_OUT"], "w") as out:
            out.write("\\n".join(sorted(sys.modules)))
        return spawn(*args, **kwargs)

    os.posix_spawnp = first_spawn
    from watchdog.execprobe import watchdog_main
    watchdog_main()
""")


def test_a_plain_start_loads_only_what_its_first_start_needs(tmp_path: Path) -> None:
    program = tmp_path / f"wd-lean-{os.getpid()}"
    program.write_bytes(Path("/bin/sleep").read_bytes())
    program.chmod(0o755)
    modules_out = tmp_path / "modules"
    status_file = tmp_path / "status.json"
    log = open(tmp_path / "watchdog.log", "w")
    watchdog = subprocess.Popen(
        [sys.executable, "-c", RECORDER, "--status-file", str(status_file), f"{program} 600"],
        env={**os.environ, "MODULES_OUT": str(modules_out)}, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(lambda: modules_out.exists() and modules_out.read_text(), what="the first start")
        loaded = set(modules_out.read_text().split())
        assert "watchdog.engine" in loaded  # the record is of a real run's first start
        assert not loaded & NOT_BEFORE_THE_FIRST_START, sorted(loaded & NOT_BEFORE_THE_FIRST_START)
        # What was left for later is there once the services run: the status file, the socket.
        socket_path = tmp_path / "control.sock"
        wait_for(lambda: socket_path.exists() and status_file.exists(), what="the socket and status file")
        done = subprocess.run([sys.executable, "-m", "watchdog.ctl", "--socket", str(socket_path),
                               "status", "--json"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done
        assert [rule["name"] for rule in json.loads(done.stdout)["rules"]] == [program.name]
    finally:
        os.killpg(watchdog.pid, signal.SIGTERM)
        watchdog.wait(timeout=30)
        log.close()
