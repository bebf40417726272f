"""Every key of a supervisord configuration, and what the watchdog makes of it: one table.

Each ``Key`` converts a supervisord value into settings of a watchdog rule (or
of the whole run): the keys of a rule's TOML table, which are the per-rule
flags. A setting whose value is not exactly what supervisord does carries a
note, printed as a comment by ``--print-config``. The table in
examples/supervisord/README.md is made from ``KEYS`` (``markdown_table``), and
a test keeps the two equal.
"""

from __future__ import annotations

import os
import shlex
import signal
from collections.abc import Callable
from typing import Any

TRUTHY = ("yes", "true", "on", "1")
FALSY = ("no", "false", "off", "0")


class Unhonoured(ValueError):
    """A value the watchdog cannot honour: one warning naming file, line, key and why."""


class Setting:
    """One watchdog setting: ``key = value`` of a rule's table (``rule`` False: of the run)."""

    def __init__(self, key: str, value: Any, note: str = "", wanted_for: str = "", rule: bool = True) -> None:
        self.key = key
        self.value = value
        self.note = note  # why this is not exactly supervisord's behaviour
        self.wanted_for = wanted_for  # what the key does, for the warning when this build lacks it
        self.rule = rule


class Context:
    """What a conversion may need besides the value: the instance and the whole file."""

    def __init__(self, name: str, childlogdir: str, values: dict[str, str] | None = None) -> None:
        self.name = name  # the rule: the process's name, as supervisord names it
        self.childlogdir = childlogdir
        self.values = {} if values is None else values  # the section's other values, expanded


Convert = Callable[[str, Context], list[Setting]]


class Key:
    def __init__(self, section: str, name: str, meaning: str, watchdog: str, convert: Convert | None = None,
                 default: str | None = None, difference: str = "") -> None:
        self.section = section  # "program", "supervisord", "group"
        self.name = name
        self.meaning = meaning  # what supervisord does with it
        self.watchdog = watchdog  # what the watchdog does (examples/supervisord/README.md)
        self.convert = convert  # None: read while building rules, or nothing to set
        self.default = default  # supervisord's default, converted too when it matters
        # Where the watchdog deliberately does otherwise (examples/supervisord/README.md).
        self.difference = difference


def boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in TRUTHY:
        return True
    if lowered in FALSY:
        return False
    raise ValueError(f"{value!r} is not a boolean (true/false, yes/no, on/off, 1/0)")


