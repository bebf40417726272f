"""Files the watchdog writes or trusts: only in directories no other user can change.

The status file and the control socket live in a directory the watchdog
checks before it writes there and before ``watchdog --status`` or
``watchdogctl`` believe what they find there: the directory must be owned by
root or by the user running us, and writable by no group and no other user.
Another user can then neither put a file of theirs in its place nor swap one
of ours for a symlink between two system calls. On top of that, nothing is
opened through a symlink (``O_NOFOLLOW``, names resolved relative to the
directory's descriptor), modes are set on the open descriptor (``fchmod``),
and nothing is opened that is not a regular file: a FIFO is opened without
blocking and refused, so it cannot hang PID 1.

"Trusted" means owned by root or by our own effective uid: the rule sshd
applies to ``~/.ssh``. A watchdog run by another user is no one we trust.
"""

from __future__ import annotations

import os
import stat

# A status file holds one line per rule field: 10,000 rules make about 5 MB.
MAX_READ = 32 * 1024 * 1024
OPEN_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class Untrusted(ValueError):
    """A directory or file another user could have made or changed: not read, not written."""


def trusted_uid(uid: int) -> bool:
    return uid in (0, os.geteuid())


def owner_words(uid: int) -> str:
    return f"uid {uid}, neither root nor uid {os.geteuid()}"


def check_directory_info(directory: str, info: os.stat_result) -> None:
    """Raise Untrusted unless ``info`` is a directory only root or we can change."""
    if not stat.S_ISDIR(info.st_mode):
        raise Untrusted(f"{directory} is not a directory")
    if not trusted_uid(info.st_uid):
        raise Untrusted(f"{directory} belongs to {owner_words(info.st_uid)}")
    if info.st_mode & 0o022:
        raise Untrusted(f"{directory} is writable by other users (mode {info.st_mode & 0o7777:o}): "
                        "give the watchdog a directory of its own")


def check_directory(directory: str) -> None:
    """Raise Untrusted (a ValueError) for a directory someone else could use to swap our files."""
    check_directory_info(directory, os.stat(directory))


def default_directory() -> str:
    """Where the status file and the control socket go by default.

    ``/run/watchdog`` for root. Otherwise ``$XDG_RUNTIME_DIR/watchdog`` when
    that is set to a directory of ours that only we may use (as the XDG
    specification requires: ours, mode 0700), else ``$TMPDIR/watchdog-UID``,
    made 0700; one another user made first is refused when used, never trusted.
    """
    if os.geteuid() == 0:
        return "/run/watchdog"
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(runtime):
        try:
            info = os.stat(runtime)
        except OSError:
            pass
        else:
            if stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid() and not info.st_mode & 0o077:
                return os.path.join(runtime, "watchdog")
    import tempfile  # here: ``watchdog --status`` run as root never needs it

    return os.path.join(tempfile.gettempdir(), f"watchdog-{os.geteuid()}")


def directory_mode() -> int:
    """Root's ``/run/watchdog`` may be read by all (a health check run as another user);
    anyone else's is private."""
    return 0o755 if os.geteuid() == 0 else 0o700


def open_directory(directory: str, create: bool = False) -> int:
    """A descriptor of ``directory``, checked; made first (with ``directory_mode``) if ``create``."""
    if create:
        os.makedirs(directory, mode=directory_mode(), exist_ok=True)
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | OPEN_FLAGS)
    except OSError as exc:
        if os.path.islink(directory):
            raise Untrusted(f"{directory} is a symlink: give the watchdog a directory of its own") from None
        raise exc
    try:
        check_directory_info(directory, os.fstat(fd))
    except BaseException:
        os.close(fd)
        raise
    return fd


def split(path: str) -> tuple[str, str]:
    directory, name = os.path.split(os.path.abspath(path))
    return directory, name


def read_trusted(path: str, max_size: int = MAX_READ) -> bytes | None:
    """The bytes of the regular file ``path``; None when it does not exist.

    Raises Untrusted when its directory or the file itself could be another
    user's doing, or it is not a regular file; OSError when it cannot be read.
    """
    directory, name = split(path)
    try:
        dir_fd = open_directory(directory)
    except FileNotFoundError:
        return None
    try:
        try:
            fd = os.open(name, os.O_RDONLY | OPEN_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if stat.S_ISLNK(os.lstat(name, dir_fd=dir_fd).st_mode):
                raise Untrusted(f"{path} is a symlink") from None
            raise exc
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise Untrusted(f"{path} is not a regular file")
            if not trusted_uid(info.st_uid):
                raise Untrusted(f"{path} belongs to {owner_words(info.st_uid)}")
            if info.st_mode & 0o022:
                raise Untrusted(f"{path} is writable by other users (mode {info.st_mode & 0o7777:o})")
            if info.st_size > max_size:
                raise Untrusted(f"{path} is larger than {max_size // (1024 * 1024)} MiB")
            chunks = []
            size = 0
            while size <= max_size and (chunk := os.read(fd, max_size + 1 - size)):
                chunks.append(chunk)
                size += len(chunk)
            if size > max_size:
                raise Untrusted(f"{path} is larger than {max_size // (1024 * 1024)} MiB")
            return b"".join(chunks)
        finally:
            os.close(fd)
    finally:
        os.close(dir_fd)


Identity = tuple[int, int, int]  # device, inode, change time (an inode number is reused)


def identity(info: os.stat_result) -> Identity:
    return info.st_dev, info.st_ino, info.st_ctime_ns


def write_atomically(path: str, data: bytes, mode: int = 0o644) -> Identity:
    """Replace ``path`` with a file holding ``data``; return its identity.

    Written as a new file (``O_EXCL``, never through a symlink) in the checked
    directory, given ``mode`` on its descriptor, then renamed over ``path``
    relative to the directory's descriptor. Raises OSError or Untrusted.
    """
    directory, name = split(path)
    dir_fd = open_directory(directory, create=True)
    try:
        while True:
            tmp = f".{name}.{os.urandom(6).hex()}"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | OPEN_FLAGS, 0o600, dir_fd=dir_fd)
            except FileExistsError:
                continue
            break
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fchmod(fd, mode)
            finally:
                os.close(fd)
            os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            info = os.lstat(name, dir_fd=dir_fd)  # after the rename, which changes its ctime
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dir_fd)
            except OSError:
                pass
            raise
        return identity(info)
    finally:
        os.close(dir_fd)


def remove_if_ours(path: str, written: Identity) -> None:
    """Unlink ``path`` if it is still the file we wrote (``written``: its identity)."""
    directory, name = split(path)
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | OPEN_FLAGS)
    except OSError:
        return
    try:
        if identity(os.lstat(name, dir_fd=dir_fd)) == written:
            os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
