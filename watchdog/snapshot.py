"""One pass over the process table, kept as immutable records plus a name index.

Each check reads ``/proc/PID/stat`` once per process: it holds the name (comm),
state, parent and start time, which is all the default matcher needs. Command
lines and executables are read lazily, only for the processes a matcher asks
about, and cached for the life of the snapshot. psutil's per-process objects
cost about four times this pass, which is why the hot path reads /proc itself.

Zombies, the watchdog itself, its ancestors and every other watchdog process are
invisible to matchers: a supervisor that counts itself (or a ``--check`` run
beside it) as the service it watches never starts that service.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection
from typing import NamedTuple

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
DEAD_STATES = frozenset("ZXx")
STATES = {state.encode(): state for state in "RSDZTtXxKWPI"}  # decoded once, not per process
PF_KTHREAD = 0x00200000  # in stat's flags: a kernel thread, which has no command line
# Seconds after its start within which a process may still exec, or rewrite its
# title, as programs do while they start (sshd, a shell script exec'ing its service).
EXEC_SETTLE = 1.0


class Proc(NamedTuple):
    """One process as the snapshot saw it (a tuple: thousands are made per check)."""

    pid: int
    ppid: int
    name: str  # the kernel's comm: at most 15 bytes, decoded with surrogateescape
    state: str
    start_ticks: int  # clock ticks after boot
    kernel_thread: bool = False
    pgid: int = 0  # its process group: a daemon's next stage leads one, its workers share it
    sid: int = 0  # its session


def boot_time() -> float:
    """Boot time as a Unix timestamp, precise to the clock (``/proc/stat`` rounds to 1 s)."""
    return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)


def read_proc_file(path: str, whole: bool = False) -> bytes | None:
    """A /proc file in one read (``stat`` fits), or to its end with ``whole``.

    Raw os calls cost a third of what ``open()``'s buffered reader does.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:  # gone between listing and reading, or hidden from us
        return None
    try:
        data = os.read(fd, 4096)
        if whole and len(data) == 4096:  # a command line may be up to ARG_MAX long
            chunks = [data]
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
            data = b"".join(chunks)
        return data
    except OSError:
        return None
    finally:
        os.close(fd)


