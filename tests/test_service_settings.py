"""A rule's user, environment, directory, umask, limits and own grace, read back from /proc.

Real programs: Debian's redis-server as ``redis``, gunicorn serving a WSGI app as
``www-data`` from an app directory, and stand-in services that ignore SIGTERM.
"""

from __future__ import annotations

import http.client
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from helpers import Watchdog, pids, program, service, wait_for

from watchdog import launch, logoptions
from watchdog.config import Config
from watchdog.envfile import EnvFileError, parse_env
from watchdog.reload import same
from watchdog.rules import Rule, make_rules

Start = Callable[..., Watchdog]

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root (CI runs as root)")


@pytest.fixture
def public() -> Iterator[Path]:
    """A directory other users can reach (pytest's tmp_path is root's alone); emptied afterwards,
    with every process started from it."""
    path = Path(tempfile.mkdtemp(prefix="wd-svc-"))
    path.chmod(0o755)
    yield path
    for proc in psutil.process_iter(["exe", "cmdline"]):
        if str(path) in (proc.info["exe"] or "") or str(path) in " ".join(proc.info["cmdline"] or []):
            try:
                proc.kill()
            except psutil.Error:
                pass
    shutil.rmtree(path, ignore_errors=True)


def unique(prefix: str) -> str:
    """A process name no other test or run uses (comm keeps 15 characters)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def facts(pid: int) -> dict[str, object]:
    """What the kernel says a process runs as and with: /proc/PID/status, environ, cwd, limits."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    environ = dict(item.split("=", 1) for item in
                   Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0") if "=" in item)
    limits = {}
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines()[1:]:
        words = line[26:].split()
        limits[line[:26].strip()] = (words[0], words[1])
    return {
        "uid": int(status["Uid"].split()[0]), "euid": int(status["Uid"].split()[1]),
        "gid": int(status["Gid"].split()[0]), "egid": int(status["Gid"].split()[1]),
        "groups": sorted(int(g) for g in status["Groups"].split()),
        "umask": status["Umask"].strip(), "environ": environ, "cwd": os.readlink(f"/proc/{pid}/cwd"),
        "limits": limits,
    }


def rule_status(wd: Watchdog, name: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-m", "watchdog", "--status", "--json"], capture_output=True,
                          text=True, env={**os.environ, "WATCHDOG_STATUS_FILE": str(wd.log_path.with_suffix(
                              ".status"))})
    return next(rule for rule in json.loads(done.stdout)["rules"] if rule["name"] == name)


def ctl(sock: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "watchdog.ctl", "--socket", str(sock), *args],
                          capture_output=True, text=True, timeout=60)


