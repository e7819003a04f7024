"""The fair queue on its own: order per key, keys served in turn, the bounds per key and in
all, and what a flooding key does to the others (it loses its own items, not theirs)."""

from __future__ import annotations

import pytest

from emulator.fairqueue import FairQueue


def drain(queue: FairQueue[str, int]) -> list[tuple[str, int]]:
    out = []
    while queue:
        out.append(queue.get())
    return out


def test_each_key_keeps_its_order_and_keys_are_served_in_turn() -> None:
    queue: FairQueue[str, int] = FairQueue(per_key=10, total=100)
    for n in range(4):
        assert queue.put("a", n)
    assert queue.put("b", 100)
    assert queue.put("c", 200)
    assert queue.put("b", 101)
    assert drain(queue) == [
        ("a", 0),
        ("b", 100),
        ("c", 200),
        ("a", 1),
        ("b", 101),
        ("a", 2),
        ("a", 3),
    ]
    assert len(queue) == 0 and queue.keys() == 0


def test_a_key_that_arrives_behind_a_backlog_is_served_next() -> None:
    """Not after the backlog: after at most one item of each key already waiting."""
    queue: FairQueue[str, int] = FairQueue(per_key=1000, total=10_000)
    for n in range(1000):
        queue.put("flood", n)
    assert queue.get() == ("flood", 0)
    assert queue.put("bystander", -1)
    assert [queue.get(), queue.get()] == [("flood", 1), ("bystander", -1)]


def test_a_key_at_its_bound_is_refused_and_the_others_still_get_in() -> None:
    queue: FairQueue[str, int] = FairQueue(per_key=3, total=10)
    assert [queue.put("flood", n) for n in range(5)] == [True, True, True, False, False]
    assert queue.waiting("flood") == 3
    assert queue.put("other", 1) and queue.waiting("other") == 1
    queue.get()  # flood's turn: one of its items leaves, so one more fits
    assert queue.put("flood", 5) and not queue.put("flood", 6)
    assert [item for key, item in drain(queue) if key == "flood"] == [1, 2, 5]


def test_the_total_bounds_all_keys_together() -> None:
    queue: FairQueue[str, int] = FairQueue(per_key=2, total=5)
    admitted = [queue.put(f"k{n % 4}", n) for n in range(8)]
    assert admitted == [True, True, True, True, True, False, False, False]
    assert len(queue) == 5
    assert not queue.put("new", 0)  # nothing gets in while the total is reached
    queue.get()
    assert queue.put("new", 0)


def test_one_flooding_key_loses_its_own_items_not_others() -> None:
    """The issue's case: 20,000 items from one key against 1,000 per key and 10,000 in all;
    the bystanders' items all get in and all come out within a few turns."""
    queue: FairQueue[str, int] = FairQueue(per_key=1000, total=10_000)
    refused = sum(not queue.put("attacker", n) for n in range(20_000))
    assert refused == 19_000
    assert all(queue.put(f"user{n}", n) for n in range(50))
    served = [queue.get()[0] for _ in range(100)]
    assert served.count("attacker") == 50
    assert sorted(k for k in served if k != "attacker") == sorted(f"user{n}" for n in range(50))


def test_clear_returns_what_was_dropped() -> None:
    queue: FairQueue[str, int] = FairQueue(per_key=5, total=5)
    queue.put("a", 1)
    queue.put("b", 2)
    assert sorted(queue.clear()) == [("a", 1), ("b", 2)]
    assert not queue and queue.keys() == 0
    with pytest.raises(IndexError):
        queue.get()


@pytest.mark.parametrize(("per_key", "total"), [(0, 10), (1, 0), (-1, -1)])
def test_bounds_must_be_positive(per_key: int, total: int) -> None:
    with pytest.raises(ValueError, match="bounds must be positive"):
        FairQueue(per_key, total)


def test_the_fair_queue_is_pure() -> None:
    """No event loop, clock, threads or sockets: its users wake their own workers."""
    from tests.layering import imports_of, modules

    path = modules()["emulator.fairqueue"]
    imported = {name.split(".")[0] for name in imports_of(path, "emulator.fairqueue", False)}
    assert not imported & {"asyncio", "threading", "time", "socket", "random", "os"}
    assert imported <= {"collections", "typing", "__future__", "emulator"}, imported
