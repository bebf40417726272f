"""Due times: "check again then" and "call this then", in one heap on the engine's clock."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable


class Timer:
    """A due time; ``callback`` None means "run a check then"."""

    __slots__ = ("when", "seq", "callback", "cancelled")  # health probes make a few a second

    def __init__(self, when: float, seq: int, callback: Callable[[], None] | None = None,
                 cancelled: bool = False) -> None:
        self.when = when
        self.seq = seq
        self.callback = callback
        self.cancelled = cancelled

    def cancel(self) -> None:
        self.cancelled = True


class Timers:
    """The heap holds ``(when, seq, timer)``: tuples compare in C, and health probes add
    and cancel a few timers each, many times a second. A cancelled timer stays in the
    heap until it comes up."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()

    def add(self, when: float, callback: Callable[[], None] | None = None) -> Timer:
        timer = Timer(when, next(self._seq), callback)
        heapq.heappush(self._heap, (when, timer.seq, timer))
        return timer

    def next_due(self) -> float | None:
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> list[Timer]:
        """The timers due by ``now``, earliest first, removed from the heap."""
        due = []
        while self._heap and self._heap[0][0] <= now:
            _, _, timer = heapq.heappop(self._heap)
            if not timer.cancelled:
                due.append(timer)
        return due