def get(sock_path: Path, path: str = "/") -> str:
    """An HTTP GET over a unix socket, as a proxy in front of gunicorn would send it."""
    class UnixHTTP(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(10)
            self.sock.connect(str(sock_path))

    connection = UnixHTTP("localhost")
    try:
        connection.request("GET", path)
        return connection.getresponse().read().decode()
    finally:
        connection.close()


def answers(sock_path: Path, path: str = "/") -> str:
    try:
        return get(sock_path, path)
    except OSError:
        return ""


# --- Docker's env-file format ------------------------------------------------------------------

def test_env_files_are_read_as_docker_reads_them() -> None:
    text = ('# comment\n\n  LEADING=spaces go\nQUOTED="kept"\nEMPTY=\nSPACES=a b  \nEQ=a=b\r\n'
            'PASSED\nUNSET_HERE\n\tTAB=1\n')
    assert parse_env("f.env", text, {"PASSED": "from the watchdog"}) == {
        "LEADING": "spaces go", "QUOTED": '"kept"', "EMPTY": "", "SPACES": "a b  ", "EQ": "a=b",
        "PASSED": "from the watchdog", "TAB": "1",
    }
    with pytest.raises(EnvFileError, match=r"^f.env:2: variable name 'A B' contains white space$"):
        parse_env("f.env", "OK=1\nA B=2\n", {})
    with pytest.raises(EnvFileError, match=r"^f.env:1: no variable name before '='$"):
        parse_env("f.env", "=value\n", {})


# --- redis-server as redis -------------------------------------------------------------------

@needs_root
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="Debian's redis-server is not installed")
def test_redis_runs_as_redis_with_its_directory_umask_environment_and_limits(
        watchdog: Start, public: Path, tmp_path: Path) -> None:
    user = pwd.getpwnam("redis")
    data = public / "redis"
    data.mkdir()
    os.chown(data, user.pw_uid, user.pw_gid)
    name = unique("wdr")
    server = program(public, name, shutil.which("redis-server") or "")
    sock = data / "redis.sock"
    command = (f"{server} --port 0 --unixsocket {sock} --dir {data} --save '' --appendonly no "
               "--maxclients 100 --daemonize no")
    wd = watchdog("--rule", f"cache={command}", "--user", "cache=redis", "--directory", f"cache={data}",
                  "--umask", "cache=0027", "--env", "cache=REDIS_ROLE=primary",
                  "--rlimit", "cache=nofile=1024:4096", "--rlimit", "cache=core=0",
                  "--rlimit", "cache=fsize=unlimited", "--rlimit", "cache=memlock=64K")
    [pid] = wait_for(lambda: pids(name), what="redis-server")
    wait_for(lambda: sock.exists(), what="redis's socket")
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(str(sock))
        client.sendall(b"PING\r\n")
        assert client.recv(64) == b"+PONG\r\n"
    seen = facts(pid)
    assert (seen["uid"], seen["euid"], seen["gid"], seen["egid"]) == (user.pw_uid,) * 2 + (user.pw_gid,) * 2
    assert seen["groups"] == sorted({user.pw_gid, *os.getgrouplist("redis", user.pw_gid)})
    assert seen["cwd"] == str(data) and seen["umask"] == "0027"
    # redis writes its title over its environment's memory: the environment it was given is
    # read from /proc before it does, at its start, by the gunicorn and config tests instead.
    limits = seen["limits"]
    assert isinstance(limits, dict)
    assert limits["Max open files"] == ("1024", "4096")
    assert limits["Max core file size"] == ("0", "0")
    assert limits["Max file size"] == ("unlimited", "unlimited")
    assert limits["Max locked memory"] == ("65536", "65536")
    # Files it makes get its umask and its owner.
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(str(sock))
        client.sendall(b"SAVE\r\n")
        assert client.recv(64) == b"+OK\r\n"
    dump = data / "dump.rdb"
    assert dump.stat().st_uid == user.pw_uid and dump.stat().st_mode & 0o027 == 0
    shown = rule_status(wd, "cache")
    assert (shown["user"], shown["uid"], shown["directory"]) == ("redis", user.pw_uid, str(data))


# --- gunicorn as www-data, its env file read at every start -----------------------------------

SYSTEM_PYTHON = "/usr/bin/python3"
APP = """
import os

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{os.environ.get('GREETING')} {os.getuid()} {os.getcwd()}".encode()]
"""


