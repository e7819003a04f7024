"""The fast JSON paths (orjson) give the same documents and bytes as the exact paths.

``parse_json`` reads payloads without decimal numbers with orjson and everything else
with the standard parser (Decimals of 34 digits); ``payload_bytes`` writes with orjson.
Whichever path runs, the SQL must see the same values.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.actions.payloads import payload_bytes
from emulator.sql.values import UNDEFINED, parse_json

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.decimals(allow_nan=False, allow_infinity=False, places=6)
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


def exact(payload: bytes) -> Any:
    try:
        return json.loads(payload, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return UNDEFINED


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same types throughout (1 and 1.0 and True are not the same)."""
    if type(a) is not type(b):
        return False
    if type(a) is dict:
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if type(a) is list:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b) or a is b


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_parsing_matches_the_exact_parser(value: Any) -> None:
    payload = json.dumps(value, default=str, ensure_ascii=False).encode()
    assert same(parse_json(payload), exact(payload))


@pytest.mark.parametrize(
    "payload",
    [
        b'{"a": 1.5}',
        b'{"a": 1e3}',
        b'{"a": 12345678901234567890123456789.123456789}',
        b'{"big": 123456789012345678901234567890}',
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": 1, "a": 2}',
        b'\xef\xbb\xbf{"bom": true}',
        b'{"s": "\\ud800"}',
        b'{"bad": "\xff"}',
        b"[" * 5000 + b"]" * 5000,
        b"not json",
        b"",
        b'"just a string"',
        b"42",
        b'{"version": "v1.2", "e": "1e5"}',
    ],
)
def test_edge_cases_match_the_exact_parser(payload: bytes) -> None:
    assert same(parse_json(payload), exact(payload))


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_written_payloads_read_back_to_the_same_value(value: Any) -> None:
    def plain(v: Any) -> Any:  # what to_json hands to actions: no Decimal
        if type(v) is Decimal:
            return int(v) if v == v.to_integral_value() else float(v)
        if type(v) is dict:
            return {k: plain(x) for k, x in v.items()}
        if type(v) is list:
            return [plain(x) for x in v]
        return v

    output = plain(value)
    assert same(json.loads(payload_bytes(output)), json.loads(json.dumps(output)))
