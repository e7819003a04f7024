"""A backend that stops mid-stream: actions fail into the error action with a clear
reason, the emulator keeps serving, and it recovers by itself when the backend is back
(in-memory backends come back empty, so tables and streams are provisioned again)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from emulator.app import Emulator
from emulator.services.backends import ChildProcess, free_port
from emulator.testing import TestClient
from tests.integration.conftest import EmulatorStarter

RULES = """
rules:
  - ruleName: Store
    sql: "SELECT * FROM 'store/in'"
    awsIotSqlVersion: "2016-03-23"
    actions:
      - dynamoDBv2: {putItem: {tableName: faults}}
      - kinesis: {streamName: faults-stream, partitionKey: "${id}"}
    errorAction:
      republish: {topic: store/errors}
tables:
  - tableName: faults
    keySchema: {hashKey: id, hashType: S}
streams:
  - streamName: faults-stream
    shardCount: 1
"""


def moto_process(port: int) -> ChildProcess:
    return ChildProcess("test-moto", [sys.executable, "-m", "moto.server", "-p", str(port)])


async def stored(em: Emulator, item_id: str) -> bool:
    response = await em.backends.dynamodb.get_item(
        TableName="faults", Key={"id": {"S": item_id}}, ConsistentRead=True
    )
    return "Item" in response


async def store(client: TestClient, em: Emulator, item_id: str) -> None:
    await client.publish("store/in", json.dumps({"id": item_id}), qos=1)
    await em.rules.wait_idle()


async def test_backend_outage_fails_into_the_error_action_and_recovers(
    tmp_path: Path, start_emulator: EmulatorStarter
) -> None:
    (tmp_path / "rules.yaml").write_text(RULES)
    port = free_port()
    backend = moto_process(port)
    await backend.start()
    url = f"http://127.0.0.1:{port}"
    em = await start_emulator(
        rules=[str(tmp_path)], backend="external", dynamodb_endpoint=url, kinesis_endpoint=url
    )
    client = TestClient("127.0.0.1", em.mqtt_port or 0, "faults")
    try:
        await client.connect()
        await client.subscribe("store/errors", 1)
        await store(client, em, "before")
        assert await stored(em, "before")

        await backend.stop()
        async with asyncio.timeout(15):
            await em.backends.wait_state(up=False)
        await client.publish("store/in", json.dumps({"id": "during"}), qos=1)
        error: dict[str, Any] = (await client.message_on("store/errors", timeout=30)).json()
        assert error["ruleName"] == "Store"
        failed = {f["failedAction"]: f for f in error["failures"]}
        assert set(failed) == {"DynamoDBv2Action", "KinesisAction"}
        assert "connect" in failed["DynamoDBv2Action"]["errorMessage"].lower()
        assert failed["DynamoDBv2Action"]["failedResource"] == "faults"

        backend = moto_process(port)  # back, and empty
        await backend.start()
        async with asyncio.timeout(30):
            await em.backends.wait_state(up=True)
        ok_before = em.rules.counters["Store"].actions_ok
        await store(client, em, "after")
        assert await stored(em, "after")
        assert em.rules.counters["Store"].actions_ok == ok_before + 2
        assert em.health()["backends"]["outages"] == 1
    finally:
        await client.close()
        await em.stop()  # before the backend it was told to use (the fixture's stop is a no-op)
        await backend.stop()


async def test_a_backend_child_process_that_dies_is_restarted(
    tmp_path: Path, start_emulator: EmulatorStarter
) -> None:
    (tmp_path / "rules.yaml").write_text(RULES)
    em = await start_emulator(rules=[str(tmp_path)], backend="moto")
    client = TestClient("127.0.0.1", em.mqtt_port or 0, "faults-child")
    try:
        await client.connect()
        child = em.backends._children[0]
        assert child.proc is not None
        child.proc.kill()
        async with asyncio.timeout(15):
            await em.backends.wait_state(up=False)
        async with asyncio.timeout(30):
            await em.backends.wait_state(up=True)
        await store(client, em, "restarted")
        assert await stored(em, "restarted")
    finally:
        await client.close()