@needs_root
def test_gunicorn_as_www_data_reads_its_env_file_again_at_each_restart(
        watchdog: Start, public: Path, tmp_path: Path) -> None:
    gunicorn = pytest.importorskip("gunicorn", reason="in the test extra: pip install -e '.[test]'")
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip(f"needs {SYSTEM_PYTHON} (Debian's python3), which www-data can run")
    user = pwd.getpwnam("www-data")
    # This environment's Python may live where www-data cannot go (root's home): gunicorn,
    # which needs nothing but the standard library, runs on the system's, from a copy.
    lib = public / "lib"
    shutil.copytree(Path(gunicorn.__file__).parent, lib / "gunicorn")
    app = public / "app"
    app.mkdir()
    (app / "app.py").write_text(APP)
    os.chown(app, user.pw_uid, user.pw_gid)
    name = unique("wdg")
    launcher = public / name  # gunicorn under a name of its own, for this test alone
    launcher.write_text(f"#!{SYSTEM_PYTHON}\nimport sys\nsys.path.insert(0, {str(lib)!r})\n"
                        "from gunicorn.app.wsgiapp import run\nsys.exit(run())\n")
    launcher.chmod(0o755)
    env_file = public / "web.env"
    env_file.write_text("# the app's settings\nGREETING=hello\nHOME=/app-home\n")
    sock, control = app / "web.sock", tmp_path / "control.sock"
    wd = watchdog("--rule", f"web={launcher} --workers 2 --bind unix:{sock} app:app",
                  "--user", "web=www-data", "--directory", f"web={app}", "--env-file", f"web={env_file}",
                  "--env", "web=GREETING_SOURCE=flag", "--control-socket", str(control))

    def master() -> int | None:
        found = pids(name)
        return next((pid for pid in found if psutil.Process(pid).ppid() not in found), None)

    def serving(greeting: str) -> bool:
        return answers(sock) == f"{greeting} {user.pw_uid} {app}"

    wait_for(lambda: serving("hello"), timeout=30, what="gunicorn saying hello")
    first = master()
    assert first is not None
    wait_for(lambda: len(pids(name)) == 3, what="a master and two workers")
    for pid in pids(name):
        seen = facts(pid)
        assert (seen["uid"], seen["gid"], seen["groups"]) == (user.pw_uid, user.pw_gid, [user.pw_gid])
        assert seen["cwd"] == str(app)
        environ = seen["environ"]
        assert isinstance(environ, dict)
        # The file's HOME wins over the passwd entry's; the user's name comes from passwd.
        assert environ["HOME"] == "/app-home" and environ["USER"] == "www-data"
        assert environ["GREETING"] == "hello" and environ["GREETING_SOURCE"] == "flag"

    shown = json.loads(ctl(control, "status", "--json").stdout)["rules"][0]
    assert (shown["user"], shown["uid"], shown["directory"]) == ("www-data", user.pw_uid, str(app))

    env_file.write_text("GREETING=bonjour\nHOME=/app-home\n")
    assert ctl(control, "restart", "web").returncode == 0
    wait_for(lambda: serving("bonjour"), timeout=30, what="gunicorn restarted saying bonjour")
    second = master()
    assert second not in (None, first)

    # --env wins over the file, which the next restart reads again.
    env_file.write_text("GREETING=hallo\nGREETING_SOURCE=file\n")
    assert ctl(control, "restart", "web").returncode == 0
    wait_for(lambda: serving("hallo"), timeout=30, what="gunicorn restarted saying hallo")
    third = master()
    assert third not in (None, first, second)
    environ = facts(third)["environ"]
    assert isinstance(environ, dict)
    assert environ["GREETING_SOURCE"] == "flag" and environ["HOME"] == user.pw_dir
    assert wd.stop() == 0


# --- each rule's own grace --------------------------------------------------------------------

def test_each_rule_is_killed_at_its_own_grace(watchdog: Start, tmp_path: Path) -> None:
    quick, patient = unique("wdq"), unique("wdp")
    wd = watchdog(str(service(tmp_path, quick, "--ignore-term")),
                  str(service(tmp_path, patient, "--ignore-term")), "--grace", "8", "--grace", f"{quick}=1")
    [quick_pid] = wait_for(lambda: pids(quick), what="the quick one")
    [patient_pid] = wait_for(lambda: pids(patient), what="the patient one")
    wd.wait_log(f"{patient}: running")
    wd.wait_log(f"{quick}: running")
    began = time.monotonic()
    wd.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: not psutil.pid_exists(quick_pid), timeout=7, what="the quick one killed")
    quick_after = time.monotonic() - began
    assert psutil.pid_exists(patient_pid), "the patient one was killed with the quick one"
    wait_for(lambda: not psutil.pid_exists(patient_pid), timeout=20, what="the patient one killed")
    patient_after = time.monotonic() - began
    assert wd.proc.wait(10) == 4  # services had to be killed
    # The lower bounds are the graces; the upper ones only leave room for a loaded machine.
    assert 0.9 <= quick_after < 7, quick_after
    assert 7.9 <= patient_after < 20, patient_after
    log = wd.log()
    assert f"still running after the grace, sending SIGKILL: {quick}\n" in log
    assert f"still running after the grace, sending SIGKILL: {patient}\n" in log


