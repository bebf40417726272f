"""The ``watchdog`` command: click options from the core and from every plugin."""

from __future__ import annotations

import gc
import logging
import os
import sys
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NoReturn, cast

import click

from watchdog import (
    __version__,
    helpsections,
    launch,
    logoptions,
    ordering,
    ownership,
    runpolicy,
)
from watchdog.ambiguity import check_distinguishable
from watchdog.config import Config
from watchdog.configfile import (
    ConfigFile,
    check_options,
    collect_rules,
    drop_unknown,
    is_per_rule,
    locate,
    merge_per_rule,
    read_config_file,
    takes_default,
)
from watchdog.engine import Engine
from watchdog.escapes import one_line
from watchdog.events import pidfd_supported
from watchdog.exits import EXIT_NOT_RUNNING, EXIT_OK
from watchdog.helpsections import format_sections
from watchdog.hooks import SafeHooks
from watchdog.logfiles import LogFiles
from watchdog.logs import logger, setup_logging
from watchdog.manager import PluginManager, describe_plugins, make_plugin_manager
from watchdog.matchers import Matchers
from watchdog.oneline import exit_status
from watchdog.params import DefaultOrPerRule, EnvList, Seconds, split_env_values
from watchdog.rules import make_rules, parse_forwarded, parse_signal
from watchdog.writer import outputs

HELP = """Start each COMMAND and keep it running.

Each COMMAND is one argument holding a command line, split like a shell
would split it (no shell runs unless --shell). A command is running while a
process named after the basename of its first word is in the process table:
'/etc/init.d/apache2 start' is kept alive by any process named apache2. When
none is found the command runs again.

\b
Example:
  watchdog /usr/sbin/sshd '/etc/init.d/apache2 start'

Exit status: 0 after a clean stop (or --once/--check with every rule
running), 1 when --once/--check finds a rule not running, 2 on a usage
error, 3 after giving up on a rule with --on-give-up exit, 4 when services
had to be killed after the --grace period, 5 when an --init task failed, an
--essential service's own status when it ends (6 when that cannot be known),
7 when a rule became unhealthy with --on-unhealthy NAME=exit, 70 after an
internal error (the services were stopped first).
"""


ENVVAR_PREFIX = "WATCHDOG"
DEFAULT_INTERVAL = 60.0  # every exit wakes the loop; the scan is a backstop
FALLBACK_INTERVAL = 5.0  # without pidfds, the scan is how adopted daemons' deaths are seen
DEFAULT_GRACE = 8.0
LOG_LEVELS = {-2: logging.ERROR, -1: logging.WARNING, 0: logging.INFO, 1: logging.DEBUG}


