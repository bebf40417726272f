"""supervisord configurations run unchanged: parsed as supervisord parses them, converted, run.

Every configuration in tests/supervisord/ is checked three ways:
- key by key against supervisord itself (``ServerOptions().realize``, run by
  tests/supervisord/reference.py): each value the watchdog's ``--print-config``
  shows, as a setting or as a setting this build cannot honour yet;
- round trip: the printed TOML, read back with ``--config``, prints the same;
- run: every program comes up (or stays stopped with autostart=false), and a
  stop is graceful with exit status 0.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import Watchdog, wait_for

from watchdog.supervisor_keys import markdown_table

HERE = Path(__file__).parent
CONFIGS = sorted((HERE / "supervisord").glob("*.conf"))
REFERENCE = HERE / "supervisord" / "reference.py"
EXAMPLE = HERE.parent / "examples" / "supervisord" / "supervisord.conf"
Start = Callable[..., Watchdog]
NOT_HONOURED = re.compile(r"^# (?P<key>[a-z-]+) = (?P<value>.*): not honoured, ")
# What the watchdog adds that supervisord's process configs do not show: rotation of a
# log file, limits and umask and user from [supervisord], a [group:x]'s priority.
EXTRAS = {"log-max-bytes", "log-backups", "rlimit", "umask", "user", "priority"}


def reference_python() -> str:
    for python in (sys.executable, "/usr/bin/python3"):
        if shutil.which(python) and subprocess.run([python, "-c", "import supervisor.options"],
                                                   capture_output=True).returncode == 0:
            return python
    pytest.skip("supervisor is not installed (Debian's supervisor package, or the bench extra)")


def reference(path: Path) -> dict[str, Any]:
    done = subprocess.run([reference_python(), str(REFERENCE), str(path)], capture_output=True,
                          text=True, cwd=path.parent, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def watchdog_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "watchdog", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=60)


def print_config(path: Path, *args: str) -> str:
    done = watchdog_cli("--config", str(path), "--print-config", *args, cwd=path.parent)
    assert done.returncode == 0, done.stderr
    return done.stdout


def printed_rules(text: str) -> dict[str, dict[str, Any]]:
    """Each rule's keys as printed: its settings, and those this build cannot honour yet."""
    rules: dict[str, dict[str, Any]] = tomllib.loads(text).get("rules", {})
    current = None
    for line in text.splitlines():
        header = re.match(r'^\[rules\.(?:"(.+)"|(.+))\]$', line)
        if header:
            current = header.group(1) or header.group(2)
            continue
        found = NOT_HONOURED.match(line)
        if found and current is not None:
            rules[current][found["key"]] = json.loads(found["value"])
    return rules


def normal(key: str, value: Any) -> Any:
    """Values as comparable text: TOML prints 0 for a flag's "0", a one-item list as its item."""
    if key in ("env", "rlimit"):
        return sorted(value if isinstance(value, list) else [value])
    return None if value is None else str(value)


@pytest.mark.parametrize("path", CONFIGS, ids=[path.stem for path in CONFIGS])
def test_every_key_is_what_supervisord_reads(path: Path) -> None:
    expected = reference(path)
    rules = printed_rules(print_config(path))
    names = [proc["name"] for proc in expected["processes"]]
    assert set(names) <= set(rules)
    for proc in expected["processes"]:
        ours = rules[proc["name"]]
        for key, value in proc["keys"].items():
            if value == "AUTO":  # no key means AUTO to supervisord; a written AUTO is a file of ours
                stream = "stdout" if key == "log-file" else "stderr"
                assert ours.get(key) in (None, f"{expected['childlogdir']}/{proc['name']}-{stream}.log")
                continue
            assert normal(key, ours.get(key)) == normal(key, value), f"{proc['name']}: {key}"
        extra = set(ours) - set(proc["keys"]) - EXTRAS - {"log-file", "log-file-stderr"}
        assert not extra, f"{proc['name']}: keys supervisord does not have: {extra}"


