"""AWS IoT SQL conformance: statement + message -> output, from the AWS documentation.

Cases live in tests/unit/sql_cases/*.yaml (errors*.yaml: statements that must not
compile; every other file: outputs). `value: EXPR` is shorthand for
`SELECT VALUE EXPR FROM 't'`; `NO_MATCH` means no output (WHERE not true, or Undefined);
`error: TEXT` in an output file means evaluation fails with a message containing TEXT.
`doc:` names the page and section of the AWS documentation a case comes from.
Numbers are compared with their JSON type: 5 is not 5.0.

Every output case runs twice: in memory, and all of them at once through
``chat-emulator rules eval --jsonl``, the command users debug their SQL with.
"""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from emulator.sql.context import MessageContext
from emulator.sql.errors import RuleEvaluationError, RuleSyntaxError
from emulator.sql.statement import NO_MATCH, compile_statement

CASES_DIR = Path(__file__).parent / "sql_cases"
TIMESTAMP = 1_700_000_000_000  # the message's time unless a case gives its own


def _load(name: str) -> list[dict[str, Any]]:
    return list(yaml.safe_load((CASES_DIR / name).read_text()))


def _id(case: dict[str, Any]) -> str:
    return str(case.get("value") or case.get("sql"))[:60] + (
        f" [{case['version']}]" if "version" in case else ""
    )


OUTPUT_CASES = [
    case
    for path in sorted(CASES_DIR.glob("*.yaml"))
    if not path.name.startswith("errors")
    for case in _load(path.name)
]
ERROR_CASES = [case for path in sorted(CASES_DIR.glob("errors*.yaml")) for case in _load(path.name)]


def _typed(v: Any) -> Any:
    """A JSON value with its number types made visible (1 vs 1.0)."""
    return json.loads(json.dumps(v), parse_float=Decimal, parse_int=lambda s: ("int", int(s)))


def _sql(case: dict[str, Any]) -> str:
    return str(case.get("sql") or f"SELECT VALUE {case['value']} FROM '{case.get('topic', 't')}'")


def _payload(case: dict[str, Any]) -> bytes:
    if "payload_text" in case:
        return str(case["payload_text"]).encode()
    return json.dumps(case.get("payload", {})).encode()


@pytest.mark.parametrize("case", OUTPUT_CASES, ids=[_id(c) for c in OUTPUT_CASES])
def test_statement_output(case: dict[str, Any]) -> None:
    statement = compile_statement(_sql(case), case.get("version", "2016-03-23"))
    ctx = MessageContext(
        topic=case.get("topic", "t"),
        payload=_payload(case),
        client_id=case.get("client_id"),
        principal=case.get("principal"),
        source_ip=case.get("source_ip"),
        timestamp_ms=case.get("timestamp", TIMESTAMP),
    )
    if "error" in case:
        with pytest.raises(RuleEvaluationError) as info:
            statement.evaluate(ctx)
        assert case["error"] in str(info.value)
        return
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


def test_every_case_through_rules_eval() -> None:
    """The same cases, all in one run of ``chat-emulator rules eval --jsonl``."""
    lines = []
    for case in OUTPUT_CASES:
        line: dict[str, Any] = {
            "sql": _sql(case),
            "topic": case.get("topic", "t"),
            "sql_version": case.get("version", "2016-03-23"),
            "timestamp": case.get("timestamp", TIMESTAMP),
        }
        if "payload_text" in case:
            line["payload_text"] = case["payload_text"]
        else:
            line["payload"] = case.get("payload", {})
        for key in ("client_id", "principal", "source_ip"):
            if key in case:
                line[key] = case[key]
        lines.append(json.dumps(line))
    done = subprocess.run(
        [sys.executable, "-m", "emulator", "rules", "eval", "--jsonl"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    results = [json.loads(r) for r in done.stdout.splitlines()]
    assert len(results) == len(OUTPUT_CASES)
    wrong = []
    for case, result in zip(OUTPUT_CASES, results, strict=True):
        if "error" in case:
            ok = case["error"] in result.get("error", "")
        elif "expected_text" in case:
            ok = result == {"matched": True, "output": case["expected_text"]}
        elif case["expected"] == "NO_MATCH":
            ok = result == {"matched": False, "output": None}
        else:
            ok = result.get("matched") is True and _typed(result["output"]) == _typed(
                case["expected"]
            )
        if not ok:
            wrong.append(f"{_sql(case)}: {result}")
    assert not wrong, "\n".join(wrong)


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
