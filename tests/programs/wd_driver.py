"""A test plugin that lets a test drive the engine's verbs through a FIFO.

Loaded with ``-p wd_driver:Driver`` (tests/programs on PYTHONPATH). The test
writes lines to the FIFO named by ``WD_DRIVER_FIFO``; the plugin reads them on
the loop (``engine.add_reader``) and acts:

    restart NAME | stop NAME | start NAME | signal NAME SIGNAL
    sleep-in-background SECONDS MARKER   (blocking work; MARKER is written when it ends)
    timer SECONDS MARKER                 (MARKER is written by the timer's callback)

Every line's outcome is appended to ``WD_DRIVER_FIFO.out``.
"""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import Future
from pathlib import Path

from watchdog import hookimpl
from watchdog.api import EngineAPI


class Driver:
    def __init__(self) -> None:
        self.fifo = os.environ["WD_DRIVER_FIFO"]
        self.out = Path(self.fifo + ".out")
        self.engine: EngineAPI | None = None
        self.buffer = b""
        self.fd = -1

    @hookimpl
    def watchdog_started(self, engine: EngineAPI) -> None:
        self.engine = engine
        self.fd = os.open(self.fifo, os.O_RDWR | os.O_NONBLOCK)  # RDWR: no EOF between writers
        engine.add_reader(self.fd, self.read)

    def note(self, text: str) -> None:
        with self.out.open("a") as f:
            f.write(text + "\n")

    def read(self) -> None:
        assert self.engine is not None
        try:
            self.buffer += os.read(self.fd, 4096)
        except BlockingIOError:
            return
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            self.act(line.decode().split())

    def act(self, words: list[str]) -> None:
        engine = self.engine
        assert engine is not None
        rules = {rule.name: rule for rule in engine.rules}
        verb, *args = words
        if verb == "restart":
            engine.restart(rules[args[0]], "asked by the test")
        elif verb == "stop":
            engine.stop(rules[args[0]], "asked by the test")
        elif verb == "start":
            engine.start(rules[args[0]])
        elif verb == "signal":
            count = engine.signal(rules[args[0]], signal.Signals["SIG" + args[1]])
            self.note(f"signalled {count}")
            return
        elif verb == "sleep-in-background":
            seconds, marker = float(args[0]), args[1]

            def done(future: Future[float]) -> None:
                Path(marker).write_text(f"{future.result()}\n")

            engine.run_in_background(lambda: time.sleep(seconds) or seconds, done)
        elif verb == "timer":
            marker = args[1]
            engine.call_later(float(args[0]), lambda: Path(marker).write_text("due\n"))
        self.note(f"done {' '.join(words)}")