@pytest.mark.parametrize("path", CONFIGS, ids=[path.stem for path in CONFIGS])
def test_the_printed_toml_gives_the_same_rules(path: Path, tmp_path: Path) -> None:
    printed = print_config(path)
    toml = tmp_path / "converted.toml"
    toml.write_text(printed)
    again = print_config(toml)

    def settings(text: str) -> list[str]:
        return [line.split("  #")[0] for line in text.splitlines() if line and not line.startswith("#")]

    assert settings(again) == settings(printed)
    assert tomllib.loads(again) == tomllib.loads(printed)


def control(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "watchdog.ctl", "--socket", str(tmp_path / "control.sock"),
                           *args], capture_output=True, text=True, timeout=30)


def status(tmp_path: Path) -> dict[str, dict[str, Any]]:
    done = control(tmp_path, "status", "--json")
    if done.returncode not in (0, 1):
        return {}
    return {rule["name"]: rule for rule in json.loads(done.stdout)["rules"]}


def settled(tmp_path: Path, manual: set[str]) -> dict[str, dict[str, Any]]:
    rules = status(tmp_path)
    wanted = all(rule["state"] == ("stopped" if name in manual else "running")
                 for name, rule in rules.items())
    return rules if rules and wanted else {}


@pytest.mark.parametrize("path", CONFIGS, ids=[path.stem for path in CONFIGS])
def test_it_runs_unchanged_and_stops_gracefully(path: Path, tmp_path: Path, watchdog: Start) -> None:
    rules = printed_rules(print_config(path))
    manual = {name for name, keys in rules.items() if keys.get("autostart") is False}
    wd = watchdog("--config", str(path))
    running = wait_for(lambda: settled(tmp_path, manual), 20, f"{path.name}'s programs running")
    assert set(running) == set(rules)
    assert wd.stop() == 0, wd.log()
    for rule in running.values():
        for pid in rule["pids"]:
            assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def test_the_readme_table_is_the_mapping_table() -> None:
    assert markdown_table() in (EXAMPLE.parent / "README.md").read_text()


def test_the_example_translates_to_its_rules() -> None:
    """examples/supervisord/supervisord.conf: every program a rule, the listener the one key not run."""
    printed = print_config(EXAMPLE)
    rules = printed_rules(printed)
    assert set(rules) == {"php-fpm", "nginx", "queue_00", "queue_01"}
    assert rules["queue_01"]["user"] == "www-data"
    assert rules["nginx"]["stop-signal"] == "QUIT"


# --- the file format ---------------------------------------------------------------


def write(tmp_path: Path, text: str, name: str = "supervisord.conf") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "message"), [
    ("command=/bin/true\n[program:a]\n", "supervisord.conf:1: a line before any [section]"),
    ("[supervisord]\n[program:a]\ncommand=/bin/sleep 1\nthis is not a key\n",
     "supervisord.conf:4: not KEY=VALUE"),
    ("[program:a]\ncommand=/bin/sleep %(nope)s\n", "supervisord.conf:2: command: '/bin/sleep %(nope)s': "
                                                   "no expansion %(nope)s"),
    ("[program:a]\ncommand=/bin/sleep 1\nnumprocs=2\n", "supervisord.conf:3: process_name: must contain "
                                                        "%(process_num)"),
    ("[program:a]\ncommand=/bin/sleep 1\nautostart=maybe\n", "supervisord.conf:3: [program:a] autostart: "
                                                             "'maybe' is not a boolean"),
    ("[program:a]\ncommand=/bin/sleep 1\nenvironment=A=\"1\" B=2\n", "supervisord.conf:3: environment:"),
    ("[group:g]\nprograms=missing\n[program:a]\ncommand=/bin/sleep 1\n",
     "supervisord.conf:2: programs: names unknown program 'missing'"),
    ("[program:a]\nautostart=true\n", "supervisord.conf:1: [program:a]: no command= line"),
    ("[supervisord]\nnodaemon=true\n", "supervisord.conf: no [program:x] section"),
])
def test_a_malformed_file_is_one_error_naming_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    done = watchdog_cli("--config", str(write(tmp_path, text)), "--print-config")
    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr


def test_an_error_in_an_included_file_names_that_file(tmp_path: Path) -> None:
    write(tmp_path, "[program:bad]\ncommand=/bin/true\n  \n= oops\n", "conf.d/bad.conf")
    main = write(tmp_path, "[supervisord]\n[include]\nfiles=conf.d/*.conf\n")
    done = watchdog_cli("--config", str(main), "--print-config")
    assert done.returncode == 2
    assert f"{tmp_path}/conf.d/bad.conf:4" in done.stderr


