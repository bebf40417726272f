"""Control characters escaped, so that what others said prints as one line.

A name, a path, a pattern or a service's output may hold a newline, a carriage
return or an escape sequence: any of them could start what looks like a line
of its own in a log or a status table, or drive the terminal that shows it.
A translation table rather than a regular expression: ``watchdog --status``
imports this, and ``re`` would cost it more than the whole escaping does.
"""

from __future__ import annotations

from typing import Any

NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# C0 and C1 controls, and Unicode's line and paragraph separators.
CONTROLS = [*range(0x00, 0x20), *range(0x7F, 0xA0), 0x2028, 0x2029]
ESCAPES = {code: NAMED_ESCAPES.get(chr(code))
           or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}") for code in CONTROLS}


def one_line(text: str) -> str:
    """``text`` with every control character escaped, so it prints as one line."""
    return text.translate(ESCAPES)


def has_control(text: str) -> bool:
    return one_line(text) != text


def printable(value: Any) -> Any:
    """``value`` (JSON-like: dicts, lists, strings...) with every string passed through
    ``one_line``: what a service or another process said can neither break a table's
    lines nor send the terminal an escape sequence."""
    if isinstance(value, str):
        return one_line(value)
    if isinstance(value, dict):
        return {printable(key): printable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [printable(item) for item in value]
    return value
