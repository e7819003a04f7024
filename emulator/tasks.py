"""Stopping background tasks: the one cancel-then-wait that every part's ``stop()`` uses.

Waiting matters: a cancelled task is still running until it has unwound (its ``finally``
blocks close sockets and processes), so a part that only cancelled could be torn down under
it. The caller's own cancellation is not swallowed (``asyncio.wait`` lets it through, where
``suppress(CancelledError)`` around ``await task`` would eat it), and a task that had
already failed with an exception is not silently forgotten: its error is raised here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any


async def cancel_and_wait(*tasks: asyncio.Future[Any] | None) -> None:
    """Cancel ``tasks`` (None entries are skipped) and wait until all have ended.

    Raises the error of a task that had failed (an ``ExceptionGroup`` if several had);
    cancellation of the tasks themselves is the expected outcome and is not an error.
    """
    live = [task for task in tasks if task is not None]
    if not live:
        return
    for task in live:
        task.cancel()
    await asyncio.wait(live)
    errors = [
        error for task in live if not task.cancelled() and (error := task.exception()) is not None
    ]
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise BaseExceptionGroup("background tasks failed", errors)


def canceller(*tasks: asyncio.Future[Any]) -> Callable[[], Awaitable[None]]:
    """A stop callable for ``tasks``, for lists of ``(name, stop)`` unwound in reverse."""

    async def stop() -> None:
        await cancel_and_wait(*tasks)

    return stop