def test_includes_are_relative_to_the_including_file_and_nest(tmp_path: Path) -> None:
    rules = printed_rules(print_config(HERE / "supervisord" / "09-nested.conf"))
    assert set(rules) == {"top", "first", "second"}
    # run from elsewhere: globs are relative to the file, not the working directory
    done = watchdog_cli("--config", str(HERE / "supervisord" / "08-include.conf"), "--print-config",
                        cwd=tmp_path)
    assert set(printed_rules(done.stdout)) == {"web", "worker", "extra"}


def test_an_include_loop_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "[program:a]\ncommand=/bin/sleep 1\n[include]\nfiles=supervisord.conf\n")
    done = watchdog_cli("--config", str(path), "--print-config")
    assert done.returncode == 2
    assert "includes nested more than" in done.stderr


def test_unknown_keys_and_unhonoured_values_are_one_warning_each(tmp_path: Path) -> None:
    done = watchdog_cli("--config", str(HERE / "supervisord" / "22-unhonoured.conf"), "--print-config")
    assert done.returncode == 0
    warnings = [line for line in done.stderr.splitlines() if "warning" in line]
    path = HERE / "supervisord" / "22-unhonoured.conf"
    assert any(f"{path}:7: [program:app] stdout_syslog=true: cannot honour: no syslog" in line
               for line in warnings), warnings
    assert any(f"{path}:3: [supervisord] strip_ansi=true: cannot honour" in line for line in warnings)
    assert sum("stdout_events_enabled" in line for line in warnings) == 1
    unknown = write(tmp_path, "[program:a]\ncommand=/bin/sleep 1\nstartsec=5\n")
    done = watchdog_cli("--config", str(unknown), "--print-config")
    assert f"{unknown}:3: [program:a] startsec: unknown key, ignored" in done.stderr


def test_control_sections_are_one_info_line_naming_watchdogctl() -> None:
    done = watchdog_cli("--config", str(HERE / "supervisord" / "13-ctl-sections.conf"), "--print-config")
    lines = [line for line in done.stderr.splitlines() if "ignored" in line]
    assert len(lines) == 4
    assert all("watchdogctl" in line and "warning" not in line for line in lines)


def test_the_exit_on_fatal_listener_names_essential_and_on_give_up() -> None:
    path = HERE / "supervisord" / "12-eventlistener.conf"
    done = watchdog_cli("--config", str(path), "--print-config")
    [line] = [line for line in done.stderr.splitlines() if "[eventlistener:" in line]
    assert "warning" in line and f"{path}:9: [eventlistener:processes]" in line
    assert "--essential" in line and "--on-give-up exit" in line


def test_toml_with_a_rules_table_stays_toml(tmp_path: Path) -> None:
    path = write(tmp_path, '[rules.web]\ncommand = "/bin/sleep 1000"\n', "conf.toml")
    printed = print_config(path)
    assert printed.startswith("[rules.web]\ncommand = \"/bin/sleep 1000\"  # ")


