"""The language draws no UUID, random number or time of its own: the message context
supplies them, and a function whose source is absent fails with a clear error."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from emulator.sql.context import MessageContext
from emulator.sql.errors import RuleEvaluationError
from emulator.sql.statement import compile_statement


def _counter(prefix: str) -> Iterator[str]:
    n = 0
    while True:
        n += 1
        yield f"{prefix}-{n}"


def _evaluate(sql: str, **context: Any) -> object:
    ctx = MessageContext("t", b"{}", **context)
    return compile_statement(sql).evaluate(ctx)


def test_newuuid_calls_the_source_once_per_call() -> None:
    ids = _counter("id")
    out = _evaluate("SELECT newuuid() AS a, newuuid() AS b FROM 't'", newuuid=lambda: next(ids))
    assert out == {"a": "id-1", "b": "id-2"}


def test_rand_reads_the_random_source() -> None:
    out = _evaluate("SELECT VALUE rand() FROM 't'", random=lambda: 0.25)
    assert out == Decimal("0.25")


def test_traceid_is_the_message_s_trace_id() -> None:
    out = _evaluate("SELECT VALUE traceid() FROM 't'", trace_id="trace-1", newuuid=lambda: "new")
    assert out == "trace-1"


def test_traceid_without_one_is_a_fresh_uuid_from_the_source() -> None:
    out = _evaluate("SELECT VALUE traceid() FROM 't'", client_id="c1", newuuid=lambda: "fresh")
    assert out == "fresh"


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT VALUE newuuid() FROM 't'", "newuuid(): no UUID source in this message context"),
        ("SELECT VALUE traceid() FROM 't'", "traceid(): no UUID source in this message context"),
        ("SELECT VALUE rand() FROM 't'", "rand(): no random source in this message context"),
    ],
)
def test_a_function_without_its_source_fails_clearly(sql: str, message: str) -> None:
    with pytest.raises(RuleEvaluationError) as info:
        _evaluate(sql, client_id="c1")  # traceid() of a message not over MQTT is Undefined
    assert str(info.value) == message


def test_time_functions_read_the_message_time_not_the_clock() -> None:
    sql = "SELECT timestamp() AS ts, parse_time('yyyy-MM-dd HH:mm', timestamp()) AS at FROM 't'"
    out = _evaluate(sql, timestamp_ms=86_400_000)
    assert out == {"ts": 86_400_000, "at": "1970-01-02 00:00"}


def test_the_engines_uuid_source_makes_distinct_version_4_uuids() -> None:
    """rules.context.new_uuid writes the UUID from its random bytes itself: the version
    and variant bits must be those uuid.uuid4() sets."""
    import uuid

    from emulator.rules.context import new_uuid

    made = [new_uuid() for _ in range(2000)]
    assert len(set(made)) == len(made)
    for text in made:
        parsed = uuid.UUID(text)
        assert (str(parsed), parsed.version, parsed.variant) == (text, 4, uuid.RFC_4122)
