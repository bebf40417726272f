"""The control socket and watchdogctl, against watchdogs running real services."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from helpers import CheckCounts, Watchdog, pids, program, service, wait_for
from namespace import Container, needs_namespace

Start = Callable[..., Watchdog]


def ctl(sock: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "watchdog.ctl", "--socket", str(sock), *args],
                          capture_output=True, text=True, timeout=timeout)


def socket_of(wd: Watchdog) -> Path:
    """The helper gives each watchdog a status file of its own: the socket is beside it."""
    return wd.log_path.parent / "control.sock"


def raw(sock: Path, data: bytes, timeout: float = 30) -> bytes:
    """Send ``data`` as it is and read the whole answer."""
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(timeout)
        client.connect(str(sock))
        try:
            client.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # it answered and closed before taking all of an oversized request
        answer = b""
        try:
            while chunk := client.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    return answer


def status_code(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def body(answer: bytes) -> dict:
    return json.loads(answer.partition(b"\r\n\r\n")[2])


def recorded(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


@pytest.fixture
def running(tmp_path: Path, watchdog: Start) -> Iterator[tuple[Watchdog, Path, Path]]:
    """A watchdog keeping one service alive that records the signals it gets."""
    record = tmp_path / "record"
    exe = service(tmp_path, "wd-ctl-svc", "--record", str(record))
    counts = CheckCounts(tmp_path)  # a test may wait for checks to pass
    wd = watchdog(str(exe), "--interval", "0.5", "--grace", "2", *counts.args, env=counts.env())
    wd.wait_log("wd-ctl-svc: running")
    sock = wait_for(lambda: socket_of(wd).exists() and socket_of(wd), what="the control socket")
    yield wd, sock, record


def test_status_is_the_same_table_and_exit_codes_as_watchdog_status(
    running: tuple[Watchdog, Path, Path], tmp_path: Path
) -> None:
    wd, sock, _ = running
    [pid] = pids("wd-ctl-svc")
    shown = ctl(sock, "status")
    assert shown.returncode == 0, shown.stderr
    table = shown.stdout.splitlines()
    assert table[0].split() == ["NAME", "STATE", "PIDS", "MATCHER", "RESTARTS", "LAST", "EXIT", "SINCE",
                                "HEALTH", "LAST", "CHECK", "READY"]
    assert table[1].split()[:4] == ["wd-ctl-svc", "running", str(pid), "basename"]
    as_json = json.loads(ctl(sock, "status", "--json", "wd-ctl-svc").stdout)
    assert as_json["pid"] == wd.pid and as_json["rules"][0]["pids"] == [pid]
    unknown = ctl(sock, "status", "wd-nothing")
    assert unknown.returncode == 4 and "no rule is named 'wd-nothing'" in unknown.stderr
    status_file = wd.log_path.with_suffix(".status")
    old = subprocess.run([sys.executable, "-m", "watchdog", "--status", "--status-file", str(status_file)],
                         capture_output=True, text=True)
    assert old.returncode == 0 and old.stdout.splitlines()[1].split()[:3] == table[1].split()[:3]


def test_stop_keeps_a_rule_down_until_start(running: tuple[Watchdog, Path, Path], tmp_path: Path) -> None:
    wd, sock, record = running
    [pid] = pids("wd-ctl-svc")
    stopped = ctl(sock, "stop", "wd-ctl-svc", "--wait", "30")
    assert stopped.returncode == 0, stopped.stderr
    assert "wd-ctl-svc: stopping" in stopped.stdout
    assert not psutil.pid_exists(pid) and f"{pid} SIGTERM" in record.read_text()
    CheckCounts(tmp_path).wait(3)  # respawn leaves a stopped rule alone through them
    assert ctl(sock, "status").returncode == 1
    assert "stopped" in ctl(sock, "status").stdout and not pids("wd-ctl-svc")
    assert ctl(sock, "stop", "wd-ctl-svc").stdout.strip() == "wd-ctl-svc: already stopped"
    started = ctl(sock, "start", "wd-ctl-svc", "--wait", "30")
    assert started.returncode == 0, started.stderr
    assert "wd-ctl-svc: started (pid" in started.stdout and pids("wd-ctl-svc")
    assert ctl(sock, "start", "wd-ctl-svc").stdout.strip() == "wd-ctl-svc: already running"


def test_restart_leaves_one_copy_never_two(tmp_path: Path, watchdog: Start) -> None:
    exe = service(tmp_path, "wd-ctl-slow", "--ignore-term")  # holds on until the SIGKILL at the grace
    wd = watchdog(str(exe), "--grace", "1")
    [old] = wait_for(lambda: pids("wd-ctl-slow"), what="the service")
    sock = wait_for(lambda: socket_of(wd).exists() and socket_of(wd), what="the control socket")
    seen: list[set[int]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            seen.append(pids("wd-ctl-slow"))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        restarted = ctl(sock, "restart", "wd-ctl-slow", "--wait", "30")
    finally:
        done.set()
        sampler.join()
    assert restarted.returncode == 0, restarted.stderr
    [new] = pids("wd-ctl-slow")
    assert new != old and not psutil.pid_exists(old)
    assert all(len(found) <= 1 for found in seen), [s for s in seen if len(s) > 1][:3]
    assert "still running after the grace, sending SIGKILL" in wd.log()


def test_signal_reaches_the_rule_and_bad_names_are_usage_errors(
    running: tuple[Watchdog, Path, Path]
) -> None:
    _, sock, record = running
    [pid] = pids("wd-ctl-svc")
    sent = ctl(sock, "signal", "wd-ctl-svc", "USR1")
    assert sent.returncode == 0 and sent.stdout.strip() == "wd-ctl-svc: sent SIGUSR1 to 1 process"
    wait_for(lambda: f"{pid} SIGUSR1" in record.read_text(), what="SIGUSR1 recorded")
    bad = ctl(sock, "signal", "wd-ctl-svc", "SIGNOPE")
    assert bad.returncode == 2 and "'SIGNOPE' is not a signal" in bad.stderr
    assert ctl(sock, "signal", "wd-none", "HUP").returncode == 4
    assert pids("wd-ctl-svc") == {pid}


def follow_events(sock: Path) -> subprocess.Popen[str]:
    """``watchdogctl events`` in the background, for SIGINT (Ctrl-C) to end. Its default
    action is restored: a test run started in the background inherits SIGINT ignored."""
    return subprocess.Popen([sys.executable, "-m", "watchdog.ctl", "--socket", str(sock), "events"],
                            stdout=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def test_events_stream_state_changes_as_json_lines(running: tuple[Watchdog, Path, Path]) -> None:
    _, sock, _ = running
    follower = follow_events(sock)
    try:
        assert follower.stdout is not None
        first = json.loads(follower.stdout.readline())
        assert first["event"] == "current" and first["state"] == "running" and first["ready"]
        [pid] = pids("wd-ctl-svc")
        os.kill(pid, signal.SIGKILL)
        states = []
        exits = []
        while "running" not in states:
            line = json.loads(follower.stdout.readline())
            if line["event"] == "exited":  # the service's end, with its last lines
                exits.append(line)
                continue
            assert line["rule"] == "wd-ctl-svc" and line["event"] == "changed"
            states.append(line["state"])
        assert states[0] in ("missing", "starting") and states[-1] == "running"
        assert [(e["rule"], e["pid"], e["status"]) for e in exits] == [("wd-ctl-svc", pid, -9)]
    finally:
        follower.send_signal(signal.SIGINT)
        assert follower.wait(10) == 0


def test_wait_returns_at_the_state_or_fails_at_the_timeout(running: tuple[Watchdog, Path, Path]) -> None:
    _, sock, _ = running
    assert ctl(sock, "wait", "wd-ctl-svc").returncode == 0
    late = ctl(sock, "wait", "wd-ctl-svc", "--state", "stopped", "--timeout", "0.5")
    assert late.returncode == 1 and "timed out after 0.5s waiting for stopped: wd-ctl-svc is running" \
        in late.stderr
    assert ctl(sock, "wait", "wd-nothing").returncode == 4


def test_no_watchdog_running_is_exit_3(tmp_path: Path) -> None:
    gone = ctl(tmp_path / "control.sock", "status")
    assert gone.returncode == 3 and gone.stderr.startswith("watchdogctl: no watchdog is running")
    left = socket.socket(socket.AF_UNIX)  # a socket file no one listens on any more
    left.bind(str(tmp_path / "stale.sock"))
    left.close()
    assert ctl(tmp_path / "stale.sock", "restart", "x").returncode == 3


def write_config(path: Path, rules: dict[str, str]) -> None:
    path.write_text("".join(f'[rules.{name}]\ncommand = "{command}"\n' for name, command in rules.items()))


def test_reload_starts_new_stops_gone_restarts_changed_and_leaves_the_rest(
    tmp_path: Path, watchdog: Start
) -> None:
    config = tmp_path / "watchdog.toml"
    hup = tmp_path / "hup"
    svc = {name: service(tmp_path, name) for name in ("wd-keep", "wd-change", "wd-gone", "wd-new")}
    keep = f"{svc['wd-keep']} --record {hup}"
    write_config(config, {"wd-keep": keep, "wd-change": str(svc["wd-change"]),
                          "wd-gone": str(svc["wd-gone"])})
    wd = watchdog("--config", str(config), "--interval", "60", "--grace", "2")
    for name in ("wd-keep", "wd-change", "wd-gone"):
        wait_for(lambda name=name: pids(name), what=name)
    sock = wait_for(lambda: socket_of(wd).exists() and socket_of(wd), what="the control socket")
    before = {name: pids(name) for name in ("wd-keep", "wd-change", "wd-gone")}

    config.write_text(config.read_text() + "[rules.wd-broken]\ncommand = 42\n")
    refused = ctl(sock, "reload")
    assert refused.returncode == 6 and "rules.wd-broken.command: every rule needs a command" in refused.stderr
    assert {name: pids(name) for name in before} == before  # nothing changed

    write_config(config, {"wd-keep": keep, "wd-change": f"{svc['wd-change']} --exit-code 3",
                          "wd-new": str(svc["wd-new"])})
    reloaded = ctl(sock, "reload")
    assert reloaded.returncode == 0, reloaded.stderr
    assert reloaded.stdout.splitlines() == ["added: wd-new", "removed: wd-gone", "changed: wd-change",
                                            "unchanged: wd-keep"]
    wait_for(lambda: not pids("wd-gone"), what="wd-gone stopped")
    new_change = wait_for(lambda: pids("wd-change") - before["wd-change"], what="wd-change restarted")
    wait_for(lambda: pids("wd-new"), what="wd-new started")
    assert pids("wd-keep") == before["wd-keep"]  # the same process, untouched
    assert len(new_change) == 1 and not pids("wd-change") & before["wd-change"]
    assert ctl(sock, "wait", "wd-keep", "wd-change", "wd-new").returncode == 0
    shown = json.loads(ctl(sock, "status", "--json").stdout)
    assert sorted(rule["name"] for rule in shown["rules"]) == ["wd-change", "wd-keep", "wd-new"]

    # SIGHUP is still the services': it is forwarded, and reloads nothing.
    os.kill(wd.pid, signal.SIGHUP)
    wait_for(lambda: "SIGHUP" in recorded(hup), what="SIGHUP forwarded to wd-keep")
    assert wd.log().count("reloaded:") == 1


def test_a_changed_rule_runs_again_only_once_the_old_one_is_gone(tmp_path: Path, watchdog: Start) -> None:
    config = tmp_path / "watchdog.toml"
    exe = service(tmp_path, "wd-stubborn", "--ignore-term")  # goes only at the SIGKILL after the grace
    write_config(config, {"wd-stubborn": str(exe)})
    wd = watchdog("--config", str(config), "--grace", "1")
    [old] = wait_for(lambda: pids("wd-stubborn"), what="the service")
    sock = wait_for(lambda: socket_of(wd).exists() and socket_of(wd), what="the control socket")
    write_config(config, {"wd-stubborn": f"{exe} --exit-code 1"})
    seen: list[set[int]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            seen.append(pids("wd-stubborn"))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        assert ctl(sock, "reload").stdout.strip() == "changed: wd-stubborn"
        [new] = wait_for(lambda: pids("wd-stubborn") - {old}, 30, "the changed rule's new process")
    finally:
        done.set()
        sampler.join()
    assert not psutil.pid_exists(old)
    assert all(len(found) <= 1 for found in seen), [s for s in seen if len(s) > 1][:3]
    log = wd.log()
    assert log.index("sending SIGKILL") < log.index("removed (changed by reload)") < log.index("added")


def test_reload_drops_a_stopped_rule_at_once_and_events_tell_of_it(tmp_path: Path, watchdog: Start) -> None:
    config = tmp_path / "watchdog.toml"
    first, second, third = (program(tmp_path, name) for name in ("wd-first", "wd-second", "wd-third"))
    write_config(config, {"wd-first": f"{first} 1000", "wd-second": f"{second} 1000"})
    wd = watchdog("--config", str(config))
    wait_for(lambda: pids("wd-first") and pids("wd-second"), what="both services")
    sock = wait_for(lambda: socket_of(wd).exists() and socket_of(wd), what="the control socket")
    assert ctl(sock, "stop", "wd-second", "--wait", "30").returncode == 0
    follower = follow_events(sock)
    try:
        assert follower.stdout is not None
        current = [json.loads(follower.stdout.readline()) for _ in range(2)]
        assert {(e["rule"], e["state"]) for e in current} == {("wd-first", "running"),
                                                              ("wd-second", "stopped")}
        write_config(config, {"wd-first": f"{first} 1000", "wd-third": f"{third} 1000"})
        assert ctl(sock, "reload").stdout.splitlines() == ["added: wd-third", "removed: wd-second",
                                                           "unchanged: wd-first"]
        told = [json.loads(follower.stdout.readline()) for _ in range(2)]
        assert [(e["event"], e["rule"]) for e in told] == [("removed", "wd-second"), ("added", "wd-third")]
        assert told[0]["previous"] == "stopped"
    finally:
        follower.send_signal(signal.SIGINT)
        follower.wait(10)
    wait_for(lambda: ctl(sock, "wait", "wd-third").returncode == 0, what="wd-third ready")
    assert "wd-second: removed (removed by reload)" in wd.log()


def test_reload_applies_a_changed_per_rule_flag_and_reports_options_it_cannot(
    tmp_path: Path, watchdog: Start
) -> None:
    config = tmp_path / "watchdog.toml"
    exe = program(tmp_path, "wd-flagged")
    config.write_text(f'interval = 60\n[rules.wd-flagged]\ncommand = "{exe} 1000"\n')
    wd = watchdog("--config", str(config))
    [old] = wait_for(lambda: pids("wd-flagged"), what="the service")
    sock = wait_for(lambda: socket_of(wd).exists() and socket_of(wd), what="the control socket")
    config.write_text(f'interval = 30\n[rules.wd-flagged]\ncommand = "{exe} 1000"\nstop-signal = "INT"\n')
    reloaded = ctl(sock, "reload")
    assert reloaded.returncode == 0, reloaded.stderr
    assert "changed: wd-flagged" in reloaded.stdout
    assert "not applied until the watchdog restarts: interval" in reloaded.stderr
    wait_for(lambda: pids("wd-flagged") - {old}, what="a new wd-flagged")
    assert not psutil.pid_exists(old)


def test_a_client_of_another_user_is_refused(tmp_path: Path, watchdog: Start) -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run a client as another user (CI runs as root)")
    nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    if subprocess.run([*nobody, sys.executable, "-c", "import watchdog.ctl"]).returncode != 0:
        pytest.skip("user nobody cannot run this Python and import watchdog")
    # A directory every user may pass through, so that the socket's own mode is what counts.
    public = Path(tempfile.mkdtemp(prefix="wd-ctl-"))
    try:
        public.chmod(0o755)
        sock = public / "control.sock"
        exe = program(tmp_path, "wd-guarded")
        wd = watchdog(f"{exe} 1000", "--control-socket", str(sock))
        [pid] = wait_for(lambda: pids("wd-guarded"), what="the service")
        wait_for(sock.exists, what="the control socket")
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        as_nobody = [*nobody, sys.executable, "-m", "watchdog.ctl", "--socket", str(sock)]
        denied = subprocess.run([*as_nobody, "stop", "wd-guarded"], capture_output=True, text=True)
        assert denied.returncode == 5 and "permission denied" in denied.stderr
        # Even a socket someone made world-writable refuses others, by their credentials.
        sock.chmod(0o666)
        refused = subprocess.run([*as_nobody, "stop", "wd-guarded"], capture_output=True, text=True)
        assert refused.returncode == 5, refused.stderr
        assert "refused: uid 65534 may not control this watchdog" in refused.stderr
        wd.wait_log("control: refused a client of uid 65534")
        assert pids("wd-guarded") == {pid}
        assert ctl(sock, "status").returncode == 0  # root still may
    finally:
        shutil.rmtree(public, ignore_errors=True)


def test_malformed_oversized_and_half_sent_requests_leave_it_serving(
    running: tuple[Watchdog, Path, Path]
) -> None:
    wd, sock, _ = running
    assert status_code(raw(sock, b"hello\r\n\r\n")) == 400
    assert status_code(raw(sock, b"GET /v1/status HTTP/1.1\r\nno colon\r\n\r\n")) == 400
    assert status_code(raw(sock, b"GET /v1/nothing HTTP/1.1\r\n\r\n")) == 404
    assert status_code(raw(sock, b"DELETE /v1/status HTTP/1.1\r\n\r\n")) == 405
    assert status_code(raw(sock, b"POST /v1/stop HTTP/1.1\r\nContent-Length: 5\r\n\r\n{nope")) == 400
    huge = b"GET /v1/status HTTP/1.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"
    assert status_code(raw(sock, huge)) in (413, 431)  # too long, whether the headers end or not
    big_body = b"POST /v1/stop HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n"
    assert status_code(raw(sock, big_body)) == 413

    half = socket.socket(socket.AF_UNIX)
    half.connect(str(sock))
    half.sendall(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n")  # and nothing more
    [pid] = pids("wd-ctl-svc")
    os.kill(pid, signal.SIGKILL)  # a death while a client hangs is answered as ever
    wait_for(lambda: pids("wd-ctl-svc") - {pid}, what="the service restarted")
    assert ctl(sock, "status").returncode == 0
    half.settimeout(30)
    late = half.recv(65536)  # at its deadline the half-sent request gets its answer
    half.close()
    assert status_code(late) == 408
    assert ctl(sock, "status").returncode == 0 and wd.proc.poll() is None


def test_many_clients_at_once_and_more_than_it_takes(running: tuple[Watchdog, Path, Path]) -> None:
    wd, sock, _ = running
    idle = []
    for _ in range(70):  # more connections than it serves at once, all silent
        client = socket.socket(socket.AF_UNIX)
        client.connect(str(sock))
        idle.append(client)
    busy = []
    for client in idle[-6:]:
        client.settimeout(10)
        busy.append(client.recv(65536))
    assert any(answer and status_code(answer) == 503 for answer in busy)
    [pid] = pids("wd-ctl-svc")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: pids("wd-ctl-svc") - {pid}, what="the service restarted meanwhile")
    for client in idle:
        client.close()

    results: list[int] = []
    lock = threading.Lock()

    def ask() -> None:
        answer = raw(sock, b"GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n")
        with lock:
            results.append(status_code(answer))

    threads = [threading.Thread(target=ask) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 40 and set(results) <= {200, 503} and results.count(200) >= 30
    assert wait_for(lambda: ctl(sock, "status").returncode == 0, what="status after the crowd")


def test_curl_speaks_to_it(running: tuple[Watchdog, Path, Path]) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed (.ci/run installs it)")
    _, sock, _ = running
    shown = subprocess.run(["curl", "-sf", "--unix-socket", str(sock), "http://watchdog/v1/status"],
                           capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0 and json.loads(shown.stdout)["rules"][0]["state"] == "running"
    [pid] = pids("wd-ctl-svc")
    restarted = subprocess.run(["curl", "-sf", "--unix-socket", str(sock), "-X", "POST", "-d",
                                '{"rules": ["wd-ctl-svc"]}', "http://watchdog/v1/restart"],
                               capture_output=True, text=True, timeout=30)
    assert json.loads(restarted.stdout)["results"][0]["result"] == "restarting"
    wait_for(lambda: pids("wd-ctl-svc") - {pid}, what="restarted through curl")


def test_the_control_socket_can_be_turned_off(tmp_path: Path, watchdog: Start) -> None:
    exe = program(tmp_path, "wd-unctl")
    wd = watchdog(f"{exe} 1000", "--no-control-socket")
    wd.wait_log("wd-unctl: running")
    assert not socket_of(wd).exists() and "control socket" not in wd.log()


@needs_namespace
def test_as_pid_1_restart_stop_and_start_a_daemon_leave_no_zombie(tmp_path: Path) -> None:
    sock = tmp_path / "control.sock"
    daemon = service(tmp_path, "wd-ctl-daemon", "--daemon")
    box = Container([str(daemon), "--control-socket", str(sock), "--grace", "2"], tmp_path)
    try:
        box.wait_log("wd-ctl-daemon: running")
        [old] = box.named("wd-ctl-daemon")

        def inside(*args: str) -> subprocess.CompletedProcess[str]:
            return box.run(sys.executable, "-m", "watchdog.ctl", "--socket", str(sock), *args)

        restarted = inside("restart", "wd-ctl-daemon", "--wait", "30")
        assert restarted.returncode == 0, restarted.stderr
        [new] = box.named("wd-ctl-daemon")
        assert new.pid != old.pid and not box.zombies()
        assert inside("stop", "wd-ctl-daemon", "--wait", "30").returncode == 0
        assert not box.named("wd-ctl-daemon") and not box.zombies()
        assert inside("status").returncode == 1
        assert inside("start", "wd-ctl-daemon", "--wait", "30").returncode == 0
        assert len(box.named("wd-ctl-daemon")) == 1
        box.signal(signal.SIGTERM)
        assert box.wait() == 0
        assert not sock.exists()  # removed at exit
    finally:
        box.close()


def test_every_watchdogctl_command_and_endpoint_is_in_the_reference() -> None:
    from watchdog.ctl import cli

    readme = (Path(__file__).parent.parent / "plugins" / "control-socket.md").read_text()
    missing = [name for name in cli.commands if f"`watchdogctl {name}" not in readme]
    assert missing == []
    for endpoint in ("GET /v1/status", "POST /v1/start", "POST /v1/stop", "POST /v1/restart",
                     "POST /v1/signal", "POST /v1/reload", "GET /v1/events"):
        assert f"`{endpoint}" in readme
