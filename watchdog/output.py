"""Each started command's stdout and stderr: read from pipes on the loop, relayed, kept.

Every command the engine starts writes into two pipes of ours (one with
``--log-stderr NAME=stdout``); the engine's one selector wakes when a pipe
has data. What is read is, in this order:

* relayed to the watchdog's own stdout or stderr, through a writer that never
  blocks (``watchdog.writer``): by default the bytes as they were read, as if
  the service wrote there itself; with the rule's name in front (``--prefix``)
  or a timestamp (``--timestamps``), whole lines;
* kept in the rule's bounded memory (``--log-buffer``), which ``watchdogctl
  logs``, ``GET /v1/logs`` and the last lines of a crash read;
* handed to the rule's log file (``watchdog.logfiles``) and to followers.

Lines are cut where a newline is; what is left without one is a line when the
pipe closes (every writer gone, the service and any daemon it forked) or when
the watchdog stops. With a prefix or a timestamp only whole lines are relayed,
so two services' lines never interleave mid-line.
A line longer than ``MAX_LINE`` goes out in pieces of that size as it comes:
a service that writes hundreds of megabytes without a newline is relayed in
linear time and never held whole in memory.

What is read is kept as the chunks it came in (with the time it was read, the
stream and the run that wrote it), not split into lines: a flood costs a few
operations per 64 KiB, and lines are cut only when someone reads them.
"""

from __future__ import annotations

import fcntl
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import NamedTuple, Protocol

from watchdog.events import Waiter

CHUNK = 65536
MAX_LINE = 65536
# A pipe that was full when read is grown to this (the default /proc/sys/fs/pipe-max-size),
# and read this much at a time: a flood then costs a sixteenth of the wake-ups. Only
# pipes that were full pay for it, so quiet services keep the kernel's 64 KiB.
BIG_PIPE = 1024 * 1024
# Lines that are copied (for a prefix, a timestamp, a file, a follower) are copied in
# pieces of at most this much: more than a line (MAX_LINE), less than malloc's mmap threshold.
PIECE = MAX_LINE + 1
F_SETPIPE_SZ = 1031
# Reads per wake-up: a service writing faster than the relay copies must not keep
# PID 1 from its other work; the selector wakes again while the pipe holds data.
READS_PER_WAKE = 16
# At exit, or when a run ends, what the pipes still hold: a stray writer that goes
# on writing must not keep the watchdog from its work.
DRAIN_READS = 256
# The last lines of a run that ended: at most this many, of at most this many bytes.
LAST_LINES = 10
LAST_BYTES = 2048

SETTINGS_KEY = "output"  # rule.settings[SETTINGS_KEY]: the rule's OutputSettings
STDOUT = "stdout"
STDERR = "stderr"


class Sink(Protocol):
    def write(self, data: bytes | memoryview, /) -> object: ...


class Chunk(NamedTuple):
    """Whole lines read from one pipe at once."""

    seq: int  # the order of reading, across every rule
    time: float
    rule: str
    stream: str
    run: int  # the rule's start number
    pid: int
    data: bytes  # whole lines, each ending with a newline


class LogLine(NamedTuple):
    time: float
    rule: str
    stream: str
    run: int
    pid: int
    text: bytes  # without its newline

    def as_json(self) -> dict[str, object]:
        return {"time": round(self.time, 3), "rule": self.rule, "stream": self.stream,
                "run": self.run, "pid": self.pid, "line": self.text.decode("utf-8", "replace")}


def rfc3339(when: float) -> bytes:
    """As the watchdog's own lines have it: ``2026-01-01T00:00:00.000+00:00``."""
    return datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds").encode()


def with_lead(data: bytes, lead: bytes) -> bytes:
    """``lead`` before each line of whole-line ``data``: one pass, no object per line."""
    if not lead:
        return data
    return lead + data[:-1].replace(b"\n", b"\n" + lead) + b"\n"


def split_lines(data: bytes) -> list[bytes]:
    """The lines of whole-line ``data``, without their newlines."""
    return data.split(b"\n")[:-1]