def test_a_rule_stopped_alone_gets_its_own_grace(watchdog: Start, tmp_path: Path) -> None:
    name = unique("wds")
    control = tmp_path / "control.sock"
    wd = watchdog(str(service(tmp_path, name, "--ignore-term")), "--grace", "30", "--grace", f"{name}=1",
                  "--control-socket", str(control))
    [pid] = wait_for(lambda: pids(name), what="the service")
    wd.wait_log(f"{name}: running")
    began = time.monotonic()
    assert ctl(control, "stop", name).returncode == 0
    wait_for(lambda: not psutil.pid_exists(pid), timeout=10, what="the service killed at its grace")
    assert time.monotonic() - began < 8
    assert f"{name}: stopping (stopped by uid 0), grace 1.0s" in wd.wait_log("stays down until started")


def test_max_restarts_of_one_rule(watchdog: Start, tmp_path: Path) -> None:
    """--max-restarts NAME=N gives up on that rule alone; the bare value is everyone else's."""
    fragile, sturdy = unique("wdf"), unique("wdt")
    wd = watchdog(f"{service(tmp_path, fragile, '--exit-after', '0')}",
                  f"{service(tmp_path, sturdy, '--exit-after', '0')}",
                  "--max-restarts", "0", "--max-restarts", f"{fragile}=1", "--backoff-max", "0.2")
    wd.wait_log(f"{fragile}: giving up: 1 restarts in a row", timeout=20)
    count = wd.log().count(f"{sturdy}: started")
    wait_for(lambda: wd.log().count(f"{sturdy}: started") > count + 2, what="the other one still restarting")
    assert f"{sturdy}: giving up" not in wd.log()


# --- env files and directories that go away ---------------------------------------------------

def test_a_missing_env_file_fails_the_start_until_it_is_back(watchdog: Start, tmp_path: Path) -> None:
    name = unique("wde")
    env_file = tmp_path / "svc.env"
    env_file.write_text("COLOUR=blue\n")
    exe = program(tmp_path, name)
    wd = watchdog(f"{exe} 1000", "--env-file", f"{name}={env_file}",
                  "--backoff-max", "0.5", "--stable-after", "0.5")
    [first] = wait_for(lambda: pids(name), what="the service")
    assert facts(first)["environ"]["COLOUR"] == "blue"  # type: ignore[index]
    env_file.unlink()
    os.kill(first, signal.SIGKILL)
    log = wd.wait_log(f"cannot start '{exe} 1000': env file {env_file}: "
                      "No such file or directory")
    assert not pids(name)
    status = wait_for(lambda: rule_status(wd, name)["last_exit"] == 127 and rule_status(wd, name),
                      what="status 127, as for a missing program")
    assert status["state"] == "missing"
    env_file.write_text("COLOUR=green\n")
    [second] = wait_for(lambda: pids(name), what="the service started again")
    assert facts(second)["environ"]["COLOUR"] == "green"  # type: ignore[index]
    assert "Traceback" not in log


def test_a_missing_directory_fails_the_start_until_it_is_back(watchdog: Start, tmp_path: Path) -> None:
    name = unique("wdd")
    place = tmp_path / "place"
    place.mkdir()
    wd = watchdog(f"{program(tmp_path, name)} 1000", "--directory", f"{name}={place}",
                  "--backoff-max", "0.5", "--stable-after", "0.5")
    [first] = wait_for(lambda: pids(name), what="the service")
    assert facts(first)["cwd"] == str(place)
    place.rmdir()
    os.kill(first, signal.SIGKILL)
    wd.wait_log(f"directory {place}: No such file or directory")
    place.mkdir()
    [second] = wait_for(lambda: pids(name), what="the service started again")
    assert facts(second)["cwd"] == str(place)


# --- usage errors -----------------------------------------------------------------------------

