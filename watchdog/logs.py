"""The watchdog's own log: one line per event on stderr, as text or JSON.

Plugins log through ``logging.getLogger("watchdog")`` and may attach
``extra={"rule": ..., "event": ..., "pid": ..., "status": ...}`` so that both
formats carry those fields; ``"output"`` (a list of lines, a crash's last
output) follows the text line indented, or is the JSON field ``output``.

Lines go through ``watchdog.writer``: a reader of stderr that stops costs
dropped lines (counted, then said), never a blocked watchdog.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from watchdog.escapes import one_line
from watchdog.writer import NonBlockingWriter, outputs

logger = logging.getLogger("watchdog")
EVENT_FIELDS = ("rule", "event", "pid", "status")
OUTPUT_INDENT = "    | "


def timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


class TextFormatter(logging.Formatter):
    """``2026-01-01T00:00:00.000+00:00 watchdog: sshd: exited pid=12 status=-9``"""

    def format(self, record: logging.LogRecord) -> str:
        rule = getattr(record, "rule", None)
        parts = [timestamp(record), "watchdog:"]
        if record.levelno >= logging.WARNING:
            parts.append(record.levelname.lower() + ":")
        if rule is not None:
            parts.append(f"{rule}:")
        parts.append(record.getMessage())
        for key in ("pid", "status"):
            value = getattr(record, key, None)
            if value is not None:
                parts.append(f"{key}={value}")
        line = one_line(" ".join(parts))
        for text in getattr(record, "output", None) or ():
            line += "\n" + OUTPUT_INDENT + one_line(text)
        if record.exc_info:  # -v with a plugin's failure, or a core error
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, rule, event, pid, status, message."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {"timestamp": timestamp(record), "level": record.levelname.lower()}
        for key in EVENT_FIELDS:
            entry[key] = getattr(record, key, None)
        entry["message"] = record.getMessage()
        output = getattr(record, "output", None)
        if output:
            entry["output"] = list(output)
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        import json  # here: only --log-format json needs it, and every start would pay

        return json.dumps(entry)


class WriterHandler(logging.Handler):
    """Each record as one write to a ``watchdog.writer.NonBlockingWriter``."""

    def __init__(self, writer: NonBlockingWriter) -> None:
        super().__init__()
        self.writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.writer.write((self.format(record) + "\n").encode("utf-8", "backslashreplace"))
        except Exception:
            self.handleError(record)


def setup_logging(fmt: str = "text", level: int = logging.INFO) -> None:
    handler = WriterHandler(outputs().stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
