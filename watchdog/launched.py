"""Starting a command with what posix_spawn cannot do: a directory, a umask, limits, another user.

Apart from ``watchdog.processes`` because it needs subprocess, which a run
whose rules set none of these never imports.
"""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from watchdog.launch import Launch


class Started(subprocess.Popen[bytes]):
    """A Popen that leaves its child to ``reap``.

    A Popen dropped while its child runs joins subprocess's list of children to
    wait for later, and would then reap one of ours, or a stranger with its pid.
    """

    def __del__(self) -> None:
        pass


def spawn_launched(argv: Sequence[str], stdout: int | None, stderr: int | None,
                   environ: Mapping[str, str], launch: Launch) -> int:
    """``spawn`` for what posix_spawn cannot do: a directory, a umask, limits, another user.

    subprocess forks and does these in C, the user switch too (supplementary
    groups, group, user, in that order); with limits, they and the user switch
    run in Python in the child instead (``Launch.preexec``), limits first.
    """
    try:
        child = Started(
            list(argv), stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, env=environ,
            cwd=launch.directory, umask=-1 if launch.umask is None else launch.umask,
            start_new_session=True, restore_signals=True, close_fds=False, preexec_fn=launch.preexec,
            **launch.credentials(),
        )
    except subprocess.SubprocessError as exc:  # the preexec function failed: the child is gone
        raise OSError(errno.EPERM, f"cannot set the user or the limits ({exc})") from None
    except OSError as exc:
        if launch.directory is not None and exc.filename == launch.directory:
            raise type(exc)(exc.errno, f"directory {launch.directory}: {exc.strerror}",
                            launch.directory) from None
        raise
    return child.pid
