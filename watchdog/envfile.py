"""Environment files in Docker's ``--env-file`` format.

One ``KEY=VALUE`` a line, taken as written: no quotes are removed and no
``$VAR`` is expanded, and the value keeps its spaces. A line holding only
``KEY`` passes the watchdog's own value of KEY on (nothing when it has none).
Blank lines and lines starting with ``#`` are skipped; leading white space
is ignored. A key with white space in it, or no key, is an error naming the
file and the line.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping

# An env file is a few lines; a bigger one is a mistake (or /dev/zero), not configuration.
MAX_SIZE = 1024 * 1024


class EnvFileError(ValueError):
    """A line that is not ``KEY=VALUE``: the message names the file and the line."""


def read_env_file(path: str, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The variables ``path`` sets; OSError when it cannot be read, EnvFileError for a bad line.

    Read at each start, on the watchdog's loop: a FIFO or a device would block it
    or fill memory, so the file is opened without blocking and must be a regular one.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise EnvFileError(f"{path}: not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(MAX_SIZE + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_SIZE:
        raise EnvFileError(f"{path}: larger than {MAX_SIZE // 1024} KiB")
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise EnvFileError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    return parse_env(path, text, environ)


def parse_env(path: str, text: str, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    variables: dict[str, str] = {}
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.removesuffix("\r").lstrip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not key:
            raise EnvFileError(f"{path}:{number}: no variable name before '='")
        if any(c.isspace() for c in key):
            raise EnvFileError(f"{path}:{number}: variable name {key!r} contains white space")
        if "\0" in line:
            raise EnvFileError(f"{path}:{number}: a NUL byte")
        if sep:
            variables[key] = value
        elif key in environ:
            variables[key] = environ[key]
    return variables