def usage_error(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
                prefix: tuple[str, ...] = ()) -> str:
    run = subprocess.run([*prefix, sys.executable, "-m", "watchdog", *args], capture_output=True, text=True,
                         cwd=tmp_path, env={**os.environ, **(env or {})}, timeout=60)
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("watchdog: ") and run.stderr.count("\n") == 1, run.stderr
    assert "Traceback" not in run.stderr
    return run.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--user", "x=no-such-user-here"], "--user x: no user named 'no-such-user-here'"),
    (["--user", "x=root:no-such-group"], "--user x: no group named 'no-such-group'"),
    (["--directory", "x={tmp}/absent"], "--directory x: {tmp}/absent does not exist"),
    (["--umask", "x=0999"], "--umask x: '0999' is not a umask"),
    (["--rlimit", "x=nofile=2048:1024"], "--rlimit x=nofile=2048:1024: the soft limit 2048 is above"),
    (["--rlimit", "x=files=10"], "--rlimit x=files=10: 'files' is not a resource limit"),
    (["--rlimit", "x=core=lots"], "--rlimit x=core=lots: 'lots' is not a limit"),
    (["--env", "x=NOVALUE"], "--env x=NOVALUE: expected KEY=VALUE"),
    (["--env-file", "x={tmp}/bad.env"], "--env-file x: {tmp}/bad.env:3: variable name 'BAD KEY' contains"),
    (["--env-file", "x={tmp}/absent.env"], "--env-file x: {tmp}/absent.env: No such file or directory"),
    (["--env-file", "x={tmp}/fifo.env"], "--env-file x: {tmp}/fifo.env: not a regular file"),
    (["--user", "x=4294967295"], "--user x: 4294967295 is not a user id"),
    (["--grace", "x=soon"], "Invalid value for '--grace': 'soon' is not a number of seconds"),
    (["--max-restarts", "y=2"], "--max-restarts 'y=2': no rule is named 'y'"),
])
def test_bad_settings_are_one_line_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "bad.env").write_text("A=1\n# fine\nBAD KEY=2\n")
    os.mkfifo(tmp_path / "fifo.env")  # would block the watchdog, were it opened as a file is
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    stderr = usage_error(tmp_path, "--rule", "x=sleep 1", *args)
    assert message.replace("{tmp}", str(tmp_path)) in stderr


def test_a_bad_setting_in_a_config_file_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text('[rules.x]\ncommand = "sleep 1"\nrlimit = ["nofile=10", "nproc=5:1"]\n')
    stderr = usage_error(tmp_path, "--config", str(tmp_path / "c.toml"))
    assert "c.toml:3: rules.x.rlimit" in stderr
    assert "nproc=5:1: the soft limit 5 is above the hard limit 1" in stderr


@needs_root
def test_without_root_another_user_is_a_usage_error(tmp_path: Path) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv to run the watchdog as nobody")
    nobody = ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups")
    if subprocess.run([*nobody, sys.executable, "-c", "import watchdog"], cwd="/").returncode != 0:
        pytest.skip("user nobody cannot run this Python and import watchdog")
    run_dir = Path(tempfile.mkdtemp(prefix="wd-nobody-"))
    try:
        run_dir.chmod(0o777)
        env = {"WATCHDOG_STATUS_FILE": str(run_dir / "status.json")}
        for other in ("root", "redis:redis", "0", "nobody:root"):
            stderr = usage_error(run_dir, "--rule", "x=sleep 1", "--user", f"x={other}", env=env,
                                 prefix=nobody)
            assert f"--user x: '{other}': only root can run a service as another user or group" in stderr
            assert "the watchdog runs as nobody" in stderr
        stderr = usage_error(run_dir, "--rule", "x=sleep 1", "--rlimit", "x=nofile=unlimited", env=env,
                             prefix=nobody)
        assert "only root can raise the hard limit of nofile" in stderr
        # Its own user is fine: --check builds the rules, then finds nothing running.
        own = subprocess.run([*nobody, sys.executable, "-m", "watchdog", "--check", "--rule",
                              f"x={tmp_path.name}-absent 1", "--shell", "--user", "x=nobody"],
                             capture_output=True, text=True, cwd=run_dir, env={**os.environ, **env})
        assert own.returncode == 1, own.stderr
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


# --- one model, three ways to say it ----------------------------------------------------------

