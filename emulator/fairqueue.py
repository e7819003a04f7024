"""A bounded queue that serves its keys in turn, so one key's backlog cannot starve another.

Theory of operation
-------------------
Work waiting for a shared resource (the rules engine's action workers, a function's
execution environments) is queued per key: the client that sent the message, or a key of
the emulator's own. Each key has its own FIFO, bounded by ``per_key``; all keys together
are bounded by ``total``, so memory stays bounded however many keys there are. ``get``
serves the keys round-robin: the key at the head of the ring gives one item and goes to
the back (or leaves the ring when it has nothing more). A client that queues 20,000 items
therefore gets ``per_key`` of them in and the rest refused, and any other key's item is
served after at most one item of each other waiting key, not after the whole backlog.

``put`` and ``get`` are O(1): a dict lookup, a deque append or pop, a counter. Pure: no
clock, no I/O, no event loop (the users wake their own workers).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class FairQueue(Generic[K, T]):
    """Per-key FIFO queues, each bounded, served round-robin (see the module docstring)."""

    __slots__ = ("per_key", "total", "_queues", "_ring", "_size")

    def __init__(self, per_key: int, total: int) -> None:
        if per_key < 1 or total < 1:
            raise ValueError(f"bounds must be positive: per_key={per_key}, total={total}")
        self.per_key = per_key
        self.total = total
        self._queues: dict[K, deque[T]] = {}
        self._ring: deque[K] = deque()  # keys with something queued, next to serve first
        self._size = 0

    def put(self, key: K, item: T) -> bool:
        """Queue ``item`` under ``key``; False (nothing queued) when ``key`` already has
        ``per_key`` items waiting or all keys together have ``total``."""
        queue = self._queues.get(key)
        if self._size >= self.total:
            return False
        if queue is None:
            queue = self._queues[key] = deque()
            self._ring.append(key)
        elif len(queue) >= self.per_key:
            return False
        queue.append(item)
        self._size += 1
        return True

    def get(self) -> tuple[K, T]:
        """The oldest item of the key whose turn it is, with its key; IndexError if empty."""
        ring = self._ring
        key = ring[0]  # IndexError when nothing is queued
        queue = self._queues[key]
        item = queue.popleft()
        self._size -= 1
        if queue:
            ring.rotate(-1)  # served: to the back of the ring
        else:
            ring.popleft()
            del self._queues[key]
        return key, item

    def waiting(self, key: K) -> int:
        """How many items ``key`` has queued."""
        queue = self._queues.get(key)
        return 0 if queue is None else len(queue)

    def keys(self) -> int:
        """How many keys have something queued."""
        return len(self._ring)

    def clear(self) -> list[tuple[K, T]]:
        """Empty the queue; what was in it, key by key (for logging what is dropped)."""
        dropped = [(key, item) for key, queue in self._queues.items() for item in queue]
        self._queues.clear()
        self._ring.clear()
        self._size = 0
        return dropped

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0
