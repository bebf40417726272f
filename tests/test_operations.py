"""Operating it like other tools: status for health checks, JSON logs, env vars, plugin list."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from helpers import Watchdog, pids, program, wait_for

Start = Callable[..., Watchdog]


def status(tmp_path: Path, status_file: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "watchdog", "--status", "--status-file",
                           str(status_file), *extra], cwd=tmp_path, capture_output=True, text=True)


def test_status_exits_0_when_every_rule_runs_and_shows_a_table(tmp_path: Path, watchdog: Start) -> None:
    status_file = tmp_path / "status.json"
    exe = program(tmp_path, "wd-healthy")
    wd = watchdog(f"{exe} 1000", "--status-file", str(status_file))
    wd.wait_log("wd-healthy: running")
    wait_for(lambda: status(tmp_path, status_file).returncode == 0, what="status 0")
    shown = status(tmp_path, status_file).stdout.splitlines()
    assert shown[0].split() == ["NAME", "STATE", "PIDS", "MATCHER", "RESTARTS", "LAST", "EXIT", "SINCE",
                                "HEALTH", "LAST", "CHECK", "READY"]
    assert shown[1].split()[:5] == ["wd-healthy", "running", str(min(pids("wd-healthy"))),
                                    "basename", "0"]


def test_status_json_carries_restarts_and_the_last_exit(tmp_path: Path, watchdog: Start) -> None:
    status_file = tmp_path / "status.json"
    exe = program(tmp_path, "wd-counted")
    watchdog(f"{exe} 1000", "--status-file", str(status_file), "--interval", "60")
    [first] = wait_for(lambda: pids("wd-counted"))
    os.kill(first, signal.SIGKILL)

    def restarted() -> dict | None:
        run = status(tmp_path, status_file, "--json")
        content = json.loads(run.stdout) if run.returncode == 0 else None
        return content if content and content["rules"][0]["restarts"] == 1 else None

    content = wait_for(restarted, what="restarts 1 in the status")
    [rule] = content["rules"]
    assert rule["name"] == "wd-counted" and rule["state"] == "running"
    assert rule["last_exit"] == -9 and rule["matcher"] == "basename"
    assert rule["pids"] and first not in rule["pids"]
    assert oct(status_file.stat().st_mode & 0o777) == "0o644"


def test_status_exits_1_when_a_rule_is_not_running(tmp_path: Path, watchdog: Start) -> None:
    status_file = tmp_path / "status.json"
    quits = program(tmp_path, "wd-gone", "/bin/false")
    watchdog(str(quits), "--status-file", str(status_file), "--max-restarts", "1")
    wait_for(lambda: status(tmp_path, status_file).returncode == 1, what="status 1")
    assert "gave up" in status(tmp_path, status_file).stdout


def test_status_exits_3_when_no_watchdog_runs(tmp_path: Path) -> None:
    status_file = tmp_path / "status.json"
    assert status(tmp_path, status_file).returncode == 3  # no file
    status_file.write_text(json.dumps({"pid": os.getpid(), "started": time.time(), "rules": []}))
    assert status(tmp_path, status_file).returncode == 3  # a live pid, but not a watchdog
    dead = subprocess.Popen(["true"])
    dead.wait()
    status_file.write_text(json.dumps({"pid": dead.pid, "started": time.time(), "rules": []}))
    assert status(tmp_path, status_file).returncode == 3  # a dead pid
    status_file.write_text("{not json")
    run = status(tmp_path, status_file)
    assert run.returncode == 3 and "no watchdog is running" in run.stderr


def test_status_file_is_written_only_when_something_changes_and_removed_at_exit(
    tmp_path: Path, watchdog: Start
) -> None:
    status_file = tmp_path / "status.json"
    exe = program(tmp_path, "wd-still")
    wd = watchdog(f"{exe} 1000", "--status-file", str(status_file), "--interval", "0.05")
    wait_for(lambda: status(tmp_path, status_file).returncode == 0, what="status 0")
    written = status_file.stat().st_mtime_ns, status_file.stat().st_ino
    time.sleep(0.6)  # about a dozen checks with nothing changed
    assert (status_file.stat().st_mtime_ns, status_file.stat().st_ino) == written
    assert wd.stop() == 0
    assert not status_file.exists()


def test_a_second_watchdog_does_not_take_over_the_status_file(tmp_path: Path, watchdog: Start) -> None:
    status_file = tmp_path / "status.json"
    first = watchdog(f"{program(tmp_path, 'wd-first')} 1000", "--status-file", str(status_file))
    wait_for(lambda: status(tmp_path, status_file).returncode == 0, what="status 0")
    second = watchdog(f"{program(tmp_path, 'wd-second')} 1000", "--status-file", str(status_file))
    second.wait_log(f"belongs to the watchdog with pid {first.pid}")
    content = json.loads(status(tmp_path, status_file, "--json").stdout)
    assert content["pid"] == first.pid


def test_json_log_lines_carry_rule_event_pid_and_status(tmp_path: Path, watchdog: Start) -> None:
    exe = program(tmp_path, "wd-json")
    wd = watchdog(f"{exe} 1000", "--log-format", "json", "--interval", "60")
    [first] = wait_for(lambda: pids("wd-json"))
    os.kill(first, signal.SIGKILL)
    wd.wait_log('"status": -9')
    entries = [json.loads(line) for line in wd.log().splitlines()]
    assert {"timestamp", "level", "rule", "event", "pid", "status", "message"} <= set(entries[0])
    exited = [e for e in entries if e["event"] == "exited"]
    assert exited[0]["rule"] == "wd-json" and exited[0]["pid"] == first


def test_quiet_hides_events_and_verbose_is_accepted(tmp_path: Path, watchdog: Start) -> None:
    exe = program(tmp_path, "wd-quiet")
    wd = watchdog(f"{exe} 1000", "-q")
    wait_for(lambda: pids("wd-quiet"))
    assert wd.stop() == 0
    assert "started" not in wd.log() and "running" not in wd.log()


def test_every_option_can_come_from_the_environment(tmp_path: Path, watchdog: Start) -> None:
    exe = program(tmp_path, "wd-env")
    wd = watchdog(f"{exe} 1000", env={"WATCHDOG_LOG_FORMAT": "json", "WATCHDOG_GRACE": "3",
                                       "WATCHDOG_STOP_SIGNAL": "wd-env=INT"})
    wd.wait_log('"event": "found"')
    assert wd.stop() == 0
    assert '"message": "stopping every service (SIGTERM), grace 3.0s"' in wd.log()
    assert '"status": -2' in wd.log()  # SIGINT, the rule's stop signal from the environment
    bad = subprocess.run([sys.executable, "-m", "watchdog", "sleep 1"], cwd=tmp_path, text=True,
                         capture_output=True, env={**os.environ, "WATCHDOG_INTERVAL": "soon"})
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "Invalid value for '--interval'" in bad.stderr


def test_help_names_the_environment_variables(tmp_path: Path) -> None:
    helped = subprocess.run([sys.executable, "-m", "watchdog", "--help"], cwd=tmp_path,
                            capture_output=True, text=True).stdout
    for variable in ("WATCHDOG_INTERVAL", "WATCHDOG_GRACE", "WATCHDOG_REGEX", "WATCHDOG_STATUS_FILE"):
        assert variable in helped


def test_list_plugins_shows_origin_hooks_and_disabled(tmp_path: Path) -> None:
    (tmp_path / "wd_extra.py").write_text(
        "from watchdog import hookimpl\n\n@hookimpl\ndef watchdog_started(engine):\n    pass\n"
    )
    listed = subprocess.run(
        [sys.executable, "-m", "watchdog", "--list-plugins", "-p", "wd_extra", "--disable", "log"],
        cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert any(line.startswith("basename  (built-in)") and "watchdog_matchers" in line for line in lines)
    assert "wd_extra  (-p)  watchdog_started" in lines
    assert "log  (disabled)" in lines


def writer(tmp_path: Path, name: str, lines: int) -> Path:
    """A service that writes ``lines`` numbered lines fast, then one without a newline."""
    path = tmp_path / name
    path.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        f"out = sys.stdout\n"
        f"for i in range({lines}):\n"
        f"    out.write('{name} line %d ' % i + 'x' * (i % 300) + '\\n')\n"
        f"out.write('{name} unterminated')\n"
        "out.flush()\n"
        "sys.stderr.write('to stderr\\n')\n"
        "import time; time.sleep(1000)\n"
    )
    path.chmod(0o755)
    return path


def test_prefix_relays_whole_lines_from_fast_writers_and_loses_nothing(
    tmp_path: Path, watchdog: Start
) -> None:
    count = 20000
    wd = watchdog(str(writer(tmp_path, "wd-fast-a", count)), str(writer(tmp_path, "wd-fast-b", count)),
                  "--prefix", "-q")
    wait_for(lambda: wd.log().count("to stderr") == 2, 20, "both writers done")
    assert wd.stop() == 0
    lines = wd.log().splitlines()
    for name in ("wd-fast-a", "wd-fast-b"):
        mine = [line for line in lines if line.startswith(f"{name} | ")]
        body = [line.removeprefix(f"{name} | ") for line in mine]
        numbered = [b for b in body if b.startswith(f"{name} line ")]
        assert len(numbered) == count
        for i, text in enumerate(numbered):  # in order, each whole
            assert text == f"{name} line {i} " + "x" * (i % 300)
        assert f"{name} unterminated" in body  # flushed at the stop
        assert "to stderr" in body
    assert all(" | " in line for line in lines)  # no line without a prefix: nothing mixed
