"""Rules reload when their files change, without dropping MQTT connections; a file (or a
template) with errors is reported with file:line:column and the previous rules stay."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from emulator.testing import TestClient
from tests.integration.conftest import EmulatorStarter

RULE = """
rules:
  - ruleName: Relay
    sql: "SELECT * FROM 'in/x'"
    awsIotSqlVersion: "2016-03-23"
    actions:
      - republish: {{topic: "out/{target}"}}
"""


async def test_edits_reload_and_broken_files_keep_the_previous_rules(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, start_emulator: EmulatorStarter
) -> None:
    rules = tmp_path / "relay.yaml"
    rules.write_text(RULE.format(target="a"))
    em = await start_emulator(rules=[str(tmp_path)], hot_reload=True)
    assert em.watcher is not None
    client = TestClient("127.0.0.1", em.mqtt_port or 0, "reload")
    try:
        await client.connect()
        await client.subscribe("out/+", 1)

        async def relayed_to() -> str:
            await client.publish("in/x", b"{}", qos=1)
            return (await client.next_message()).topic

        assert await relayed_to() == "out/a"

        async def rewrite(path: Path, text: str) -> None:
            change = asyncio.ensure_future(em.watcher.wait_change())  # type: ignore[union-attr]
            path.write_text(text)  # the watcher polls later, after change is waiting
            async with asyncio.timeout(15):
                await change

        await rewrite(rules, RULE.format(target="b"))
        assert await relayed_to() == "out/b"  # same connection, new rules

        await rewrite(rules, RULE.format(target="c").replace("SELECT *", "SELECT * FORM"))
        assert await relayed_to() == "out/b"
        assert em.watcher.rejected == 1
        assert any(
            "relay.yaml:" in r.getMessage() and "FROM" in r.getMessage() for r in caplog.records
        )

        template = tmp_path / "template.yaml"
        await rewrite(
            template,
            "Resources:\n  R:\n    Type: AWS::IoT::TopicRule\n    Properties:\n"
            "      TopicRulePayload:\n        Sql: !Ref Missing\n        Actions: []\n",
        )
        assert em.watcher.rejected == 2
        assert any("template.yaml:" in r.getMessage() for r in caplog.records)
        assert await relayed_to() == "out/b"
        assert client.client.is_connected()
    finally:
        await client.close()