def integer(value: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise ValueError(f"{value!r} is not a whole number") from None


def byte_size(value: str) -> int:
    """supervisord's sizes: ``50MB``, ``1KB``, ``0``."""
    text = value.strip().upper()
    for suffix, factor in (("GB", 1024 ** 3), ("MB", 1024 ** 2), ("KB", 1024)):
        if text.endswith(suffix):
            return integer(text[: -len(suffix)]) * factor
    return integer(text)


def exit_codes(value: str) -> list[int]:
    codes = [integer(word) for word in value.split(",") if word.strip()]
    if not codes or any(not 0 <= code <= 255 for code in codes):
        raise ValueError(f"{value!r} is not a list of exit codes 0-255")
    return codes


# --- conversions ---------------------------------------------------------------------


def nothing(value: str, ctx: Context) -> list[Setting]:
    return []


def ignored(why: str) -> Convert:
    """A key with no effect under the watchdog: a comment, never an error."""
    def convert(value: str, ctx: Context) -> list[Setting]:
        return [Setting("", None, why)]
    return convert


def unhonoured(why: str) -> Convert:
    def convert(value: str, ctx: Context) -> list[Setting]:
        raise Unhonoured(why)
    return convert


def unhonoured_unless(default: str, why: str) -> Convert:
    """Fine at supervisord's default (written out or not), a warning otherwise."""
    def convert(value: str, ctx: Context) -> list[Setting]:
        if value.strip().lower() != default.lower():
            raise Unhonoured(why)
        return []
    return convert


def priority(value: str, ctx: Context) -> list[Setting]:
    return [Setting("priority", integer(value))]


def autostart(value: str, ctx: Context) -> list[Setting]:
    return [] if boolean(value) else [Setting("autostart", False)]


RESTART = "the restart policy"


def autorestart(value: str, ctx: Context) -> list[Setting]:
    lowered = value.strip().lower()
    if lowered == "unexpected":
        codes = ",".join(str(code) for code in exit_codes(ctx.values.get("exitcodes", "0")))
        return [Setting("restart", "on-failure", wanted_for=RESTART),
                Setting("success-exit", codes, wanted_for="which exit statuses are a success")]
    return [Setting("restart", "always" if boolean(value) else "no", wanted_for=RESTART)]


def exitcodes(value: str, ctx: Context) -> list[Setting]:
    exit_codes(value)  # checked here; used by autorestart=unexpected
    return []


def startsecs(value: str, ctx: Context) -> list[Setting]:
    seconds = integer(value)
    return [Setting("stable-after", seconds, wanted_for="a run shorter than it is a failed start")]


def startretries(value: str, ctx: Context) -> list[Setting]:
    retries = integer(value)
    # Both try 1 + N times; but the watchdog's 0 means never give up.
    note = "supervisord gives up at the first failed start, the watchdog after one retry" \
        if retries == 0 else ""
    return [Setting("max-restarts", max(retries, 1), note,
                    wanted_for="give up after that many failed starts in a row (FATAL)")]


def stopsignal(value: str, ctx: Context) -> list[Setting]:
    name = value.strip().upper().removeprefix("SIG")
    if name.isdigit() or f"SIG{name}" not in signal.Signals.__members__:
        raise ValueError(f"{value!r} is not a signal name")
    return [] if name == "TERM" else [Setting("stop-signal", name)]


def stopwaitsecs(value: str, ctx: Context) -> list[Setting]:
    return [Setting("grace", integer(value), wanted_for="this rule's time between stop signal and KILL")]


def as_group(value: str, ctx: Context) -> list[Setting]:
    if boolean(value):
        return []
    return [Setting("", None, "the watchdog signals the command's whole process group anyway")]


def user(value: str, ctx: Context) -> list[Setting]:
    return [Setting("user", value.strip(), wanted_for="run the command as that user")]


def directory(value: str, ctx: Context) -> list[Setting]:
    return [Setting("directory", value.strip(), wanted_for="the command's working directory")]


def umask(value: str, ctx: Context) -> list[Setting]:
    try:
        mask = int(value.strip(), 8)
    except ValueError:
        raise ValueError(f"{value!r} is not an octal umask") from None
    return [Setting("umask", f"{mask:04o}", wanted_for="the command's umask")]


def environment(value: str, ctx: Context) -> list[Setting]:
    pairs = key_value_pairs(value)
    if not pairs:
        return []
    return [Setting("env", [f"{key}={val}" for key, val in pairs.items()],
                    wanted_for="variables added to the command's environment")]


def key_value_pairs(value: str) -> dict[str, str]:
    """``KEY="a,b",OTHER=c`` as supervisord reads it (its ``dict_of_key_value_pairs``)."""
    lexer = shlex.shlex(value)
    lexer.wordchars += "/.+-():"
    try:
        tokens = list(lexer)
    except ValueError as exc:
        raise ValueError(f"{value!r}: {str(exc).lower()}") from None
    pairs = {}
    index = 0
    while index < len(tokens):
        triple = tokens[index:index + 3]
        if len(triple) != 3 or triple[1] != "=":
            raise ValueError(f"{value!r} is not KEY=VALUE pairs separated by commas")
        pairs[triple[0]] = triple[2].strip("'\"")
        index += 4
    return pairs


def redirect_stderr(value: str, ctx: Context) -> list[Setting]:
    if not boolean(value):
        return []
    return [Setting("log-stderr", "stdout", wanted_for="the command's stderr joins its stdout")]


STDOUT_DEVICES = ("/dev/stdout", "/dev/fd/1")
STDERR_DEVICES = ("/dev/stderr", "/dev/fd/2")
RELAYED = "the output is relayed to the watchdog's own stdout and stderr as well"


def logfile(stream: str) -> Convert:
    key = "log-file" if stream == "stdout" else "log-file-stderr"
    own_devices = STDOUT_DEVICES if stream == "stdout" else STDERR_DEVICES
    other_devices = STDERR_DEVICES if stream == "stdout" else STDOUT_DEVICES
    wanted = f"write the command's {stream} to a file"

    def convert(value: str, ctx: Context) -> list[Setting]:
        path = value.strip()
        if stream == "stderr" and boolean_or_none(ctx.values.get("redirect_stderr", "false")):
            return [Setting("", None, "stderr is redirected into stdout: stderr_logfile is unused")]
        if path in own_devices:
            return []  # the watchdog relays it to its own, the container's log
        if path in other_devices:
            raise Unhonoured(f"the watchdog relays a command's {stream} to its own {stream}, "
                             f"never to the other stream")
        if path.lower() in ("none", "off"):
            return [Setting("", None, f"{stream}_logfile=NONE: {RELAYED}, not discarded")]
        if path.lower() == "syslog":
            raise Unhonoured("no syslog: the output is relayed to the watchdog's own")
        note = RELAYED
        if stream == "stdout" and "stderr_logfile" not in ctx.values \
                and not boolean_or_none(ctx.values.get("redirect_stderr", "false")):
            note += "; stderr goes to this file too (supervisord: an AUTO file)"
        if path.lower() == "auto":
            path = os.path.join(ctx.childlogdir, f"{ctx.name}-{stream}.log")
            note += "; supervisord adds a random part to an AUTO file's name"
        return [Setting(key, path, note, wanted_for=wanted), *rotation(stream, ctx)]

    return convert


def boolean_or_none(value: str) -> bool:
    try:
        return boolean(value)
    except ValueError:
        return False


def rotation(stream: str, ctx: Context) -> list[Setting]:
    """A log file's ``_maxbytes`` and ``_backups`` (supervisord's defaults 50MB and 10)."""
    maxbytes = byte_size(ctx.values.get(f"{stream}_logfile_maxbytes", "50MB"))
    backups = integer(ctx.values.get(f"{stream}_logfile_backups", "10"))
    note = "one size and count for both streams' files" if stream == "stderr" else ""
    return [Setting("log-max-bytes", maxbytes, note, wanted_for="rotate the log file at that size"),
            Setting("log-backups", backups, note, wanted_for="how many rotated files to keep")]


def maxbytes(value: str, ctx: Context) -> list[Setting]:
    byte_size(value)  # checked here; read by the log file's own conversion
    return []


def backups(value: str, ctx: Context) -> list[Setting]:
    integer(value)  # checked here; read by the log file's own conversion
    return []


def minfds(value: str, ctx: Context) -> list[Setting]:
    return [Setting("rlimit", [f"nofile={integer(value)}"],
                    "supervisord only raises the limit; the watchdog sets it",
                    wanted_for="resource limits of the command")]


def minprocs(value: str, ctx: Context) -> list[Setting]:
    return [Setting("rlimit", [f"nproc={integer(value)}"],
                    "supervisord only raises the limit; the watchdog sets it",
                    wanted_for="resource limits of the command")]


def loglevel(value: str, ctx: Context) -> list[Setting]:
    level = value.strip().lower()
    if level in ("debug", "trace", "blather"):
        return [Setting("verbose", 1, rule=False)]
    if level == "warn":
        return [Setting("quiet", 1, rule=False)]
    if level in ("error", "critical"):
        return [Setting("quiet", 2, rule=False)]
    if level != "info":
        raise ValueError(f"{value!r} is not a log level (critical, error, warn, info, debug)")
    return []


def own_logfile(value: str, ctx: Context) -> list[Setting]:
    path = value.strip()
    if path in (*STDOUT_DEVICES, *STDERR_DEVICES, "/dev/null"):
        return []
    raise Unhonoured("the watchdog writes its own log to stderr (docker logs); redirect it to keep a file")


SERVED = "the watchdog's control socket serves watchdogctl instead"

NO_PIDFILE = "the watchdog writes no pidfile; its pid is in `watchdogctl status --json` (or it is PID 1)"

KEYS: list[Key] = [
    Key("program", "command", "the command line, split like a shell without running one",
        "the rule's `command`, split the same way"),
    Key("program", "process_name", "the process's name (`%(program_name)s` by default)",
        "the rule's name"),
    Key("program", "numprocs", "how many copies to run",
        "one rule per copy, named by `process_name`, all in the group of the program's name",
        difference='each copy is a rule of its own: `watchdogctl restart worker_01`, or `worker:*` for all'),
    Key("program", "numprocs_start", "the first `%(process_num)d`", "the same"),
    Key("program", "priority", "start order, low first (default 999); stop in reverse",
        "`priority`: started in ascending order without waiting for readiness "
        "(use `after` to wait); stopped in reverse", priority,
        difference='supervisord does not wait either; `after` can'),
    Key("program", "autostart", "start with supervisord (default true)",
        "`autostart = false`: the rule is stopped until `watchdogctl start NAME`", autostart),
    Key("program", "autorestart", "restart always, never, or on an unexpected exit (default)",
        "`restart`: always, no or on-failure", autorestart, default="unexpected"),
    Key("program", "exitcodes", "the expected exit statuses (default 0)",
        "`success-exit` with `restart = on-failure`", exitcodes),
    Key("program", "startsecs", "a run shorter than this is a failed start (default 1)",
        "`stable-after`: a shorter run is a failure (backoff, `max-restarts`)", startsecs, default="1"),
    Key("program", "startretries", "failed starts before giving up, FATAL (default 3)",
        "`max-restarts`: then the rule is given up (`--on-give-up exit` to end the container)",
        startretries, default="3",
        difference='startretries=0 gives up after one retry, not at once (0 means never to the watchdog)'),
    Key("program", "stopsignal", "the stop signal (default TERM)", "`stop-signal`", stopsignal),
    Key("program", "stopwaitsecs", "seconds between stop signal and KILL (default 10)",
        "the rule's `grace`", stopwaitsecs, default="10"),
    Key("program", "stopasgroup", "send the stop signal to the process group",
        "always so: a command runs in a process group of its own, which is signalled", as_group,
        difference='stopasgroup=false still signals the group'),
    Key("program", "killasgroup", "send KILL to the process group", "always so", as_group),
    Key("program", "user", "run as this user", "`user`", user),
    Key("program", "directory", "the working directory", "`directory`", directory),
    Key("program", "umask", "the umask (octal)", "`umask`", umask),
    Key("program", "environment", "`KEY=\"value\",...` added to the environment",
        "`env = [\"KEY=value\", ...]`, after [supervisord]'s", environment),
    Key("program", "redirect_stderr", "stderr into the stdout log", "`log-stderr = \"stdout\"`",
        redirect_stderr),
    Key("program", "stdout_logfile", "where stdout goes: a file, AUTO (default), NONE, /dev/stdout",
        "/dev/stdout, /dev/fd/1: relayed to the watchdog's stdout (always so, also when the key is "
        "absent); a file: `log-file` (stderr too, unless stderr_logfile); AUTO: `log-file` in "
        "childlogdir; NONE: nothing more",
        logfile("stdout"),
        difference='no key: relayed, not an AUTO file; NONE: still relayed; a file: relayed as well'),
    Key("program", "stdout_logfile_maxbytes", "rotate the file at this size (default 50MB, 0: never)",
        "`log-max-bytes`", maxbytes),
    Key("program", "stdout_logfile_backups", "rotated files kept (default 10)", "`log-backups`",
        backups),
    Key("program", "stderr_logfile", "where stderr goes, as stdout_logfile",
        "as stdout_logfile, with `log-file-stderr`", logfile("stderr")),
    Key("program", "stderr_logfile_maxbytes", "as stdout's", "`log-max-bytes` (one for both files)",
        maxbytes),
    Key("program", "stderr_logfile_backups", "as stdout's", "`log-backups` (one for both files)",
        backups),
    Key("program", "stdout_capture_maxbytes", "capture mode for events", "not honoured (warning)",
        unhonoured_unless("0", "no process communication events")),
    Key("program", "stderr_capture_maxbytes", "capture mode for events", "not honoured (warning)",
        unhonoured_unless("0", "no process communication events")),
    Key("program", "stdout_events_enabled", "emit output events", "not honoured (warning)",
        unhonoured_unless("false", "no process communication events")),
    Key("program", "stderr_events_enabled", "emit output events", "not honoured (warning)",
        unhonoured_unless("false", "no process communication events")),
    Key("program", "stdout_syslog", "copy stdout to syslog", "not honoured (warning)",
        unhonoured_unless("false", "no syslog: the output goes to the watchdog's own")),
    Key("program", "stderr_syslog", "copy stderr to syslog", "not honoured (warning)",
        unhonoured_unless("false", "no syslog: the output goes to the watchdog's own")),
    Key("program", "serverurl", "SUPERVISOR_SERVER_URL for the command", "ignored (a comment)",
        ignored("no SUPERVISOR_SERVER_URL: watchdogctl finds the control socket itself")),
    Key("supervisord", "environment", "`KEY=\"value\",...` for every program",
        "every rule's `env`, before the program's own",
        difference='`%(host_node_name)s` expands here too (supervisord refuses it)'),
    Key("supervisord", "minfds", "raise the open-files limit to at least this (default 1024)",
        "every rule's `rlimit = [\"nofile=N\"]`", minfds,
        difference='sets the limit; supervisord only raises it'),
    Key("supervisord", "minprocs", "raise the process limit to at least this (default 200)",
        "every rule's `rlimit = [\"nproc=N\"]`", minprocs,
        difference='sets the limit; supervisord only raises it'),
    Key("supervisord", "user", "the user supervisord switches to", "every rule's `user` (where the "
        "program sets none); the watchdog itself stays who it is", user,
        difference='the watchdog does not drop its own privileges'),
    Key("supervisord", "umask", "supervisord's umask, which programs inherit",
        "every rule's `umask` (where the program sets none)", umask),
    Key("supervisord", "nodaemon", "stay in the foreground",
        "always so: the watchdog never daemonizes", nothing),
    Key("supervisord", "logfile", "supervisord's own log", "/dev/stdout, /dev/stderr: as always "
        "(the watchdog logs to stderr); a file: not honoured (warning)", own_logfile),
    Key("supervisord", "logfile_maxbytes", "its rotation", "ignored", nothing),
    Key("supervisord", "logfile_backups", "its rotation", "ignored", nothing),
    Key("supervisord", "loglevel", "its log level", "`verbose` (debug) or `quiet` (warn, error)", loglevel),
    Key("supervisord", "pidfile", "where supervisord writes its pid", "not honoured (warning)",
        unhonoured(NO_PIDFILE)),
    Key("supervisord", "childlogdir", "the directory of AUTO log files", "the same"),
    Key("supervisord", "directory", "where supervisord changes directory when it daemonizes",
        "ignored: the watchdog never daemonizes", nothing),
    Key("supervisord", "identifier", "its name over XML-RPC", "ignored", nothing),
    Key("supervisord", "nocleanup", "keep AUTO log files at start", "ignored", nothing),
    Key("supervisord", "strip_ansi", "strip escape codes from logs", "not honoured (warning)",
        unhonoured_unless("false", "the output is passed through as it is")),
    Key("supervisord", "silent", "no log on stdout in the foreground", "`quiet = 2`",
        lambda value, ctx: [Setting("quiet", 2, rule=False)] if boolean(value) else []),
    Key("group", "programs", "the programs of group x, named `x:name` by supervisorctl",
        "each rule's `group`: `watchdogctl stop x:*` acts on all of them"),
    Key("group", "priority", "the group's priority", "each member's `priority`", priority),
]

BY_SECTION: dict[str, dict[str, Key]] = {}
for _key in KEYS:
    BY_SECTION.setdefault(_key.section, {})[_key.name] = _key

IGNORED_SECTIONS = {
    "unix_http_server": SERVED, "inet_http_server": SERVED, "supervisorctl": SERVED,
    "rpcinterface": SERVED,
}

SECTIONS_TABLE = [
    ("[include] files=", "more files, globs relative to the including file",
     "the same, nested includes too"),
    ("[unix_http_server], [inet_http_server], [supervisorctl], [rpcinterface:x]",
     "supervisorctl's server", "ignored with one info line: `watchdogctl` talks to the control socket"),
    ("[eventlistener:x]", "a program fed events",
     "not run (warning); for the listener that ends supervisord when a program dies, use "
     "`--essential NAME` or `--on-give-up exit`"),
    ("[fcgi-program:x]", "a FastCGI program sharing a socket", "not run (warning)"),
]


def markdown_table() -> str:
    """The table of examples/supervisord/README.md: every key, what supervisord and the watchdog do."""
    lines = ["| Section | Key | In supervisord | Under the watchdog | Difference |", "|---|---|---|---|---|"]
    for key in KEYS:
        cells = [f"[{key.section}]", f"`{key.name}`", key.meaning, key.watchdog, key.difference]
        lines.append("| " + " | ".join(cells) + " |")
    for section, meaning, watchdog in SECTIONS_TABLE:
        lines.append(f"| {section} | | {meaning} | {watchdog} | |")
    return "\n".join(lines)
