"""Print what supervisord itself makes of a configuration, as JSON: the tests' reference.

Run by a Python that has the ``supervisor`` package (Debian's, or the bench extra):
``python3 reference.py FILE``. One object per process, with the values the
watchdog's translation should give, in the watchdog's keys.
"""

from __future__ import annotations

import json
import pwd
import signal
import sys

from supervisor.datatypes import Automatic, RestartUnconditionally, RestartWhenExitUnexpected
from supervisor.options import EventListenerPoolConfig, ServerOptions


def logfile(value: object) -> str | None:
    if value is None:  # NONE: the watchdog relays the output anyway, and writes no file
        return None
    if value is Automatic:  # written AUTO, or no key at all: the test tells them apart
        return "AUTO"
    if value in ("/dev/stdout", "/dev/fd/1", "/dev/stderr", "/dev/fd/2"):
        return None
    return str(value)


def main(path: str) -> None:
    options = ServerOptions()
    options.realize(["-c", path])
    processes = []
    for group in options.process_group_configs:
        if isinstance(group, EventListenerPoolConfig):
            continue
        for proc in group.process_configs:
            keys: dict[str, object] = {"command": proc.command}
            if proc.priority != 999:
                keys["priority"] = proc.priority
            if not proc.autostart:
                keys["autostart"] = False
            if proc.autorestart is RestartUnconditionally:
                keys["restart"] = "always"
            elif proc.autorestart is RestartWhenExitUnexpected:
                keys["restart"] = "on-failure"
                keys["success-exit"] = ",".join(str(code) for code in proc.exitcodes)
            else:
                keys["restart"] = "no"
            keys["stable-after"] = proc.startsecs
            keys["max-restarts"] = max(proc.startretries, 1)
            if proc.stopsignal != signal.SIGTERM:
                keys["stop-signal"] = signal.Signals(proc.stopsignal).name.removeprefix("SIG")
            keys["grace"] = proc.stopwaitsecs
            if proc.uid is not None:
                keys["user"] = pwd.getpwuid(proc.uid).pw_name
            if proc.directory:
                keys["directory"] = proc.directory
            if proc.umask is not None:
                keys["umask"] = f"{proc.umask:04o}"
            if proc.environment:
                keys["env"] = sorted(f"{key}={value}" for key, value in proc.environment.items())
            if proc.redirect_stderr:
                keys["log-stderr"] = "stdout"
            out = logfile(proc.stdout_logfile)
            if out is not None:
                keys["log-file"] = out
            err = logfile(proc.stderr_logfile)
            if err is not None and not proc.redirect_stderr:
                keys["log-file-stderr"] = err
            if group.name != proc.name:
                keys["group"] = group.name
            processes.append({"name": proc.name, "keys": keys})
    json.dump({"processes": processes, "childlogdir": options.childlogdir}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
