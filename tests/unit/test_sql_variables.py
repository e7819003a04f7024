"""SET variables reach the action templates (``${@name}``), in the engine and in the dry run
of ``rules test`` alike (aws-iot-current.md §4: "Action substitution templates", "Error
action substitution templates")."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from emulator.actions.base import ActionTargets
from emulator.messages import InboundMessage
from emulator.project.loader import load_project
from emulator.rules.context import MessageContexts
from emulator.rules.dryrun import dry_run
from emulator.rules.engine import RulesEngine

RULES = """
rules:
  - ruleName: Celsius
    sql: >-
      SET @celsius = (temp_fahrenheit - 32) * 5 / 9.0, @room = lower(room)
      SELECT round(@celsius) AS celsius FROM 'device/data' WHERE @celsius > 20
    actions:
      - republish: {topic: "rooms/${@room}/temp-${round(@celsius)}C"}
"""


def _project(tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "rules.yaml").write_text(RULES)
    project = load_project([tmp_path])
    assert project.errors == ()
    return project


def test_the_dry_run_renders_templates_with_the_statements_variables(tmp_path: Path) -> None:
    ctx = MessageContexts().of_payload(
        "device/data", b'{"temp_fahrenheit": 75, "room": "Lab"}', 1_700_000_000_000
    )
    [result] = dry_run(_project(tmp_path).rules, ctx)
    assert result["output"] == {"celsius": 24}
    assert result["actions"][0]["topic"] == "rooms/lab/temp-24C"


async def test_the_engine_renders_templates_with_the_statements_variables(
    tmp_path: Path,
) -> None:
    out: list[InboundMessage] = []
    published = asyncio.Event()

    def publish(message: InboundMessage) -> None:
        out.append(message)
        published.set()

    engine = RulesEngine(ActionTargets(publish=publish), contexts=MessageContexts())
    await engine.start()
    try:
        engine.load(_project(tmp_path))
        for fahrenheit in (75, 50):  # 10 C: WHERE @celsius > 20 is false
            body = json.dumps({"temp_fahrenheit": fahrenheit, "room": "Lab"}).encode()
            engine.handle(
                InboundMessage("device/data", body, 0, False, "c1", None, 1_700_000_000_000, 0)
            )
        async with asyncio.timeout(2):
            await published.wait()
        assert [(m.topic, json.loads(m.payload)) for m in out] == [
            ("rooms/lab/temp-24C", {"celsius": 24})
        ]
    finally:
        await engine.stop()