class RuleOutput:
    """A rule's recent output: chunks of whole lines, at most ``capacity`` bytes in all."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.chunks: deque[Chunk] = deque()
        self.size = 0
        self.dropped_lines = 0  # not kept: pushed out by newer output (they were relayed)

    def add(self, chunk: Chunk) -> None:
        if self.capacity <= 0:
            return
        if len(chunk.data) > self.capacity:
            kept = chunk.data[-self.capacity:]
            kept = kept[kept.find(b"\n") + 1:] if b"\n" in kept[:-1] else kept
            chunk = chunk._replace(data=kept)
        self.chunks.append(chunk)
        self.size += len(chunk.data)
        while self.size > self.capacity:
            oldest = self.chunks[0]
            excess = self.size - self.capacity
            if excess >= len(oldest.data):
                self.chunks.popleft()
                self.size -= len(oldest.data)
                continue
            cut = oldest.data.find(b"\n", excess - 1) + 1  # whole lines only
            self.chunks[0] = oldest._replace(data=oldest.data[cut:])
            self.size -= cut
            if not self.chunks[0].data:
                self.chunks.popleft()

    def lines(self, streams: Iterable[str] = (STDOUT, STDERR), since: float = 0.0,
              run: int | None = None) -> list[tuple[int, int, LogLine]]:
        """``(seq, index, line)`` for every kept line of ``streams`` read at ``since`` or later."""
        wanted = set(streams)
        found = []
        for chunk in self.chunks:
            if chunk.stream not in wanted or chunk.time < since or (run is not None and chunk.run != run):
                continue
            for index, text in enumerate(split_lines(chunk.data)):
                found.append((chunk.seq, index, LogLine(chunk.time, chunk.rule, chunk.stream, chunk.run,
                                                        chunk.pid, text)))
        return found

    def last_lines(self, run: int | None) -> list[LogLine]:
        """A run's last lines, stderr first: up to ``LAST_LINES`` lines and ``LAST_BYTES`` bytes.

        The last lines of stderr come first to the budget, the last of stdout get
        what is left; they are returned in the order they were written.
        """
        chosen: list[tuple[int, int, LogLine]] = []
        budget_lines, budget_bytes = LAST_LINES, LAST_BYTES
        for stream in (STDERR, STDOUT):
            for entry in reversed(self.lines((stream,), run=run)):
                text = entry[2].text
                if budget_lines <= 0 or budget_bytes <= 0:
                    break
                if len(text) > budget_bytes:
                    entry = (entry[0], entry[1], entry[2]._replace(text=text[-budget_bytes:]))
                chosen.append(entry)
                budget_lines -= 1
                budget_bytes -= len(entry[2].text) + 1
        chosen.sort(key=lambda entry: (entry[0], entry[1]))
        return [line for _, _, line in chosen]


class OutputSettings(NamedTuple):
    """What a rule's output flags say (``watchdog.logoptions``)."""

    buffer: int
    file: str | None = None
    file_stderr: str | None = None
    max_bytes: int = 0
    backups: int = 0
    ready: str | None = None  # a regular expression
    stderr_to_stdout: bool = False
    owner: tuple[int, int] | None = None  # uid, gid of the rule's --user: its log files are its own


FileWriter = Callable[[str, bytes, OutputSettings], None]
Follower = Callable[[Chunk], None]


class RelayTarget:
    """Where one rule's lines go besides its memory."""

    def __init__(self, name: str, settings: OutputSettings, memory: RuleOutput, label: bytes = b"",
                 runs: int = 0, awaiting_ready: re.Pattern[str] | None = None, ready_run: int = 0) -> None:
        self.name = name
        self.settings = settings
        self.memory = memory
        self.label = label
        self.runs = runs
        self.awaiting_ready = awaiting_ready  # until a line of this run matches
        self.ready_run = ready_run
        self.relays: list[LineRelay] = []
        self.run_of: dict[int, int] = {}  # pid of a start -> its run, until it ends


