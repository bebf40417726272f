"""A test plugin whose configuration takes long while a file says so: a slow reload.

Loaded with ``-p wd_slow_reload:SlowReload``. While the file named by
``WD_SLOW_RELOAD_FILE`` holds a number, configuring (as a reload does) sleeps
that many seconds first. At start-up the file is not there yet.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from watchdog import hookimpl
from watchdog.config import Config


class SlowReload:
    @hookimpl
    def watchdog_configure(self, config: Config) -> None:
        path = Path(os.environ["WD_SLOW_RELOAD_FILE"])
        if path.exists():
            time.sleep(float(path.read_text()))