def test_print_config_says_where_each_value_came_from(tmp_path: Path) -> None:
    path = write(tmp_path, 'interval = 3\n[rules.web]\ncommand = "/bin/sleep 1000"\n'
                           'stop-signal = "QUIT"\n', "conf.toml")
    done = subprocess.run(
        [sys.executable, "-m", "watchdog", "--config", str(path), "--print-config", "--grace", "2",
         "--rule", "db=/bin/sleep 999", "--priority", "db=1"],
        capture_output=True, text=True, env={**os.environ, "WATCHDOG_PREFIX": "1"}, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "interval = 3.0  # " + f"{path}:1: interval" in lines
    assert any(re.fullmatch(r"grace = 2(\.0)?  # flag --grace", line) for line in lines), lines
    assert "prefix = true  # WATCHDOG_PREFIX" in lines
    assert 'command = "/bin/sleep 999"  # flag --rule' in lines
    assert "priority = 1  # flag --priority" in lines
    assert f'stop-signal = "QUIT"  # {path}:4: rules.web.stop-signal' in lines


# --- behaviour ------------------------------------------------------------------------


def test_priority_starts_ascending_and_stops_in_reverse(tmp_path: Path, watchdog: Start) -> None:
    wd = watchdog("-v", "--config", str(HERE / "supervisord" / "04-priority.conf"))
    wait_for(lambda: settled(tmp_path, set()), 20, "all running")
    started = re.findall(r"watchdog: (\w+): started", wd.log())
    assert started == ["early", "middle", "late", "default"]
    assert wd.stop() == 0
    stopping = re.findall(r"watchdog: (\w+): stopping", wd.log())
    assert stopping[0] == "default" and stopping[-1] == "early"
    assert stopping.index("late") < stopping.index("middle")


def test_autostart_false_waits_for_watchdogctl_start(tmp_path: Path, watchdog: Start) -> None:
    wd = watchdog("--config", str(HERE / "supervisord" / "15-autostart.conf"))
    rules = wait_for(lambda: settled(tmp_path, {"manual", "also_manual"}), 20, "service running")
    assert rules["manual"]["pids"] == []
    done = control(tmp_path, "start", "manual", "--wait", "10")
    assert done.returncode == 0, done.stderr
    assert status(tmp_path)["manual"]["state"] == "running"
    assert status(tmp_path)["also_manual"]["state"] == "stopped"
    assert wd.stop() == 0


def test_numprocs_copies_are_rules_of_their_own_in_a_group(tmp_path: Path, watchdog: Start) -> None:
    wd = watchdog("--config", str(HERE / "supervisord" / "07-numprocs.conf"))
    rules = wait_for(lambda: settled(tmp_path, set()), 20, "copies running")
    assert {"worker_00", "worker_01", "worker_02", "queue-5", "queue-6"} == set(rules)
    assert {rules[f"worker_0{n}"]["group"] for n in range(3)} == {"worker"}
    # three identical command lines, each its own process
    pids = [rules[f"worker_0{n}"]["pids"] for n in range(3)]
    assert len({tuple(p) for p in pids}) == 3 and all(len(p) == 1 for p in pids)
    os.kill(pids[1][0], signal.SIGKILL)
    wait_for(lambda: status(tmp_path)["worker_01"]["pids"] not in ([], pids[1]), 10, "worker_01 again")
    after = status(tmp_path)
    assert after["worker_00"]["pids"] == pids[0] and after["worker_02"]["pids"] == pids[2]
    # supervisorctl's habits
    done = control(tmp_path, "stop", "worker:*", "--wait", "10")
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split("\n")[:3]) == ["worker_00: stopping", "worker_01: stopping",
                                                   "worker_02: stopping"]
    assert status(tmp_path)["queue-5"]["state"] == "running"
    assert control(tmp_path, "pid", "worker_00").stdout.strip() == "0"
    queue_pid = status(tmp_path)["queue-5"]["pids"][0]
    assert control(tmp_path, "pid", "queue:queue-5").stdout.strip() == str(queue_pid)
    assert control(tmp_path, "pid").stdout.strip() == str(wd.pid)
    assert control(tmp_path, "start", "all", "--wait", "10").returncode == 0
    assert all(rule["state"] == "running" for rule in status(tmp_path).values())
    unknown = control(tmp_path, "stop", "nogroup:*")
    assert unknown.returncode == 4 and "nogroup:*" in unknown.stderr
    assert wd.stop() == 0


def test_a_group_section_is_a_group_for_watchdogctl(tmp_path: Path, watchdog: Start) -> None:
    wd = watchdog("--config", str(HERE / "supervisord" / "14-groups.conf"))
    wait_for(lambda: settled(tmp_path, set()), 20, "running")
    done = control(tmp_path, "restart", "web:*", "--wait", "10")
    assert done.returncode == 0, done.stderr
    assert {line.split(":")[0] for line in done.stdout.splitlines()} == {"nginx", "php"}
    rules = status(tmp_path)
    assert rules["nginx"]["restarts"] == 1 and rules["php"]["restarts"] == 1
    assert rules["cron"]["restarts"] == 0
    assert wd.stop() == 0


MASTER = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
time.sleep(0.5)  # the watchdog has seen the master alone by now
for _ in range(2):
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        while True:
            time.sleep(1)
