"""The chat's shape of statement, ``SELECT *, f() AS x ... WHERE NOT isUndefined(field)``,
takes shortcuts over a flat document (statement.py: no output conversion; values.py:
orjson without the exact parser's scan). The output must be the one the general path
gives: the same bytes sent, Undefined left out, decimals and big integers exact.
"""

from __future__ import annotations

from typing import Any

import pytest

from emulator.actions.payloads import payload_bytes
from emulator.sql.context import MessageContext
from emulator.sql.statement import NO_MATCH, compile_statement
from emulator.sql.values import parse_document, parse_json

CHAT = "SELECT *, clientid() AS clientId, timestamp() AS timestamp FROM 't'"

CASES: list[tuple[str, bytes, str | None, Any]] = [
    # (sql, payload, client id, the bytes a republish sends, or NO_MATCH); the bytes are
    # those of the general path before the shortcuts existed (commit cbcb57d)
    (CHAT, b'{"room": "/r", "message": "hi"}', "c1",
     b'{"room":"/r","message":"hi","clientId":"c1","timestamp":5}'),
    # a republished message has no client ID: clientid() is "n/a" (iot-sql-functions.md)
    (CHAT, b'{"room": "/r", "message": "hi"}', None,
     b'{"room":"/r","message":"hi","clientId":"n/a","timestamp":5}'),
    (CHAT, b'{"n": 1.5, "m": 1e3}', "c1", b'{"n":1.5,"m":1000,"clientId":"c1","timestamp":5}'),
    (CHAT, b'{"big": 123456789012345678901234567890}', "c1",
     b'{"big":123456789012345678901234567890,"clientId":"c1","timestamp":5}'),
    (CHAT, b'{"nested": {"a": [1, 2.50]}}', "c1",
     b'{"nested":{"a":[1,2.5]},"clientId":"c1","timestamp":5}'),
    # the payload's own key is overwritten by the alias
    (CHAT, b'{"clientId": "forged"}', "c1", b'{"clientId":"c1","timestamp":5}'),
    # not an object: SELECT * contributes nothing
    (CHAT, b"[1, 2]", "c1", b'{"clientId":"c1","timestamp":5}'),
    (CHAT, b"7", "c1", b'{"clientId":"c1","timestamp":5}'),
    ("SELECT *, missing AS x FROM 't'", b'{"a": 1}', None, b'{"a":1}'),
    ("SELECT *, a AS x FROM 't'", b'{"a": 0.1}', None, b'{"a":0.1,"x":0.1}'),
    ("SELECT *, 1.5 AS x FROM 't'", b'{"a": 1}', None, b'{"a":1,"x":1.5}'),
    ("SELECT *, 'x' AS a FROM 't'", b'{"a": 1, "b": true, "c": null}', None,
     b'{"a":"x","b":true,"c":null}'),
    ("SELECT * FROM 't' WHERE NOT isUndefined(message)", b'{"room": "/r"}', None, NO_MATCH),
    ("SELECT * FROM 't' WHERE NOT isUndefined(message)", b'{"message": null}', None,
     b'{"message":null}'),
]  # fmt: skip


@pytest.mark.parametrize(("sql", "payload", "client_id", "expected"), CASES)
def test_the_chat_shape_of_statement_outputs_what_the_general_path_does(
    sql: str, payload: bytes, client_id: str | None, expected: Any
) -> None:
    ctx = MessageContext(topic="t", payload=payload, client_id=client_id, timestamp_ms=5)
    out = compile_statement(sql, "2016-03-23").evaluate(ctx)
    if expected is NO_MATCH:
        assert out is NO_MATCH
        return
    assert payload_bytes(out) == expected


@pytest.mark.parametrize(
    "payload",
    [b'{"a": 1, "b": "s", "c": true, "d": null}', b"[1, 2]", b'"s"', b"12", b'{"a": 1.5}',
     b'{"a": {"b": 1}}', b'{"a": [1]}', b'{"a": 12345678901234567890123}', b"not json"],
)  # fmt: skip
def test_parse_document_agrees_with_parse_json_and_says_when_the_document_is_flat(
    payload: bytes,
) -> None:
    document, flat = parse_document(payload)
    assert document == parse_json(payload)
    if flat:  # flat: a scalar, or an object or array of str/int/bool/null only
        values = document.values() if isinstance(document, dict) else document
        values = values if isinstance(document, dict | list) else [document]
        assert all(type(v) in (str, int, bool, type(None)) for v in values)
