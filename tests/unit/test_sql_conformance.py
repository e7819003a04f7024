"""AWS IoT SQL conformance: statement + message -> output, from the AWS documentation.

Cases live in tests/unit/sql_cases/*.yaml. `value: EXPR` is shorthand for
`SELECT VALUE EXPR FROM 't'`; `NO_MATCH` means no output (WHERE not true, or Undefined).
Numbers are compared with their JSON type: 5 is not 5.0.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from emulator.sql.context import MessageContext
from emulator.sql.errors import RuleSyntaxError
from emulator.sql.statement import NO_MATCH, compile_statement

CASES_DIR = Path(__file__).parent / "sql_cases"


def _load(name: str) -> list[dict[str, Any]]:
    return list(yaml.safe_load((CASES_DIR / name).read_text()))


def _id(case: dict[str, Any]) -> str:
    return str(case.get("value") or case.get("sql"))[:60] + (
        f" [{case['version']}]" if "version" in case else ""
    )


OUTPUT_CASES = _load("functions.yaml") + _load("operators.yaml") + _load("select.yaml")
ERROR_CASES = _load("errors.yaml")


def _typed(v: Any) -> Any:
    """A JSON value with its number types made visible (1 vs 1.0)."""
    return json.loads(json.dumps(v), parse_float=Decimal, parse_int=lambda s: ("int", int(s)))


@pytest.mark.parametrize("case", OUTPUT_CASES, ids=[_id(c) for c in OUTPUT_CASES])
def test_statement_output(case: dict[str, Any]) -> None:
    sql = case.get("sql") or f"SELECT VALUE {case['value']} FROM '{case.get('topic', 't')}'"
    statement = compile_statement(sql, case.get("version", "2016-03-23"))
    if "payload_text" in case:
        payload = case["payload_text"].encode()
    else:
        payload = json.dumps(case.get("payload", {})).encode()
    ctx = MessageContext(
        topic=case.get("topic", "t"),
        payload=payload,
        client_id=case.get("client_id"),
        principal=case.get("principal"),
        timestamp_ms=case.get("timestamp", 1_700_000_000_000),
    )
    out = statement.evaluate(ctx)
    if "expected_text" in case:
        assert out == case["expected_text"].encode()
        return
    expected = case["expected"]
    if expected == "NO_MATCH":
        assert out is NO_MATCH
        return
    assert out is not NO_MATCH
    assert _typed(out) == _typed(expected)


@pytest.mark.parametrize("case", ERROR_CASES, ids=[c["error"][:40] for c in ERROR_CASES])
def test_syntax_errors_point_at_the_column(case: dict[str, Any]) -> None:
    with pytest.raises(RuleSyntaxError) as info:
        compile_statement(case["sql"], case.get("version", "2016-03-23"))
    err = info.value
    assert case["error"] in err.message
    assert (err.line, err.column) == (case["line"], case["column"])
    caret_line = err.caret().splitlines()[-1]
    assert caret_line == " " * (case["column"] - 1) + "^"


def test_case_count_is_substantial() -> None:
    assert len(OUTPUT_CASES) + len(ERROR_CASES) >= 150
