"""The chat function's replies, built without the services: whatever the tables hold
becomes JSON, and every reply fits AWS IoT's 128 KB payload limit (lambdas/chat/app.py)."""

from __future__ import annotations

import importlib.util
import json
from decimal import Decimal
from types import ModuleType
from typing import Any

import pytest

from emulator.config import REPO_ROOT

MAX_PAYLOAD = 128 * 1024


@pytest.fixture(scope="module")
def app() -> ModuleType:
    """The handler's module, as Lambda loads it; its boto3 clients only need a region."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        spec = importlib.util.spec_from_file_location("chat_app", REPO_ROOT / "lambdas/chat/app.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("42"), b"42"),
        (Decimal("1.5"), b"1.5"),
        (Decimal("1E+3"), b"1000"),  # an integral number stays an integer
        (Decimal("123456789012345678901234567890"), b"123456789012345678901234567890"),
        ({"n": Decimal("-0.25"), "l": [Decimal("7")]}, b'{"n":-0.25,"l":[7]}'),
        ({Decimal("2"), Decimal("1")}, b"[1,2]"),  # a number set from another writer
        ("漢字", '"漢字"'.encode()),  # UTF-8, 3 bytes a character, not \\uXXXX's 6
    ],
)
def test_table_values_encode_as_json(app: ModuleType, value: Any, expected: bytes) -> None:
    assert app.encode(value) == expected


def test_a_crowded_room_lists_the_members_that_fit(app: ModuleType) -> None:
    members = [
        {"clientId": f"web-{i:06}" + "x" * 100, "name": f"n{i:05}" * 10} for i in range(2000)
    ]
    body = app.fit({"type": "presence", "room": "lobby", "asOf": 1}, "online", members)
    assert len(app.encode(body)) <= MAX_PAYLOAD
    assert body["online"] == members[: len(body["online"])]
    assert body["omitted"] == 2000 - len(body["online"]) > 0


@pytest.mark.parametrize("message", ["a" * 200_000, "\u0001" * 40_000, {"deep": ["é" * 70_000]}])
def test_one_message_too_big_alone_is_cut_to_fit(app: ModuleType, message: Any) -> None:
    entry = {"room": "r", "id": "1-x", "message": message, "name": "n" * 500, "clientId": "c"}
    body = app.fit({"type": "backlog", "room": "r"}, "messages", [entry, entry], app.shorten)
    size = len(app.encode(body))
    assert MAX_PAYLOAD - 16 <= size <= MAX_PAYLOAD  # cut no shorter than it needs to be
    (cut,) = body["messages"]
    assert cut["truncated"] is True and body["omitted"] == 1
    assert cut["name"] == "n" * 64 + "…"
    compact = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
    text = message if isinstance(message, str) else compact  # not a string: its JSON text
    assert cut["message"].endswith("…") and text.startswith(cut["message"][:-1])
