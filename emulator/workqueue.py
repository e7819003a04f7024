"""A ``FairQueue`` (fairqueue.py) that a fixed set of asyncio workers wait on.

``put`` never waits: it admits the item or says no (the caller fails the work, as a full
``asyncio.Queue`` would). ``get`` waits for an item; ``task_done`` and ``join`` count
unfinished work as ``asyncio.Queue`` does, so tests can wait until it is all done.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

from emulator.fairqueue import FairQueue

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class WorkQueue(Generic[K, T]):
    __slots__ = ("queue", "_put", "_waiters", "_unfinished", "_idle")

    def __init__(self, per_key: int, total: int) -> None:
        self.queue: FairQueue[K, T] = FairQueue(per_key, total)
        self._put = self.queue.put
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._unfinished = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def put(self, key: K, item: T) -> bool:
        """Admit ``item`` under ``key`` and wake a waiting worker; False if refused."""
        if not self._put(key, item):
            return False
        if not self._unfinished:
            self._idle.clear()
        self._unfinished += 1
        if self._waiters:
            self._wake_one()
        return True

    async def get(self) -> T:
        """The next item in the queue's fair order, waiting for one if there is none."""
        queue = self.queue
        while not queue:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and queue:  # woken and cancelled at once: pass it on
                    self._wake_one()
                raise
        return queue.get()[1]

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def task_done(self) -> None:
        """One item taken with ``get`` has been dealt with."""
        self._unfinished -= 1
        if not self._unfinished:
            self._idle.set()

    async def join(self) -> None:
        """Until every admitted item has been taken and marked done."""
        await self._idle.wait()

    def __len__(self) -> int:
        return len(self.queue)