def test_a_config_file_and_watchdog_variables_give_the_same_processes(
        watchdog: Start, tmp_path: Path, public: Path) -> None:
    name = unique("wdc")
    exe = program(public, name)
    place = public / "place"
    place.mkdir()
    env_file = public / "svc.env"
    env_file.write_text("FROM_FILE=1\nCOLOUR=red\n")
    as_root = os.geteuid() == 0
    user = "nobody" if as_root else pwd.getpwuid(os.geteuid()).pw_name
    config = tmp_path / "c.toml"
    config.write_text(f"""
grace = 3
[rules.svc]
command = "{exe} 1000"
user = "{user}"
env = {{ COLOUR = "blue", GREETING = "two words" }}
env-file = "{env_file}"
directory = "{place}"
umask = "0077"
rlimit = ["nofile=512:1024", "core=0", "nproc=300"]
grace = 1
""")
    variables = {
        "WATCHDOG_RULE": f"svc={exe} 1000", "WATCHDOG_USER": f"svc={user}",
        "WATCHDOG_ENV": "svc=COLOUR=blue\nsvc=GREETING=two words", "WATCHDOG_ENV_FILE": f"svc={env_file}",
        "WATCHDOG_DIRECTORY": f"svc={place}", "WATCHDOG_UMASK": "svc=0077",
        "WATCHDOG_RLIMIT": "svc=nofile=512:1024 svc=core=0 svc=nproc=300", "WATCHDOG_GRACE": "3 svc=1",
    }
    seen = []
    for args, env in ((("--config", str(config)), {}), ((), variables)):
        wd = watchdog(*args, env=env)
        [pid] = wait_for(lambda: pids(name), what="the service")
        wd.wait_log("svc: running")
        found = facts(pid)
        environ = found["environ"]
        assert isinstance(environ, dict)  # less the variables that configured the watchdog
        found["environ"] = {key: value for key, value in environ.items() if not key.startswith("WATCHDOG_")}
        shown = rule_status(wd, "svc")
        seen.append((found, {key: shown[key] for key in ("user", "uid", "directory", "grace")}))
        assert wd.stop() == 0
        wait_for(lambda pid=pid: not psutil.pid_exists(pid), what="the service stopped")
    (from_file, file_status), (from_env, env_status) = seen
    assert from_file == from_env and file_status == env_status
    environ = from_file["environ"]
    assert isinstance(environ, dict)
    assert (environ["COLOUR"], environ["GREETING"], environ["FROM_FILE"]) == ("blue", "two words", "1")
    assert from_file["cwd"] == str(place) and from_file["umask"] == "0077"
    assert from_file["uid"] == pwd.getpwnam(user).pw_uid
    limits = from_file["limits"]
    assert isinstance(limits, dict)
    assert limits["Max open files"] == ("512", "1024") and limits["Max processes"] == ("300", "300")
    assert file_status == {"user": user, "uid": pwd.getpwnam(user).pw_uid, "directory": str(place),
                           "grace": 1.0}


# --- reload -----------------------------------------------------------------------------------

def configured_rule(tmp_path: Path, **flags: list[str]) -> Rule:
    """The rule ``wd-svc`` as start-up (or a reload) configures it from ``flags``."""
    [rule] = make_rules([f"{sys.executable} -c pass"], [], shell=False)
    rule.name = "wd-svc"
    options: dict[str, Any] = {"user": (), "env": (), "env_file": (), "directory": (), "umask": (),
                               "rlimit": (), "log_buffer": (), "log_file": (), "log_file_stderr": (),
                               "log_max_bytes": (), "log_backups": (), "log_stderr": (), "ready_log": ()}
    options.update({key: [f"wd-svc={value}" for value in values] for key, values in flags.items()})
    config = Config([rule], options)
    launch.configure(config)
    logoptions.configure(config)
    return rule