class LineRelay:
    """One pipe's reading end, whole lines at a time to the capture.

    It reads into a buffer of its own, reused from read to read: a flood costs
    no allocation per read, and the partial line at the end of one read is moved
    to the front of the buffer so that the next read completes it in place. What
    the capture is handed (``emit``) is a view of that buffer, valid until the
    next read: whatever keeps it copies it.
    """

    def __init__(self, fd: int, target: RelayTarget, stream: str, run: int, capture: Capture) -> None:
        self.fd = fd
        self.target = target
        self.stream = stream
        self.run = run
        self.pid = 0
        self.capture = capture
        self.read_size = CHUNK
        # Made at the first read: 128 KiB zeroed is a tenth of a millisecond per pipe,
        # two per start, which then come after the starts (and never for a silent pipe).
        self.buffer = bytearray()
        self.kept = 0  # bytes of a partial line at the front of the buffer, never MAX_LINE or more
        os.set_blocking(fd, False)
        capture.waiter.add_reader(fd, self.read_available)

    @property
    def partial(self) -> bytes:
        return bytes(self.buffer[:self.kept])

    def read_available(self, reads: int = READS_PER_WAKE, may_pause: bool = True) -> None:
        """Take up to ``reads`` chunks of what the pipe holds now; close on end of file.

        While the rule's log files have too much to write, the pipe is left
        unread (``Capture.pause``): the service waits, the loop does not.
        """
        if not self.buffer:
            self.buffer = bytearray(self.read_size + MAX_LINE)
        for _ in range(reads):
            if may_pause and self.capture.files_full(self.target):
                self.capture.pause(self)
                return
            try:
                count = os.readv(self.fd, [memoryview(self.buffer)[self.kept:self.kept + self.read_size]])
            except BlockingIOError:
                return
            except OSError:
                count = 0
            if not count:
                self.close()
                return
            if self.capture.raw:  # unchanged: every byte as it comes, a partial line too
                self.capture.sinks[self.stream].write(memoryview(self.buffer)[self.kept:self.kept + count])
            self._lines(self.kept + count)
            if count == self.read_size == CHUNK:
                self._grow()

    def _grow(self) -> None:
        try:
            fcntl.fcntl(self.fd, F_SETPIPE_SZ, BIG_PIPE)
        except OSError:  # over the user's pipe-user-pages-soft, or an older kernel
            self.read_size = 2 * CHUNK  # still half the wake-ups for what a full pipe holds
        else:
            self.read_size = BIG_PIPE
        grown = bytearray(self.read_size + MAX_LINE)
        grown[:self.kept] = self.buffer[:self.kept]
        self.buffer = grown

    def feed(self, data: bytes) -> None:
        """Lines from ``data`` as if read from the pipe (any length)."""
        if not self.buffer:
            self.buffer = bytearray(self.read_size + MAX_LINE)
        for start in range(0, len(data), self.read_size):
            piece = data[start:start + self.read_size]
            self.buffer[self.kept:self.kept + len(piece)] = piece
            self._lines(self.kept + len(piece))

    def _lines(self, filled: int) -> None:
        """Hand the whole lines among the first ``filled`` bytes on; keep the rest in front."""
        buffer = self.buffer
        end = buffer.rfind(b"\n", 0, filled) + 1
        if end:
            if end > MAX_LINE and has_long_line(buffer, end):
                self.capture.emit(self, b"".join(cut_long(line) for line in split_lines(bytes(buffer[:end]))))
            elif not self.capture.copies(self.target):
                self.capture.emit(self, memoryview(buffer)[:end])  # relayed as read: no copy at all
            else:
                # Copied a piece at a time: pieces under malloc's mmap threshold reuse the
                # heap, where a megabyte's copy would cost a page fault per 4 KiB.
                start = 0
                while start < end:
                    stop = buffer.rfind(b"\n", start, start + PIECE) + 1 if end - start > PIECE else end
                    self.capture.emit(self, bytes(buffer[start:stop]))
                    start = stop
        whole = (filled - end) - (filled - end) % MAX_LINE  # a partial line of MAX_LINE or more: cut
        if whole:
            self.capture.emit(self, b"".join(bytes(buffer[i:i + MAX_LINE]) + b"\n"
                                             for i in range(end, end + whole, MAX_LINE)))
        rest = end + whole
        self.kept = filled - rest
        if rest and self.kept:
            buffer[:self.kept] = buffer[rest:filled]

    def close(self) -> None:
        if self.fd < 0:
            return
        if self in self.capture.paused:
            self.capture.paused.remove(self)
        else:
            self.capture.waiter.remove_reader(self.fd)
        os.close(self.fd)
        self.fd = -1
        if self.kept:
            head = self.partial + b"\n"
            self.kept = 0
            self.capture.emit(self, head)
        if self in self.target.relays:
            self.target.relays.remove(self)