while True:
    time.sleep(1)
"""


def test_a_dead_masters_workers_are_the_rules_and_it_starts_again(tmp_path: Path, watchdog: Start) -> None:
    """php-fpm's shape: kill -9 of the master leaves workers that hold its socket."""
    script = tmp_path / "master.py"
    script.write_text(MASTER)
    conf = write(tmp_path, f"[supervisord]\n[program:fpm]\ncommand={sys.executable} {script}\n"
                           "autorestart=true\n")
    wd = watchdog("--config", str(conf))
    first = wait_for(lambda: settled(tmp_path, set()), 20, "the master running")["fpm"]["pids"]
    [master] = first

    def workers(pid: int) -> list[int]:
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(stat[3]) == pid and stat[0] != "Z":  # same process group as the master
                    found.append(int(entry))
        return [p for p in found if p != pid]

    old_workers = wait_for(lambda: len(workers(master)) == 2 and workers(master), 10, "two workers")
    os.kill(master, signal.SIGKILL)
    wd.wait_log("main process", 15)  # the log says why it restarts
    new = wait_for(lambda: [p for p in status(tmp_path)["fpm"]["pids"] if p not in (master, *old_workers)],
                   15, "a new master")
    assert new
    wait_for(lambda: not any(os.path.exists(f"/proc/{p}") and open(f"/proc/{p}/stat").read().split()[2] != "Z"
                             for p in old_workers), 15, "the old workers gone")
    assert wd.stop() == 0


def test_reload_reads_the_supervisord_file_again(tmp_path: Path, watchdog: Start) -> None:
    conf = write(tmp_path, "[supervisord]\n[program:one]\ncommand=/bin/sleep 1001\n")
    wd = watchdog("--config", str(conf))
    wait_for(lambda: settled(tmp_path, set()), 20, "one running")
    conf.write_text("[supervisord]\n[program:one]\ncommand=/bin/sleep 1001\n"
                    "[program:two]\ncommand=/bin/sleep 1002\npriority=1\n")
    done = control(tmp_path, "reload")
    assert done.returncode == 0, done.stderr
    assert "added: two" in done.stdout
    rules = wait_for(lambda: settled(tmp_path, set()), 20, "two running")
    assert set(rules) == {"one", "two"}
    assert wd.stop() == 0


def test_a_program_that_cannot_run_is_an_error_naming_its_line(tmp_path: Path) -> None:
    conf = write(tmp_path, "[supervisord]\n[program:x]\ncommand=wd-no-such-program --flag\n")
    done = watchdog_cli("--config", str(conf))
    assert done.returncode == 2
    [error] = [line for line in done.stderr.splitlines() if line.startswith("watchdog: ")
               and "warning" not in line]
    assert error.startswith(f"watchdog: {conf}:3: [program:x] command: ")
    assert "wd-no-such-program is not found on PATH" in error


def test_tail_is_logs_as_supervisorctl_spells_it(tmp_path: Path, watchdog: Start) -> None:
    conf = write(tmp_path, "[supervisord]\n[program:talker]\n"
                           "command=/bin/sh -c 'echo out-line; echo err-line >&2; exec sleep 1000'\n"
                           "stdout_logfile=/dev/stdout\n")
    wd = watchdog("--config", str(conf))
    wait_for(lambda: settled(tmp_path, set()), 20, "talker running")
    wait_for(lambda: "err-line" in control(tmp_path, "tail", "talker").stdout, 10, "both lines kept")
    both = control(tmp_path, "tail", "talker").stdout
    assert "out-line" in both and "err-line" in both
    only = control(tmp_path, "tail", "talker:*", "stderr")
    assert only.returncode == 0, only.stderr
    assert "err-line" in only.stdout and "out-line" not in only.stdout
    with subprocess.Popen([sys.executable, "-m", "watchdog.ctl", "--socket", str(tmp_path / "control.sock"),
                           "tail", "-f", "talker"], stdout=subprocess.PIPE, text=True) as follow:
        assert follow.stdout is not None
        assert "out-line" in follow.stdout.readline() + follow.stdout.readline()
        follow.terminate()
    assert wd.stop() == 0