def read_stat(proc_root: str, pid: str, listed: bool = False) -> Proc | None:
    """The process's stat, or None when it is gone or is a thread (a full check calls
    this for every pid).

    Threads are never processes: ``/proc/N`` answers for a thread id too (a
    snapshot that reads the pids handed out since the last one meets them),
    though listing /proc shows only thread-group leaders. A thread's
    ``exit_signal`` (stat's field 38) is -1, as the kernel sets it for every
    task cloned with CLONE_THREAD, and never so for a leader (an exec from a
    thread makes it the leader and sets its exit signal back): so this one read
    tells them apart, with no extra read of ``/proc/N/status``'s ``Tgid``.
    ``listed``: the pid comes from listing /proc, so it is a leader; the fields
    past the start time are then not split, which halves the parse of a table.

    The read is inlined and the record built from positions: per process,
    the keyword call and the extra function call cost a quarter of the parse.
    """
    try:
        fd = os.open(f"{proc_root}/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        raw = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    # comm may hold spaces and parentheses: it ends at the last ')'.
    open_paren, close_paren = raw.find(b"("), raw.rfind(b")")
    if open_paren < 0 or close_paren < 0:
        return None
    fields = raw[close_paren + 2 :].split(None, 20 if listed else 36)  # to starttime or exit_signal
    try:
        if not listed and fields[35] == b"-1":
            return None  # a thread, not a process
        state = fields[0]
        return Proc(int(pid), int(fields[1]),
                    raw[open_paren + 1 : close_paren].decode("utf-8", "surrogateescape"),
                    STATES.get(state) or state.decode(), int(fields[19]),
                    int(fields[6]) & PF_KTHREAD != 0, int(fields[2]), int(fields[3]))
    except (IndexError, ValueError):
        return None


def process_uids(proc_root: str, pid: int) -> tuple[int, int, int] | None:
    """Real, effective and saved uid from /proc/PID/status (right for non-dumpable
    processes too, whose /proc/PID belongs to root); None if it cannot be read."""
    raw = read_proc_file(f"{proc_root}/{pid}/status", whole=True)
    start = raw.find(b"\nUid:") if raw else -1
    if raw is None or start < 0:
        return None
    fields = raw[start + 5 : raw.find(b"\n", start + 1)].split()
    try:
        return int(fields[0]), int(fields[1]), int(fields[2])
    except (IndexError, ValueError):
        return None


def is_watchdog_argv(argv: list[str]) -> bool:
    """True for ``python .../bin/watchdog ...`` and ``python -m watchdog ...``.

    The interpreter must come first: a C program installed as ``watchdog``
    (the kernel watchdog daemon) is a service like any other.
    """
    if len(argv) < 2 or not os.path.basename(argv[0]).startswith("python"):
        return False
    args = iter(argv[1:])
    for arg in args:
        if arg == "-m":
            return next(args, "") == "watchdog"
        if not arg.startswith("-"):
            return os.path.basename(arg) == "watchdog"
    return False


class CommandLineCache:
    """Command lines kept from one check to the next, for processes that did not change.

    A regex rule needs every process's command line, which doubles what a
    check reads. A process keeps its pid, start time and name until it execs
    something else, so those three make the key. Only processes older than
    ``MIN_AGE`` are kept (programs such as sshd rewrite their title as they
    start), and an entry lives ``ttl`` seconds at most (the engine passes its
    interval), so a title changed later is seen within one backstop period.
    Empty reads are not kept (see ``Snapshot._raw_cmdline``).
    """

    MIN_AGE = EXEC_SETTLE

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[tuple[int, int, str], tuple[float, bytes]] = {}

    def get(self, proc: Proc, now: float) -> bytes | None:
        """The kept bytes of /proc/PID/cmdline; None when there are none, or too old."""
        entry = self._entries.get((proc.pid, proc.start_ticks, proc.name))
        if entry is None or now - entry[0] > self.ttl:
            return None
        return entry[1]

    def put(self, proc: Proc, raw: bytes, now: float, uptime: float) -> None:
        """Keep ``raw``, the bytes of /proc/PID/cmdline."""
        if uptime - proc.start_ticks / CLOCK_TICKS >= self.MIN_AGE:
            self._entries[(proc.pid, proc.start_ticks, proc.name)] = (now, raw)

    def keep_only(self, procs: dict[int, Proc]) -> None:
        """Forget processes that are gone, so the cache never outgrows the table."""
        self._entries = {key: entry for key, entry in self._entries.items()
                         if (proc := procs.get(key[0])) is not None
                         and (proc.start_ticks, proc.name) == key[1:]}


def index_names(procs: dict[int, Proc]) -> dict[str, tuple[Proc, ...]]:
    """Every process by its name (comm), zombies and watchdogs included."""
    names: dict[str, list[Proc]] = {}
    for proc in procs.values():
        names.setdefault(proc.name, []).append(proc)
    return {name: tuple(group) for name, group in names.items()}


class Snapshot:
    """The process table at one instant, as matchers see it.

    ``names`` is ``index_names(procs)`` when the caller keeps one up to date.
    ``fresh``, when given, holds the pids read for this snapshot, the others
    being carried over from an earlier one (see watchdog/tracker.py): ``get``
    reads those again, since a matcher that asks for one pid may ask about a
    process no rule followed.

    ``scope``, when given, is the pid whose descendants alone are visible (the
    watchdog's own, see watchdog/ownership.py); None shows the whole table.
    """

    def __init__(self, procs: dict[int, Proc], self_pid: int, proc_root: str = "/proc",
                 cache: CommandLineCache | None = None, *,
                 names: dict[str, tuple[Proc, ...]] | None = None,
                 fresh: set[int] | None = None, scope: int | None = None) -> None:
        self.proc_root = proc_root
        self._cache = cache
        self._uptime = time.clock_gettime(time.CLOCK_BOOTTIME)
        self._now = time.monotonic()
        self._procs = procs
        self._raw_cmdlines: dict[int, bytes | None] = {}
        self._cmdlines: dict[int, list[str] | None] = {}
        self._visible: list[Proc] | None = None
        self._command_lines: list[tuple[Proc, str]] | None = None
        self._hidden = self._ancestry(self_pid)
        self._watchdogs: dict[int, bool] = {}
        self._names = index_names(procs) if names is None else names
        self._fresh = fresh
        self._read_again: dict[int, Proc | None] = {}
        self._scope = scope
        self._in_scope: dict[int, bool] = {} if scope is None else {scope: True}

    def _ancestry(self, pid: int) -> frozenset[int]:
        chain = set()
        while pid > 0 and pid not in chain:
            chain.add(pid)
            parent = self._procs.get(pid)
            pid = parent.ppid if parent else 0
        return frozenset(chain)

    def descends_from(self, proc: Proc, roots: Collection[int]) -> bool:
        """Whether ``proc`` is one of ``roots`` or below one, as far as the parents this
        snapshot holds tell (an orphan re-parented to the watchdog no longer does)."""
        if proc.pid in roots:
            return True
        seen, pid = 0, proc.ppid
        while pid > 1 and seen <= len(self._procs):
            if pid in roots:
                return True
            parent = self._procs.get(pid)
            if parent is None:
                return False
            pid, seen = parent.ppid, seen + 1
        return False

    def __len__(self) -> int:
        return len(self._procs)

    def visible(self, proc: Proc) -> bool:
        """Alive, not a zombie, not this watchdog, its ancestors or another watchdog,
        and one this watchdog may signal."""
        if proc.state in DEAD_STATES or proc.pid in self._hidden:
            return False
        if self._scope is not None and not self.descends(proc.ppid):
            return False
        return not self.is_watchdog(proc) and self.may_signal(proc)

    def descends(self, pid: int) -> bool:
        """Whether ``pid`` is the scope's root or below it (True when there is no scope).

        Walks up the parents this snapshot holds, remembering every answer, so
        a whole table costs one step per process. A parent that is gone breaks
        the chain: its orphans are re-parented to the watchdog (PID 1 or a
        subreaper), which the next read of them shows.
        """
        if self._scope is None:
            return True
        chain = []
        known = self._in_scope.get(pid)
        while known is None:
            chain.append(pid)
            parent = self._procs.get(pid)
            if parent is None or parent.pid <= 1 or len(chain) > len(self._procs):
                known = False
            else:
                pid = parent.ppid
                known = self._in_scope.get(pid)
        for pid in chain:
            self._in_scope[pid] = known
        return known

    def named(self, name: str) -> list[Proc]:
        """Visible processes whose comm is exactly ``name`` (at most 15 bytes in UTF-8)."""
        return [proc for proc in self._names.get(name, ()) if self.visible(proc)]

    _signalable: dict[int, bool] | None = None

    def may_signal(self, proc: Proc) -> bool:
        """Whether kill(2) lets us signal ``proc``: always as root; otherwise only when
        its real or saved uid is our real or effective one.

        A same-named process of another user would otherwise be adopted as the
        service: never started, and at the stop waited for in vain until --grace.
        """
        if os.geteuid() == 0:
            return True
        if self._signalable is None:
            self._signalable = {}
        known = self._signalable.get(proc.pid)
        if known is None:
            uids = process_uids(self.proc_root, proc.pid)
            ours = {os.getuid(), os.geteuid()}
            known = self._signalable[proc.pid] = uids is not None and bool(ours & {uids[0], uids[2]})
        return known

    def get(self, pid: int) -> Proc | None:
        """The visible process with this pid, if there is one."""
        if self._fresh is not None and pid not in self._fresh:
            if pid not in self._read_again:
                self._read_again[pid] = read_stat(self.proc_root, str(pid))
            proc = self._read_again[pid]
        else:
            proc = self._procs.get(pid)
        return proc if proc is not None and self.visible(proc) else None

    def processes(self) -> list[Proc]:
        """Every visible process (worked out once per snapshot)."""
        if self._visible is None:
            self._visible = [proc for proc in self._procs.values() if self.visible(proc)]
        return self._visible

    def command_lines(self) -> list[tuple[Proc, str]]:
        """``(proc, command line)`` for every visible process that has one (not kernel
        threads): read once per snapshot, however many rules search them."""
        if self._command_lines is None:
            lines = ((proc, self.command_line(proc.pid)) for proc in self.processes())
            self._command_lines = [(proc, line) for proc, line in lines if line]
        return self._command_lines

    def is_watchdog(self, proc: Proc) -> bool:
        # Only the console script (comm "watchdog") or an interpreter can be one,
        # so the command line is read for few processes.
        if proc.name != "watchdog" and not proc.name.startswith("python"):
            return False
        known = self._watchdogs.get(proc.pid)
        if known is None:
            known = self._watchdogs[proc.pid] = is_watchdog_argv(self.cmdline(proc.pid) or [])
        return known

    def _raw_cmdline(self, pid: int) -> bytes | None:
        """/proc/PID/cmdline as read (or kept by the cache); None if unreadable."""
        if pid in self._raw_cmdlines:
            return self._raw_cmdlines[pid]
        proc = self._procs.get(pid)
        if proc is not None and proc.kernel_thread:
            return b""
        if self._cache is not None and proc is not None:
            kept = self._cache.get(proc, self._now)
            if kept is not None:
                self._raw_cmdlines[pid] = kept
                return kept
        raw = read_proc_file(f"{self.proc_root}/{pid}/cmdline", whole=True)
        self._raw_cmdlines[pid] = raw
        # An empty read is not kept: in the middle of an exec the kernel shows the new
        # name before the new arguments, so the next check must read it again.
        if raw and self._cache is not None and proc is not None:
            self._cache.put(proc, raw, self._now, self._uptime)
        return raw

    def cmdline(self, pid: int) -> list[str] | None:
        """The process's arguments (undecodable bytes kept as surrogates); None if unreadable.

        Kernel threads and zombies have an empty command line.
        """
        if pid not in self._cmdlines:
            raw = self._raw_cmdline(pid)
            if raw is None:
                self._cmdlines[pid] = None
            else:
                parts = raw.rstrip(b"\0").split(b"\0") if raw else []
                self._cmdlines[pid] = [part.decode("utf-8", "surrogateescape") for part in parts]
        return self._cmdlines[pid]

    def command_line(self, pid: int) -> str:
        """The arguments joined by spaces, as ``ps`` shows them; empty if unreadable."""
        # Straight from the bytes: a regex rule reads this for every process, and NUL
        # is never part of a UTF-8 sequence, so this decodes as the joined arguments do.
        raw = self._raw_cmdline(pid)
        return raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "surrogateescape") if raw else ""

    def exe(self, pid: int) -> str | None:
        """The executable's path, or None when unreadable (another user's process)."""
        try:
            return os.readlink(f"{self.proc_root}/{pid}/exe")
        except OSError:
            return None

    def start_time(self, proc: Proc) -> float:
        """When the process started, as a Unix timestamp."""
        return boot_time() + proc.start_ticks / CLOCK_TICKS


def take_snapshot(self_pid: int | None = None, proc_root: str = "/proc",
                  cache: CommandLineCache | None = None) -> Snapshot:
    """Read the process table once (command lines later, and only if asked)."""
    procs: dict[int, Proc] = {}
    for entry in os.listdir(proc_root):
        if entry.isdigit():
            proc = read_stat(proc_root, entry, listed=True)
            if proc is not None:
                procs[proc.pid] = proc
    if cache is not None:
        cache.keep_only(procs)
    return Snapshot(procs, os.getpid() if self_pid is None else self_pid, proc_root, cache)
