"""The command line: parsing, one-line usage errors, plugin loading."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from watchdog import hookimpl
from watchdog.cli import make_cli, prescan
from watchdog.manager import make_plugin_manager
from watchdog.matchers import Matcher


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(make_cli(make_plugin_manager()), list(args))
    return result.exit_code, result.output


BAD_INPUT = [
    ((), "no command given"),
    (("",), "empty command"),
    (("   ",), "empty command"),
    (("sleep 'unbalanced",), "no closing quotation"),
    (("/no/such/program",), "/no/such/program does not exist"),
    (("{not_executable}",), "not-executable is not executable"),
    (("no-such-program-anywhere",), "not found on PATH"),
    (("sleep 1", "sleep 2"), "two commands are named 'sleep'"),
    (("sleep 1", "--regex", "nginx=x"), "no rule is named 'nginx'"),
    (("sleep 1", "--pidfile", "nginx=/run/x"), "no rule is named 'nginx'"),
    (("sleep 1", "--stop-signal", "nginx=QUIT"), "no rule is named 'nginx'"),
    (("sleep 1", "--match", "nosuch"), "'nosuch' is not one of"),
    (("sleep 1", "--regex", "sleep"), "expected NAME=VALUE"),
    (("sleep 1", "--regex", "=x"), "expected NAME=VALUE"),
    (("sleep 1", "--regex", "sleep="), "expected NAME=VALUE"),
    (("sleep 1", "--regex", "sleep=("), "--regex sleep=(: bad pattern"),
    (("sleep 1", "--regex", "sleep=a", "--pidfile", "sleep=/x"), "given both"),
    (("sleep 1", "--stop-signal", "sleep=NOPE"), "not a signal name or number"),
    (("sleep 1", "--interval", "0"), "--interval"),
    (("sleep 1", "--interval", "soon"), "--interval"),
    (("sleep 1", "--grace", "-1"), "--grace"),
    (("sleep 1", "--once", "--check"), "exclude each other"),
    (("sleep 1", "--rule", "noequals"), "expected NAME=VALUE"),
    (("sleep 1", "--no-such-flag"), "No such option"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUT, ids=[" ".join(a) or "none" for a, _ in BAD_INPUT])
def test_bad_input_is_a_one_line_usage_error(
    args: tuple[str, ...], message: str, tmp_path: Path
) -> None:
    not_executable = tmp_path / "not-executable"
    not_executable.write_text("#!/bin/sh\n")
    not_executable.chmod(0o644)
    code, output = invoke(*(arg.format(not_executable=not_executable) for arg in args))
    assert code == 2
    assert message in output
    assert output.count("\n") == 1 and output.startswith("watchdog: ")
    assert "Traceback" not in output


def test_usage_error_from_the_installed_command_is_one_line_without_traceback(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "watchdog", "sleep 'oops"], cwd=tmp_path,
        capture_output=True, text=True,
    )
    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr == "watchdog: command \"sleep 'oops\": no closing quotation\n"


def test_help_lists_every_flag_and_the_seed_example() -> None:
    code, output = invoke("--help")
    assert code == 0
    for flag in ("--match", "--regex", "--pidfile", "--interval", "--once", "--check", "--shell",
                 "--grace", "--stop-signal", "--plugin", "--disable", "--rule", "--max-restarts"):
        assert flag in output
    assert "watchdog /usr/sbin/sshd '/etc/init.d/apache2 start'" in output


def test_check_exits_1_and_names_the_missing_rule(tmp_path: Path) -> None:
    program = tmp_path / "wd-never-runs"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    code, output = invoke(str(program), "--check")
    assert code == 1
    assert output == "missing: wd-never-runs (no process named 'wd-never-runs')\n"


def test_prescan_finds_plugin_flags_in_every_spelling() -> None:
    early = prescan(["-p", "a", "-pb", "--plugin", "c", "--plugin=d", "--disable", "log",
                     "--disable=respawn", "--config", "w.toml", "x", "--", "-p", "e"])
    assert early.plugins == ["a", "b", "c", "d"]
    assert early.disabled == ["log", "respawn"]
    assert early.config == "w.toml"


class ShoutPlugin:
    """A plugin registered in-process: adds a flag and a matcher of its own."""

    def __init__(self) -> None:
        self.seen: dict[str, object] = {}

    @hookimpl
    def watchdog_add_options(self) -> list[click.Option]:
        return [click.Option(["--shout"], is_flag=True)]

    @hookimpl
    def watchdog_matchers(self) -> list[Matcher]:
        return [Matcher("always", lambda rule, snapshot: [object()],  # type: ignore[list-item]
                        lambda rule: "anything")]

    @hookimpl
    def watchdog_configure(self, config: object) -> None:
        self.seen["config"] = config


def test_a_plugin_registered_in_process_adds_a_flag_and_a_strategy() -> None:
    pm = make_plugin_manager()
    plugin = ShoutPlugin()
    pm.register(plugin, name="shout")
    result = CliRunner().invoke(make_cli(pm), ["sleep 1", "--shout", "--match", "always", "--check"])
    assert result.exit_code == 0, result.output
    config = plugin.seen["config"]
    assert config.options["shout"] is True  # type: ignore[attr-defined]


def test_p_loads_a_module_and_disable_blocks_a_builtin(tmp_path: Path) -> None:
    (tmp_path / "wd_noisy.py").write_text(textwrap.dedent("""
        import click
        from watchdog import hookimpl

        @hookimpl
        def watchdog_add_options():
            return [click.Option(["--noisy"], is_flag=True, help="from wd_noisy")]
    """))
    env_path = {"PYTHONPATH": str(tmp_path)}
    helped = subprocess.run([sys.executable, "-m", "watchdog", "-p", "wd_noisy", "--help"],
                            cwd=tmp_path, capture_output=True, text=True, env=env_path)
    assert "--noisy" in helped.stdout
    disabled = subprocess.run([sys.executable, "-m", "watchdog", "--disable", "regex", "--help"],
                              cwd=tmp_path, capture_output=True, text=True)
    assert "--regex" not in disabled.stdout and "--pidfile" in disabled.stdout
    missing = subprocess.run([sys.executable, "-m", "watchdog", "-p", "wd_absent", "sleep 1"],
                             cwd=tmp_path, capture_output=True, text=True)
    assert missing.returncode == 2
    assert missing.stderr.startswith("watchdog: cannot load plugin 'wd_absent'")


def test_a_misspelled_hook_fails_at_start(tmp_path: Path) -> None:
    (tmp_path / "wd_typo.py").write_text(
        "from watchdog import hookimpl\n\n@hookimpl\ndef watchdog_rule_mising(rule):\n    pass\n"
    )
    run = subprocess.run([sys.executable, "-m", "watchdog", "-p", "wd_typo", "sleep 1"],
                         cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(tmp_path)})
    assert run.returncode == 2
    assert "watchdog_rule_mising" in run.stderr and run.stderr.count("\n") == 1


def test_a_second_run_in_one_process_starts_from_the_defaults() -> None:
    """Plugins keep their settings in per-run objects: nothing leaks into the next run."""
    first = CliRunner().invoke(make_cli(make_plugin_manager()),
                               ["sleep 1", "--max-restarts", "7", "--stable-after", "3", "--check"])
    assert first.exit_code in (0, 1), first.output
    helped = CliRunner().invoke(make_cli(make_plugin_manager()), ["--help"]).output

    def help_of(flag: str) -> str:
        return " ".join(helped.split(f"{flag} ", 1)[1].split("\n  -", 1)[0].split())

    assert "[default: 0]" in help_of("--max-restarts")
    assert "[default: 10]" in help_of("--stable-after")


def test_help_names_the_variable_that_loads_plugins() -> None:
    """The pre-scan loads plugins from WATCHDOG_PLUGIN: --help must name that one."""
    helped = CliRunner().invoke(make_cli(make_plugin_manager()), ["--help"]).output
    assert "WATCHDOG_PLUGIN]" in helped and "WATCHDOG_PLUGINS" not in helped


def test_disable_of_a_name_no_plugin_has_is_a_usage_error_naming_the_plugins() -> None:
    result = subprocess.run([sys.executable, "-m", "watchdog", "--disable", "respwan", "sleep 1"],
                            capture_output=True, text=True, timeout=30,
                            env={**os.environ, "WATCHDOG_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "--disable respwan: no plugin has that name (plugins: basename, regex" in result.stderr
    assert "respawn" in result.stderr and "Traceback" not in result.stderr


def test_one_off_actions_take_no_environment_variable(tmp_path: Path) -> None:
    # An image that happens to set WATCHDOG_VERSION=1 must start its services, not print a version.
    env = {**os.environ, "WATCHDOG_DISABLE_PLUGIN_AUTOLOAD": "1", "WATCHDOG_VERSION": "1",
           "WATCHDOG_LIST_PLUGINS": "1", "WATCHDOG_STATUS": "1", "WATCHDOG_PRINT_CONFIG": "1",
           "WATCHDOG_CONTROL_SOCKET": str(tmp_path / "control.sock"),
           "WATCHDOG_STATUS_FILE": str(tmp_path / "status.json")}
    result = subprocess.run([sys.executable, "-m", "watchdog", "--once", "true"],
                            capture_output=True, text=True, timeout=60, env=env)
    assert "started 'true'" in result.stderr
    assert "watchdog 0" not in result.stdout and "basename" not in result.stdout
    assert "[rules." not in result.stdout  # --print-config's TOML


def test_both_commands_print_their_version_in_one_form() -> None:
    from watchdog import __version__

    for module in ("watchdog", "watchdog.ctl"):
        out = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True,
                             text=True, timeout=30).stdout
        assert out == f"{'watchdogctl' if module.endswith('ctl') else 'watchdog'} {__version__}\n"


def test_help_groups_the_options_by_task_and_a_third_party_plugin_under_its_name(tmp_path: Path) -> None:
    (tmp_path / "wd_helped.py").write_text(textwrap.dedent("""
        import click
        from watchdog import hookimpl

        @hookimpl
        def watchdog_add_options():
            return [click.Option(["--helped-knob"], help="A knob of a third-party plugin.")]
    """))
    env = {**os.environ, "WATCHDOG_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONPATH": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "watchdog", "-p", "wd_helped", "--help"],
                         capture_output=True, text=True, timeout=30, env=env).stdout
    headings = [line for line in out.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert headings[:8] == ["Rules and matching:", "Keeping services alive:",
                            "User, environment, directory and limits:", "Health checks and limits:",
                            "Start-up order and readiness:", "Control and status:", "Output:",
                            "Plugins and configuration:"]
    assert headings[-1] == "Plugin wd_helped:"

    def section(heading: str) -> str:
        return out.split(heading, 1)[1].split("\n\n", 1)[0]

    assert "--regex" in section("Rules and matching:") and "--max-restarts" in section("Keeping")
    assert "--env-file" in section("User, environment")
    assert "--health-http" in section("Health checks") and "--helped-knob" in section("Plugin wd_helped:")


def test_a_plain_start_imports_nothing_it_does_not_use(tmp_path: Path) -> None:
    # Each of these cost a start time for no use: gettext's locale (for click's help line), shlex
    # (for a plain command), queue (for work no plugin handed off) and grp (for no group name).
    program = tmp_path / f"wd-plain-{os.getpid()}"  # a name nothing running has: --check finds it missing
    program.write_bytes(Path("/bin/sleep").read_bytes())
    program.chmod(0o755)
    script = textwrap.dedent(f"""
        import sys
        from watchdog.cli import main
        try:
            main(["--check", "--status-file", {str(tmp_path / "status.json")!r}, {f"{program} 1"!r}])
        except SystemExit as exc:
            print(exc.code)
        print(*sorted(name for name in ("locale", "shlex", "queue", "grp") if name in sys.modules))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout.splitlines()[-2:] == ["1", ""], done


def test_a_plugins_own_mode_runs_with_garbage_collection_on(tmp_path: Path) -> None:
    # The program keeps collection off while it starts; it is on, with the start's objects
    # frozen, by the time anything runs: a plugin's mode here, the engine otherwise.
    (tmp_path / "wd_gc_mode.py").write_text(textwrap.dedent("""
        import gc
        from watchdog import hookimpl

        @hookimpl
        def watchdog_main(options):
            print(gc.isenabled(), gc.get_freeze_count() > 0)
            return 0
    """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "watchdog", "-p", "wd_gc_mode"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, "True True\n"), done