def has_long_line(data: bytes | bytearray, end: int) -> bool:
    """Whether a line of ``data[:end]`` may be longer than ``MAX_LINE``: any such line holds a
    whole stretch of half that size without a newline, and ordinary text is ruled out
    with one short search per half ``MAX_LINE`` rather than a look at every line."""
    half = MAX_LINE // 2
    return any(data.find(b"\n", start, start + half) < 0 for start in range(0, end - half + 1, half))


def cut_long(line: bytes) -> bytes:
    return b"".join(line[i:i + MAX_LINE] + b"\n" for i in range(0, max(len(line), 1), MAX_LINE))


class Capture:
    """The pipes of every start, their relays, each rule's memory, and who follows."""

    def __init__(self, waiter: Waiter, names: Sequence[str], stdout: Sink, stderr: Sink, *,
                 prefix: bool = False, timestamps: bool = False,
                 default: OutputSettings | None = None) -> None:
        self.waiter = waiter
        self.sinks = {STDOUT: stdout, STDERR: stderr}
        self.prefix = prefix
        self.timestamps = timestamps
        # Without a prefix or a timestamp the relay is the bytes as read, written before they
        # are cut into lines: an init script's "Starting apache2..." shows before its "done."
        self.raw = not prefix and not timestamps
        self.width = max((len(name) for name in names), default=0)
        self.default = default or OutputSettings(buffer=0)
        self.targets: dict[str, RelayTarget] = {}
        self.seq = 0
        self.files: FileWriter | None = None
        self.files_busy: Callable[[], bool] | None = None
        self.paused: list[LineRelay] = []
        self.followers: list[Follower] = []
        self.on_ready: Callable[[str], None] | None = None

    @property
    def relays(self) -> list[LineRelay]:
        return [relay for target in self.targets.values() for relay in target.relays]

    # --- rules ---------------------------------------------------------------------------

    def target(self, name: str, settings: OutputSettings | None = None) -> RelayTarget:
        """The rule's relay target; new settings (a reload) replace the old, its memory stays."""
        target = self.targets.get(name)
        if target is None:
            settings = settings or self.default
            self.width = max(self.width, len(name))
            target = RelayTarget(name, settings, RuleOutput(settings.buffer))
            self.targets[name] = target
        elif settings is not None and settings != target.settings:
            target.settings = settings
            target.memory.capacity = settings.buffer
        target.label = f"{name.ljust(self.width)} | ".encode() if self.prefix else b""
        return target

    def forget(self, name: str) -> None:
        """A rule removed: its memory goes; pipes still open drain into nowhere but the relay."""
        target = self.targets.get(name)
        if target is not None and not target.relays:
            del self.targets[name]

    # --- starting a command --------------------------------------------------------------

    def pipes(self, name: str, settings: OutputSettings | None = None) -> tuple[int, int, list[int], int]:
        """``(stdout, stderr, write_ends, run)`` for a start of ``name``; close ``write_ends`` once
        it runs, and give its pid to ``started``.

        Raises OSError (out of file descriptors) with nothing left open.
        """
        target = self.target(name, settings)
        streams = (STDOUT,) if target.settings.stderr_to_stdout else (STDOUT, STDERR)
        run = target.runs + 1
        write_ends: list[int] = []
        relays: list[LineRelay] = []
        try:
            for stream in streams:
                read_end, write_end = os.pipe2(os.O_CLOEXEC)
                write_ends.append(write_end)
                try:
                    relays.append(LineRelay(read_end, target, stream, run, self))
                except BaseException:
                    os.close(read_end)
                    raise
        except BaseException:
            for fd in write_ends:
                os.close(fd)
            for relay in relays:
                relay.close()
            raise
        target.runs = run
        target.relays.extend(relays)
        if target.settings.ready is not None:
            target.awaiting_ready = re.compile(target.settings.ready)
            target.ready_run = run
        return write_ends[0], write_ends[-1], write_ends, run

    def started(self, name: str, run: int, pid: int) -> None:
        target = self.targets[name]
        target.run_of[pid] = run
        for relay in target.relays:
            if relay.run == run:
                relay.pid = pid

    # --- what was read ---------------------------------------------------------------------

    def emit(self, relay: LineRelay, head: bytes | memoryview) -> None:
        """Whole lines from ``relay``: relay them, keep them, write them, tell followers.

        ``head`` may be a view of the relay's buffer: it is copied where it is kept.
        """
        target = relay.target
        now = time.time()
        self.seq += 1
        memory = target.memory
        settings = target.settings
        writes_file = self.files is not None and (settings.file or settings.file_stderr) is not None
        whole = head if isinstance(head, bytes) else None  # what keeps all of the lines needs bytes
        if memory.capacity > 0:
            kept = whole if whole is not None and len(whole) <= memory.capacity \
                else bytes(head[-memory.capacity:])
            memory.add(Chunk(self.seq, now, target.name, relay.stream, relay.run, relay.pid, kept))
        stamp = rfc3339(now) + b" " if self.timestamps else b""
        if not self.raw:
            lead = stamp + target.label
            self.sinks[relay.stream].write(with_lead(whole, lead) if whole is not None else head)
        if writes_file and whole is not None and self.files is not None:
            path = settings.file_stderr if relay.stream == STDERR and settings.file_stderr else settings.file
            if path is not None:
                self.files(path, with_lead(whole, stamp), settings)
        if self.followers and whole is not None:
            chunk = Chunk(self.seq, now, target.name, relay.stream, relay.run, relay.pid, whole)
            for follower in list(self.followers):
                follower(chunk)
        pattern = target.awaiting_ready
        if pattern is not None and whole is not None and relay.run == target.ready_run:
            for line in split_lines(whole):
                if pattern.search(line.decode("utf-8", "replace")):
                    target.awaiting_ready = None
                    if self.on_ready is not None:
                        self.on_ready(target.name)
                    break

    def copies(self, target: RelayTarget) -> bool:
        """Whether lines of ``target`` are kept whole beyond its memory (else relayed as read)."""
        settings = target.settings
        return bool(self.followers or self.timestamps or self.prefix or target.awaiting_ready
                    or (self.files is not None and (settings.file or settings.file_stderr)))

    # --- a disk slower than a service -------------------------------------------------

    def files_full(self, target: RelayTarget) -> bool:
        settings = target.settings
        writes_files = settings.file is not None or settings.file_stderr is not None
        return writes_files and self.files_busy is not None and self.files_busy()

    def pause(self, relay: LineRelay) -> None:
        self.waiter.remove_reader(relay.fd)
        self.paused.append(relay)

    def resume(self) -> None:
        """On the loop after a wake-up: read paused pipes again once the files have room."""
        if self.paused and not (self.files_busy is not None and self.files_busy()):
            paused, self.paused = self.paused, []
            for relay in paused:
                if relay.fd >= 0:
                    self.waiter.add_reader(relay.fd, relay.read_available)

    # --- reading back --------------------------------------------------------------------

    def lines(self, names: Iterable[str], streams: Iterable[str] = (STDOUT, STDERR),
              since: float = 0.0, last: int | None = None) -> list[LogLine]:
        """Kept lines of the rules ``names``, interleaved in the order they were read."""
        streams = tuple(streams)
        found = []
        for name in names:
            target = self.targets.get(name)
            if target is not None:
                found.extend(target.memory.lines(streams, since))
        found.sort(key=lambda entry: (entry[0], entry[1]))
        if last is not None:
            found = found[-last:] if last > 0 else []
        return [line for _, _, line in found]

    def last_lines(self, name: str, pid: int | None = None) -> list[LogLine]:
        """The last lines of the run that started ``pid`` (else the latest run), after reading
        what its pipes still hold."""
        target = self.targets.get(name)
        if target is None:
            return []
        run = target.runs if pid is None else target.run_of.pop(pid, target.runs)
        for relay in list(target.relays):
            if relay.run == run:
                relay.read_available(DRAIN_READS, may_pause=False)
        return target.memory.last_lines(run)

    def drain(self) -> None:
        """At exit: take whatever is still buffered, and end partial lines."""
        for relay in self.relays:
            relay.read_available(DRAIN_READS, may_pause=False)
            relay.close()