def test_a_reload_keeps_a_rule_configured_alike_and_changes_one_whose_settings_differ(
        tmp_path: Path) -> None:
    """Two configurations are separate objects: the reload compares their values (user,
    environment, directory, umask, limits, log files), never which objects they are."""
    own = pwd.getpwuid(os.geteuid())
    flags: dict[str, list[str]] = {
        "user": [own.pw_name], "env": ["A=1", "B=2"], "directory": [str(tmp_path)], "umask": ["0027"],
        "rlimit": ["nofile=512:1024"], "log_file": [str(tmp_path / "out.log")], "log_backups": ["3"]}
    running = configured_rule(tmp_path, **flags)
    assert same(running, configured_rule(tmp_path, **flags))
    for key, value in [("user", [str(own.pw_uid)]), ("env", ["A=1", "B=3"]), ("directory", ["/"]),
                       ("umask", ["0022"]), ("rlimit", ["nofile=512:2048"]),
                       ("log_file", [str(tmp_path / "other.log")]), ("log_backups", ["4"])]:
        assert not same(running, configured_rule(tmp_path, **{**flags, key: value})), key


def test_reload_restarts_a_rule_whose_settings_changed(watchdog: Start, tmp_path: Path) -> None:
    """A rule's environment or grace is its definition: a reload starts it anew with the new one.
    The bare default of a grace is the watchdog's own: that takes a restart of the watchdog."""
    name, other = unique("wdl"), unique("wdk")
    exe, other_exe = program(tmp_path, name), program(tmp_path, other)
    config = tmp_path / "c.toml"
    control = tmp_path / "control.sock"

    def write(colour: str, default_grace: int) -> None:
        config.write_text(f'grace = {default_grace}\n[rules.svc]\ncommand = "{exe} 1000"\n'
                          f'env = {{ COLOUR = "{colour}" }}\n[rules.other]\ncommand = "{other_exe} 1000"\n')

    write("blue", 3)
    wd = watchdog("--config", str(config), "--control-socket", str(control))
    [first] = wait_for(lambda: pids(name), what="the service")
    [untouched] = wait_for(lambda: pids(other), what="the other service")
    wd.wait_log("svc: running")
    assert facts(first)["environ"]["COLOUR"] == "blue"  # type: ignore[index]
    write("green", 4)
    reloaded = ctl(control, "reload")
    assert reloaded.returncode == 0, reloaded.stderr
    assert "changed: svc" in reloaded.stdout and "unchanged: other" in reloaded.stdout
    assert "not applied until the watchdog restarts: grace" in reloaded.stderr
    [second] = wait_for(lambda: pids(name) - {first}, what="the service started anew")
    assert facts(second)["environ"]["COLOUR"] == "green"  # type: ignore[index]
    assert pids(other) == {untouched}


def test_what_the_watchdog_sets_for_a_service_wins_over_its_env(watchdog: Start, tmp_path: Path) -> None:
    name = unique("wdn")
    env_file = tmp_path / "svc.env"
    env_file.write_text("NOTIFY_SOCKET=/from/the/file\nFROM_FILE=file\nBOTH=file\n")
    wd = watchdog(f"{program(tmp_path, name)} 1000", "--notify", name, "--env-file", f"{name}={env_file}",
                  "--env", f"{name}=NOTIFY_SOCKET=/from/the/flag", "--env", f"{name}=BOTH=flag")
    [pid] = wait_for(lambda: pids(name), what="the service")
    environ = facts(pid)["environ"]
    assert isinstance(environ, dict)
    assert environ["NOTIFY_SOCKET"].startswith("/") and "from/the" not in environ["NOTIFY_SOCKET"]
    assert (environ["FROM_FILE"], environ["BOTH"]) == ("file", "flag")
    wd.stop()


@needs_root
def test_a_health_command_runs_as_its_rule_runs(watchdog: Start, tmp_path: Path, public: Path) -> None:
    """As Docker's HEALTHCHECK and Kubernetes' exec probes run as the container's user."""
    name = unique("wdh")
    nobody = pwd.getpwnam("nobody")
    check = f"test $(id -u) = {nobody.pw_uid} && test $(pwd) = {public} && test $PROBED = yes"
    wd = watchdog(f"{program(public, name)} 1000", "--user", f"{name}=nobody",
                  "--directory", f"{name}={public}", "--env", f"{name}=PROBED=yes",
                  "--health-cmd", f"{name}=sh -c '{check}'", "--health-interval", f"{name}=0.2")
    wait_for(lambda: pids(name), what="the service")
    wd.wait_log(f"{name}: healthy", timeout=20)
    assert "unhealthy" not in wd.log()
