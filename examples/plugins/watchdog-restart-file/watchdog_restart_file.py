"""watchdog_restart_file: restart rule NAME whenever PATH is touched."""

import os
from concurrent.futures import Future

import click
from watchdog import hookimpl


class RestartFile:
    def __init__(self):  # one instance per run: its settings and memory live here
        self.paths = {}  # rule -> PATH
        self.seen = {}  # rule -> PATH's last modification time
        self.interval = 1.0

    @hookimpl
    def watchdog_add_options(self):
        return [
            click.Option(["--restart-file"], multiple=True, metavar="NAME=PATH",
                         help="Restart rule NAME when PATH's modification time changes."),
            click.Option(["--restart-file-interval"], type=float, default=1.0,
                         help="Seconds between looks at the restart files."),
        ]

    @hookimpl
    def watchdog_configure(self, config):
        self.paths = dict(config.per_rule("--restart-file", config.options["restart_file"]))
        self.interval = config.options["restart_file_interval"]

    @hookimpl
    def watchdog_started(self, engine):
        for rule, path in self.paths.items():
            self.look(engine, rule, path)

    def look(self, engine, rule, path):
        # os.stat can block for seconds on a network file system: never on the loop.
        def mtime():
            return os.stat(path).st_mtime if os.path.exists(path) else None

        def compare(future: Future):
            now = future.result()
            if rule in self.seen and now != self.seen[rule]:
                engine.restart(rule, f"{path} was touched", planned=True)  # asked for: no failure
            self.seen[rule] = now
            engine.call_later(self.interval, lambda: self.look(engine, rule, path))

        engine.run_in_background(mtime, compare)
