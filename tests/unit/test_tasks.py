"""cancel_and_wait: cancels, waits for the unwinding, keeps failures and the caller's own
cancellation visible. An event loop, no sockets: the helper is about tasks themselves."""

from __future__ import annotations

import asyncio

import pytest

from emulator.tasks import cancel_and_wait, canceller


async def test_cancels_and_waits_until_each_task_has_unwound() -> None:
    unwound: list[str] = []

    async def worker(name: str) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0)  # unwinding takes a turn of the loop
            unwound.append(name)

    tasks = [asyncio.create_task(worker(n)) for n in ("a", "b")]
    await asyncio.sleep(0)
    await cancel_and_wait(tasks[0], None, tasks[1])
    assert unwound == ["a", "b"] and all(t.cancelled() for t in tasks)


async def test_nothing_to_stop_and_finished_tasks_are_fine() -> None:
    await cancel_and_wait()
    done = asyncio.create_task(asyncio.sleep(0))
    await done
    await cancel_and_wait(done, None)


async def test_a_task_that_had_failed_raises_its_error() -> None:
    async def fail() -> None:
        raise ValueError("broken pump")

    failed = asyncio.create_task(fail())
    await asyncio.wait([failed])
    with pytest.raises(ValueError, match="broken pump"):
        await cancel_and_wait(failed)


async def test_several_failures_raise_a_group() -> None:
    async def fail(n: int) -> None:
        raise ValueError(n)

    tasks = [asyncio.create_task(fail(n)) for n in (1, 2)]
    await asyncio.wait(tasks)
    with pytest.raises(ExceptionGroup) as info:
        await cancel_and_wait(*tasks)
    assert [e.args for e in info.value.exceptions] == [(1,), (2,)]


async def test_the_callers_own_cancellation_is_not_swallowed() -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await release.wait()  # takes its time to unwind

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    stopper = asyncio.create_task(canceller(task)())
    await asyncio.sleep(0)
    stopper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopper
    release.set()
    await asyncio.wait([task])
    assert task.cancelled()
