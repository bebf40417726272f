"""Starting, reaping and signalling processes: the only code that forks or kills."""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from watchdog.launch import Launch

PR_SET_CHILD_SUBREAPER = 36
# Python ignores these; a child must start with the defaults, as after a shell.
SIGNALS_TO_RESET = (signal.SIGPIPE, signal.SIGXFSZ)


def spawn(argv: Sequence[str], stdout: int | None = None, stderr: int | None = None,
          env: Mapping[str, str] | None = None, launch: Launch | None = None) -> int:
    """Start ``argv`` in a session of its own, stdin from /dev/null; return its pid.

    Its environment is ours, with ``env`` added over it, unless ``launch`` (the
    rule's ``--user``, ``--env``... see ``watchdog.launch``) makes another.

    A new session keeps the terminal's Ctrl-C away from services (the watchdog
    stops them in order instead) and makes the child's process group easy to
    signal as a whole. Raises OSError when the program cannot be executed.
    """
    environ: Mapping[str, str] | None = launch.environment(env or {}) if launch is not None else None
    if launch is not None and not launch.plain():
        from watchdog.launched import spawn_launched  # subprocess: only for such a launch

        return spawn_launched(argv, stdout, stderr, environ or {**os.environ, **(env or {})}, launch)
    if environ is None:
        environ = {**os.environ, **env} if env else os.environ
    actions: list[tuple[int, ...] | tuple[int, int, str, int, int]] = [
        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0)
    ]
    if stdout is not None:
        actions.append((os.POSIX_SPAWN_DUP2, stdout, 1))
    if stderr is not None:
        actions.append((os.POSIX_SPAWN_DUP2, stderr, 2))
    return os.posix_spawnp(
        argv[0], list(argv), environ, file_actions=actions, setsid=True, setsigdef=SIGNALS_TO_RESET,
    )


def reap() -> list[tuple[int, int]]:
    """Collect every child that has exited: ``(pid, returncode)``, negative when killed."""
    reaped: list[tuple[int, int]] = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        reaped.append((pid, os.waitstatus_to_exitcode(status)))


def become_subreaper() -> bool:
    """Adopt orphaned descendants, as PID 1 does; False where the kernel refuses."""
    import ctypes  # here: as PID 1, a container's watchdog never needs it

    libc = ctypes.CDLL(None, use_errno=True)
    return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)


def signal_group(pgid: int, sig: int) -> bool:
    """Signal a process group; False when it no longer exists."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def kill_each(pids: Sequence[int], sig: int) -> None:
    """Signal each process that still exists."""
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def process_group(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None
