"""Due times: "check again then" and "call this then", in one heap on the engine's clock."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(order=True)
class Timer:
    """A due time; ``callback`` None means "run a check then"."""

    when: float
    seq: int
    callback: Callable[[], None] | None = field(compare=False, default=None)
    cancelled: bool = field(compare=False, default=False)

    def cancel(self) -> None:
        self.cancelled = True


class Timers:
    def __init__(self) -> None:
        self._heap: list[Timer] = []
        self._seq = itertools.count()

    def add(self, when: float, callback: Callable[[], None] | None = None) -> Timer:
        timer = Timer(when, next(self._seq), callback)
        heapq.heappush(self._heap, timer)
        return timer

    def next_due(self) -> float | None:
        while self._heap and self._heap[0].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0].when if self._heap else None

    def pop_due(self, now: float) -> list[Timer]:
        """The timers due by ``now``, earliest first, removed from the heap."""
        due = []
        while self._heap and self._heap[0].when <= now:
            timer = heapq.heappop(self._heap)
            if not timer.cancelled:
                due.append(timer)
        return due