class WatchdogCommand(click.Command):
    """A click command whose errors are one line and exit 2, never a traceback."""

    def __init__(self, *args: Any, setup: Setup | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.setup = setup
        self._help: click.Option | None = None

    def get_help_option(self, ctx: click.Context) -> click.Option | None:
        # click's own asks gettext for its one line of help, and gettext's first call
        # imports locale and looks for catalogues: 2 ms of every start, for English.
        # One object for the command's life, as click's: eager options run in its order.
        names = self.get_help_option_names(ctx)
        if not names or not self.add_help_option:
            return None
        if self._help is None:
            self._help = click.Option([name for name in ctx.help_option_names if name in names],
                                      is_flag=True, expose_value=False, is_eager=True,
                                      help="Show this message and exit.", callback=show_help)
        return self._help

    def main(  # type: ignore[override]
        self, args: Sequence[str] | None = None, prog_name: str | None = None,
        standalone_mode: bool = True, **extra: Any,
    ) -> Any:
        def aborted() -> int:
            click.echo("watchdog: aborted", err=True)
            return 1

        code = exit_status(lambda: super(WatchdogCommand, self).main(
            args, prog_name, standalone_mode=False, **extra), "watchdog", aborted)
        outputs().flush(1.0)  # our last lines, if the reader takes them soon
        if standalone_mode:
            sys.exit(code or 0)
        return code

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections = self.setup.sections if self.setup is not None else {}
        format_sections(ctx, formatter, self.get_params(ctx), sections)


def show_help(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(ctx.get_help(), color=ctx.color)
        ctx.exit()


def core_options(strategies: Sequence[str], default_strategy: str) -> list[click.Parameter]:
    return [
        click.Argument(["commands"], nargs=-1, metavar="COMMAND..."),
        click.Option(
            ["--rule"], multiple=True, metavar="NAME=COMMAND",
            help="A command with a rule name of your choice (to run two of one program).",
        ),
        click.Option(
            ["--match"], type=click.Choice(sorted(strategies)), default=default_strategy,
            show_default=True,
            help="How rules that no per-rule flag sets are matched.",
        ),
        click.Option(
            ["--interval"], type=Seconds(0.01), metavar="SECONDS",
            help="Seconds between full checks, the backstop for what no event reports. "
                 "[default: 60 with pidfds, which report every exit at once; 5 without]",
        ),
        click.Option(["--once"], is_flag=True, help="Start what is missing, wait, exit 0 if all run."),
        click.Option(["--check"], is_flag=True, help="Start nothing; exit 0 if all run, else 1."),
        click.Option(["--shell"], is_flag=True, help="Run each command with /bin/sh -c."),
        click.Option(["--prefix"], is_flag=True,
                     help="Prefix each line a service writes with its rule name."),
        click.Option(
            ["--grace"], multiple=True, metavar="[NAME=]SECONDS", type=DefaultOrPerRule(Seconds()),
            help="On stop, wait this long before SIGKILL (Docker waits 10); NAME=SECONDS for "
                 f"one rule, e.g. db=30. [default: {DEFAULT_GRACE:g}]",
        ),
        click.Option(
            ["--stop-signal"], multiple=True, metavar="NAME=SIGNAL",
            help="Signal that stops rule NAME (default TERM), e.g. nginx=QUIT.",
        ),
        *ordering.options(),
        *launch.options(),
        *runpolicy.options(),
        *logoptions.options(),
        click.Option(
            ["--forward-signals"], multiple=True, metavar="NAME=SIGNALS",
            help="Which of HUP, USR1, USR2, WINCH the watchdog passes on to rule NAME when it "
                 "receives them, e.g. web=HUP,USR1 or worker=none (default: all four).",
        ),
        click.Option(
            ["--scope"], type=click.Choice(ownership.SCOPES),
            help="Which processes matchers look at: the watchdog's own descendants, or every "
                 "process on the host. As PID 1 of a namespace: the whole namespace. "
                 "[default: descendants; host with --once and --check, which start nothing "
                 "that outlives them as their own]",
        ),
        click.Option(
            ["--no-pidfd"], is_flag=True,
            help="Do not use pidfds: adopted processes' exits are seen at each --interval.",
        ),
        click.Option(
            ["-p", "--plugin", "plugins"], multiple=True, metavar="MODULE",
            envvar=f"{ENVVAR_PREFIX}_PLUGIN",  # the name the pre-scan that loads plugins reads
            help="Load a plugin by its import name: a module, or MODULE:CLASS.",
        ),
        click.Option(
            ["--disable"], multiple=True, metavar="NAME",
            help="Do not load the plugin NAME (built-in or entry point).",
        ),
        click.Option(
            ["--config"], metavar="FILE",
            help="Read options and rules from a TOML file, or from a supervisord configuration "
                 "(told apart by its sections); flags override it.",
        ),
        click.Option(
            ["--print-config"], is_flag=True, allow_from_autoenv=False,
            help="Print the resolved options and rules as TOML for --config, with where each "
                 "value came from, and exit.",
        ),
        click.Option(
            ["--log-format"], type=click.Choice(["text", "json"]), default="text",
            show_default=True, help="The watchdog's own log lines: text, or one JSON object each.",
        ),
        click.Option(["-v", "--verbose"], count=True, help="More log lines (debug)."),
        click.Option(["-q", "--quiet"], count=True, help="Fewer log lines: -q warnings, -qq errors."),
        click.Option(
            ["--list-plugins"], is_flag=True, allow_from_autoenv=False,
            help="List every plugin: name, origin, hooks, and whether it is disabled.",
        ),
        click.Option(
            ["--version"], is_flag=True, expose_value=False, is_eager=True, allow_from_autoenv=False,
            callback=show_version, help="Show the version and exit.",
        ),
    ]


def show_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        click.echo(f"watchdog {__version__}")
        ctx.exit(0)


class Setup:
    """What start-up builds before the flags are parsed, and how parsed flags become rules.

    Reload builds another one from the same sources (``reread``), so a file
    is read and checked the same way at start and at every reload.
    """

    def __init__(self, pm: PluginManager, config_file: ConfigFile | None = None) -> None:
        self.matchers = Matchers.of(pm)
        if not self.matchers.by_name:
            raise click.UsageError("no matcher is loaded: every matcher plugin is disabled")
        self.pm = pm
        self.config_file = config_file
        # The earliest plugin's matcher (the built-in basename, unless disabled) is the default.
        default_matcher = next(iter(self.matchers.by_name))
        self.params = core_options(list(self.matchers.by_name), default_matcher)
        matcher_flags = self.matchers.options()
        self.params.extend(matcher_flags)
        # Where each option shows in --help: matcher flags with the rules, a plugin's under its heading.
        self.sections = {**helpsections.CORE, **{p.name: helpsections.RULES for p in matcher_flags if p.name}}
        for impl in reversed(pm.hook.watchdog_add_options.get_hookimpls()):  # pluggy's call order
            for param in cast(list[click.Parameter], impl.function()):
                self.params.append(param)
                if param.name:
                    self.sections[param.name] = helpsections.plugin_section(impl.plugin_name)
        for param in self.params:
            # Every option can come from WATCHDOG_<OPTION>, but for one-off actions
            # (--version, --status...): an image that sets WATCHDOG_VERSION=1 must
            # still start its services.
            if isinstance(param, click.Option) and param.allow_from_autoenv:
                param.show_envvar = True
                if param.multiple and type(param.type) is click.types.StringParamType and param.name:
                    assignments = is_per_rule(param) and not takes_default(param)
                    param.type = EnvList(f"{ENVVAR_PREFIX}_{param.name.upper()}", assignments)
        self.file_defaults: dict[str, Any] = {}
        self.file_rules: list[str] = []
        if config_file is not None:
            drop_unknown(config_file, self.params)
            self.file_defaults = check_options(config_file, self.params)
            self.file_rules = collect_rules(config_file, self.params)

    def configure(self, options: dict[str, Any], reread: Callable[[], Config] | None = None) -> Config:
        """Rules from the parsed flags, each given its matcher and its plugins' settings."""
        config_file = self.config_file
        try:
            rules = make_rules(options["commands"], options["rule"], shell=options["shell"],
                               from_file=self.file_rules)
        except click.UsageError as exc:
            raise self.located(exc) from None
        if config_file is not None:
            for name, values in config_file.per_rule.items():
                options[name] = merge_per_rule(options[name], values)
        config = Config(rules=rules, options=options, reread=reread)
        try:
            for rule, text in config.per_rule("--stop-signal", options["stop_signal"]):
                rule.stop_signal = parse_signal(f"--stop-signal {rule.name}", text)
            for rule, text in config.per_rule("--forward-signals", options["forward_signals"]):
                rule.forward_signals = parse_forwarded(f"--forward-signals {rule.name}", text)
            # The bare --grace stays an option (a change takes a restart); NAME=SECONDS goes on the rule.
            options["grace"], graces = config.parse_with_default("--grace", Seconds(), DEFAULT_GRACE)
            for rule, grace in graces:
                rule.grace = grace
            ordering.configure(config)
            launch.configure(config)
            runpolicy.configure(config)
            logoptions.configure(config)
            self.matchers.configure(config, options["match"])
            self.pm.hook.watchdog_configure(config=config)
        except click.UsageError as exc:
            where = locate(config_file, exc.message) if config_file is not None else None
            if where is None:
                raise
            raise click.UsageError(f"{where}: {exc.message}") from None
        check_distinguishable(rules, self.matchers)
        return config


    def located(self, exc: click.UsageError) -> click.UsageError:
        """A bad command of the file's, with the file and line it came from."""
        if self.config_file is not None:
            for value in self.file_rules:
                name, _, command = value.partition("=")
                if repr(command) in exc.message:
                    return click.UsageError(f"{self.config_file.where('command', name)}: {exc.message}")
        return exc


def make_cli(pm: PluginManager, config_file: ConfigFile | None = None,
             args: Sequence[str] | None = None) -> WatchdogCommand:
    """The ``watchdog`` command, with the options of every plugin in ``pm``.

    With ``config_file``, its values are the options' defaults (so flags and
    environment variables win) and its rules join the command line's. With
    ``args`` (the command line it will be given), plugins can reload it.
    """
    setup = Setup(pm, config_file)
    again = None if args is None else partial(reread, list(args))

    def run(**options: Any) -> int:
        resume_collection()
        if options["once"] and options["check"]:
            raise click.UsageError("--once and --check exclude each other")
        verbosity = options["verbose"] - options["quiet"]
        setup_logging(options["log_format"], LOG_LEVELS[max(-2, min(1, verbosity))])
        if config_file is not None:
            for level, message in config_file.notes:
                logger.log(level, "%s", message, extra={"event": "config"})
        if options["list_plugins"]:
            click.echo(describe_plugins(pm, options["disable"]))
            return EXIT_OK
        if options["print_config"]:
            from watchdog import printconfig  # a one-off: no run imports it

            click.echo(printconfig.render(click.get_current_context(), setup.params, options,
                                          config_file, setup.file_rules), nl=False)
            return EXIT_OK
        mode_status = pm.hook.watchdog_main(options=options)
        if mode_status is not None:
            return int(mode_status)
        config = setup.configure(options, again)
        rules = config.rules
        use_pidfd = not options["no_pidfd"] and pidfd_supported()
        interval = options["interval"] or (DEFAULT_INTERVAL if use_pidfd else FALLBACK_INTERVAL)
        engine = Engine(
            rules, SafeHooks(pm), setup.matchers, interval=interval, grace=options["grace"],
            use_pidfd=use_pidfd, prefix=options["prefix"], timestamps=options["timestamps"],
            log_files=LogFiles(),
            init_tasks=ordering.init_tasks(options["init"], options["shell"]),
            scope=ownership.scope_root(options["scope"], options["once"] or options["check"]),
        )
        if options["check"]:
            missing = engine.missing_rules()
            for rule in missing:
                click.echo(one_line(f"missing: {rule.name} (no {engine.describe(rule).removeprefix('a ')})"))
            return EXIT_NOT_RUNNING if missing else EXIT_OK
        return engine.run(once=options["once"])

    return WatchdogCommand(
        "watchdog", params=setup.params, callback=run, help=HELP, setup=setup,
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100,
                          "auto_envvar_prefix": ENVVAR_PREFIX, "default_map": setup.file_defaults},
        epilog=f"watchdog {__version__}. Plugins: watchdog --disable NAME, -p MODULE.",
    )


def resume_collection() -> None:
    """Garbage collection back on, if the program kept it off for its start (watchdog.execprobe).

    What the start made lives as long as the run: frozen, no collection looks at it
    again, and the first one does not walk it all (5 to 15 ms). The few hundred
    objects it left unreachable stay.
    """
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def reread(args: Sequence[str]) -> Config:
    """The Config that ``watchdog ARGS`` gives now: the file read again, fresh plugin objects.

    Nothing runs: plugins are configured, never started. Raises
    ``click.ClickException`` for anything start-up would have refused.
    """
    early = prescan(args)
    pm = make_plugin_manager(early.plugins, early.disabled)
    config_file = read_config_file(early.config) if early.config else None
    command = make_cli(pm, config_file, args)
    with command.make_context("watchdog", list(args)) as ctx:
        options = dict(ctx.params)
    assert command.setup is not None
    return command.setup.configure(options, partial(reread, list(args)))


class Early:
    """What must be known before the command line can be built."""

    def __init__(self, plugins: list[str], disabled: list[str], config: str | None) -> None:
        self.plugins = plugins
        self.disabled = disabled
        self.config = config


def prescan(args: Sequence[str]) -> Early:
    """``-p``, ``--disable`` and ``--config`` (flags, else ``WATCHDOG_*`` variables)."""
    wanted = {"-p": [], "--plugin": [], "--disable": [], "--config": []}  # type: dict[str, list[str]]
    words = iter(args)
    for word in words:
        if word == "--":
            break
        flag, sep, value = word.partition("=")
        if sep and flag in wanted:
            wanted[flag].append(value)
        elif word in wanted:
            wanted[word].append(next(words, ""))
        elif word.startswith("-p") and len(word) > 2 and not word.startswith("--"):
            wanted["-p"].append(word[2:])
    # Flags win; the environment counts only where no flag was given, as for click.
    modules = wanted["-p"] + wanted["--plugin"] or env_values("WATCHDOG_PLUGIN")
    disabled = wanted["--disable"] or env_values("WATCHDOG_DISABLE")
    config = (wanted["--config"] or [os.environ.get("WATCHDOG_CONFIG", "")])[-1] or None
    return Early(modules, disabled, config)


def env_values(envvar: str) -> list[str]:
    """Split as click splits it, so that the prescan and the command line agree."""
    return split_env_values(envvar, os.environ.get(envvar, ""), assignments=False)


def main(args: Sequence[str] | None = None) -> NoReturn:
    args = list(sys.argv[1:] if args is None else args)
    try:
        early = prescan(args)
        pm = make_plugin_manager(early.plugins, early.disabled)
        config_file = read_config_file(early.config) if early.config else None
        command = make_cli(pm, config_file, args)
    except click.ClickException as exc:
        click.echo(f"watchdog: {one_line(exc.format_message())}", err=True)
        sys.exit(exc.exit_code)
    command.main(args, prog_name="watchdog")
    sys.exit(0)
