"""systemd's notify protocol on the wire: the socket, its datagrams and who sent them.

Datagrams are ``KEY=VALUE`` lines of UTF-8 text, at most ``MAX_DATAGRAM``
bytes. The receiving socket asks the kernel for each sender's credentials
(``SO_PASSCRED``): the pid in them is checked, not forged (only root may
claim another pid). File descriptors a sender passes are closed at once.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator

from watchdog.snapshot import read_stat

MAX_DATAGRAM = 4096  # systemd's limit too; a larger one is dropped
UCRED = struct.Struct("iII")  # pid, uid, gid
MAX_STATUS = 200  # characters of STATUS= kept
MAX_ANCESTRY = 64  # parents walked up from a sender before calling it foreign


def bind(path: str) -> socket.socket:
    """A non-blocking datagram socket at ``path`` that receives its senders' credentials."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        sock.bind(path)
        os.chmod(path, 0o666)  # who may speak is decided by the sender's pid, not the mode
    except OSError:
        sock.close()
        raise
    return sock


def receive(sock: socket.socket, at_most: int) -> Iterator[tuple[int | None, bytes | None]]:
    """``(sender pid, datagram)`` for what is queued now, at most ``at_most`` of them;
    the datagram is None when it was over ``MAX_DATAGRAM`` bytes."""
    for _ in range(at_most):
        try:
            data, ancillary, flags, _ = sock.recvmsg(MAX_DATAGRAM + 1, socket.CMSG_SPACE(UCRED.size))
        except (BlockingIOError, InterruptedError):
            return
        pid = sender_pid(ancillary)
        if flags & socket.MSG_TRUNC or len(data) > MAX_DATAGRAM:
            yield pid, None
        else:
            yield pid, data


def sender_pid(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    """The pid in SCM_CREDENTIALS; any passed file descriptors are closed (we keep none)."""
    pid = None
    for level, kind, data in ancillary:
        if level != socket.SOL_SOCKET:
            continue
        if kind == socket.SCM_CREDENTIALS and len(data) >= UCRED.size:
            pid = UCRED.unpack_from(data)[0]
        elif kind == socket.SCM_RIGHTS:
            for (fd,) in struct.iter_unpack("i", data[: len(data) - len(data) % 4]):
                try:
                    os.close(fd)
                except OSError:
                    pass
    return pid


def parse(data: bytes) -> dict[str, str] | None:
    """``KEY=VALUE`` lines, or None when the datagram is not such text."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    fields = {}
    for line in text.split("\n"):
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep or not key or not key.replace("_", "").isalnum() or not key.isupper():
            return None
        fields[key] = value
    return fields or None


def parent_of(pid: int) -> int | None:
    proc = read_stat("/proc", str(pid))
    return proc.ppid if proc is not None else None


def descends(pid: int, roots: set[int]) -> bool:
    """Whether ``pid`` is one of ``roots`` or a descendant of one."""
    current: int | None = pid
    for _ in range(MAX_ANCESTRY):
        if current is None or current <= 1:
            return False
        if current in roots:
            return True
        current = parent_of(current)
    return False


def printable(text: str) -> str:
    return "".join(ch if ch.isprintable() else " " for ch in text)[:MAX_STATUS]


