"""Data that lasts: `up` stopped and started again on the same data directory keeps the
chat's messages, the retained messages and the persistent sessions (issue 17).

A real `up` as a user runs it, with the default backend (``auto``: DynamoDB Local and
kinesis-mock here) and the chat's own rules, on a temporary ``--data-dir``; stopped with
SIGTERM as Ctrl-C or ``docker stop`` would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import urllib.request
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from emulator.app import Emulator, StartupError
from emulator.config import load_config
from emulator.services.backends import (
    DUMMY_CREDENTIALS,
    BackendError,
    free_port,
    local_backend_available,
    reserve_port,
)
from emulator.testing import TestClient
from tests.integration.raw import TIMEOUT
from tests.integration.test_cli_up import start_up, wait_ready


@dataclass
class Up:
    proc: asyncio.subprocess.Process
    ready_line: str
    mqtt_port: int
    http_port: int
    log: list[str]
    _drain: asyncio.Task[None]

    def dynamodb_url(self) -> str:
        return self.backend_url("dynamodb")

    def backend_url(self, service: str) -> str:
        """The backend's endpoint, as ``/health`` gives it."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/health") as answer:
            return str(json.load(answer)["backends"][service])

    def kinesis(self) -> Any:
        return boto3.client(
            "kinesis",
            endpoint_url=self.backend_url("kinesis"),
            region_name="us-east-1",
            **DUMMY_CREDENTIALS,
        )

    def client(self, client_id: str, clean: bool = True) -> TestClient:
        return TestClient("127.0.0.1", self.mqtt_port, client_id, clean_session=clean)

    async def stop(self) -> None:
        """SIGTERM, as Ctrl-C or `docker stop`: a clean stop that saves what lasts."""
        self.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(TIMEOUT * 3):
            code = await self.proc.wait()
            await self._drain
        assert code == 0, "\n".join(self.log)
        assert not any("Traceback" in line for line in self.log), "\n".join(self.log)


@contextlib.asynccontextmanager
async def up(data_dir: Path, *args: str, **variables: str) -> AsyncIterator[Up]:
    env = {k: v for k, v in os.environ.items() if k != "EMULATOR_IN_MEMORY"} | variables
    proc = await start_up("--data-dir", str(data_dir), *args, env=env, rules=None)
    assert proc.stderr is not None
    stderr = proc.stderr
    log: list[str] = []

    async def drain() -> None:  # the log must not fill the pipe and block the emulator
        while line := await stderr.readline():
            log.append(line.decode(errors="replace").rstrip())

    try:
        match = await wait_ready(proc)
        handle = Up(
            proc, match.string, int(match[1]), int(match[2]), log, asyncio.create_task(drain())
        )
        yield handle
        if proc.returncode is None:
            await handle.stop()
    finally:
        if proc.returncode is None:  # the test failed: stop it, its backends with it
            proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(TIMEOUT):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()


def stored_messages(endpoint: str) -> list[str]:
    """The ``message`` of every item of the chat's table, read over the wire."""
    table = boto3.resource(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        **DUMMY_CREDENTIALS,
    ).Table("chat")
    return [str(item.get("message")) for item in table.scan(ConsistentRead=True)["Items"]]


async def wait_stored(endpoint: str, text: str) -> None:
    """Until the chat's rule has put ``text`` in the table (its action runs after the
    message is delivered, so no MQTT event marks it)."""
    async with asyncio.timeout(TIMEOUT):
        while text not in await asyncio.to_thread(stored_messages, endpoint):
            await asyncio.sleep(0.05)


async def put_record(kinesis: Any, stream: str, data: bytes) -> None:
    """A record in a new stream of our own (no rule or mapping reads it)."""
    await asyncio.to_thread(kinesis.create_stream, StreamName=stream, ShardCount=1)
    async with asyncio.timeout(TIMEOUT):
        while True:
            summary = await asyncio.to_thread(kinesis.describe_stream_summary, StreamName=stream)
            if summary["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE":
                break
            await asyncio.sleep(0.05)
    await asyncio.to_thread(kinesis.put_record, StreamName=stream, Data=data, PartitionKey="p")


def records(kinesis: Any, stream: str) -> list[bytes]:
    (shard,) = kinesis.list_shards(StreamName=stream)["Shards"]
    iterator = kinesis.get_shard_iterator(
        StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    return [r["Data"] for r in kinesis.get_records(ShardIterator=iterator)["Records"]]


def retain(http_port: int, topic: str, payload: bytes) -> None:
    """A retained message through the data plane (the chat's policy lets browsers publish
    on chat/out only)."""
    client = boto3.client(
        "iot-data",
        endpoint_url=f"http://127.0.0.1:{http_port}",
        region_name="us-east-1",
        **DUMMY_CREDENTIALS,
    )
    client.publish(topic=topic, qos=1, retain=True, payload=payload)
    client.close()


async def test_messages_retained_messages_and_sessions_survive_a_restart(tmp_path: Path) -> None:
    assert local_backend_available(load_config({})), "Java, Node and npm install are needed"
    data_dir, dynamodb_port = tmp_path / "data", free_port()
    dynamodb = f"http://127.0.0.1:{dynamodb_port}"  # the fixed port, the same after a restart
    said = f"said before the restart {uuid.uuid4()}"
    room = f"r{uuid.uuid4().hex[:8]}"
    phone = f"phone-{room}"

    async with up(data_dir, "--dynamodb-port", str(dynamodb_port)) as first:
        assert f"data={data_dir} (retained messages, persistent sessions; tables and streams)" in (
            first.ready_line
        )
        # A chat client with a persistent session joins the room, then leaves.
        away = first.client(phone, clean=False)
        await away.connect()
        await away.subscribe(f"chat/pub/{room}", 1)
        await away.disconnect()
        sender = first.client(f"sender-{room}")
        await sender.connect()
        await sender.publish("chat/out", json.dumps({"room": f"/{room}", "message": said}), 1)
        await sender.disconnect()
        await asyncio.to_thread(retain, first.http_port, "chat/pub/notice", b"welcome back")
        await wait_stored(dynamodb, said)
        # Just before the stop: kinesis-mock saves on a timer, the stop waits for it.
        await put_record(first.kinesis(), "restart-test", b"recorded before the restart")

    assert (data_dir / "broker.json").is_file()
    assert list((data_dir / "dynamodb").iterdir()), "DynamoDB Local wrote no database file"

    async with up(data_dir, "--dynamodb-port", str(dynamodb_port)) as second:
        # The chat's backlog: the table kept its items.
        assert said in await asyncio.to_thread(stored_messages, dynamodb)
        # kinesis-mock's stream (one no rule file declares) with its record.
        kept = await asyncio.to_thread(records, second.kinesis(), "restart-test")
        assert kept == [b"recorded before the restart"]
        # The session's subscription was restored: a message said after the restart is
        # stored for the absent client too.
        sender = second.client(f"sender-{room}")
        await sender.connect()
        await sender.publish("chat/out", json.dumps({"room": f"/{room}", "message": "hi"}), 1)
        # The retained message reaches a new subscriber, RETAIN set.
        reader = second.client(f"reader-{room}")
        await reader.connect()
        await reader.subscribe("chat/pub/notice", 1)
        retained = await reader.message_on("chat/pub/notice")
        assert (retained.payload, retained.retain) == (b"welcome back", True)
        # The persistent client comes back: session present, both stored messages.
        back = second.client(phone, clean=False)
        assert await back.connect() == (0, True)
        got = [(await back.next_message()).json()["message"] for _ in range(2)]
        assert got == [said, "hi"]
        for client in (sender, reader, back):
            await client.disconnect()


async def test_with_moto_the_tables_are_saved_at_a_clean_stop(tmp_path: Path) -> None:
    """moto keeps nothing on disk: the emulator scans its tables at stop and writes the
    items back at the next start (services/saved_tables.py)."""
    data_dir = tmp_path / "data"
    said = f"kept by the emulator for moto {uuid.uuid4()}"
    async with up(data_dir, "--backend", "moto") as first:
        assert "tables saved at a clean stop, no streams" in first.ready_line
        sender = first.client(f"sender-{uuid.uuid4().hex[:8]}")
        await sender.connect()
        await sender.publish("chat/out", json.dumps({"room": "/moto", "message": said}), 1)
        await sender.disconnect()
        await wait_stored(await asyncio.to_thread(first.dynamodb_url), said)
    assert (data_dir / "moto-tables.json").is_file()
    async with up(data_dir, "--backend", "moto") as second:
        endpoint = await asyncio.to_thread(second.dynamodb_url)
        assert said in await asyncio.to_thread(stored_messages, endpoint)


async def test_after_a_crash_the_last_periodic_save_comes_back(tmp_path: Path) -> None:
    """Killed, not stopped: what the broker saved on its timer is there at the next start."""
    data_dir = tmp_path / "data"
    rules = ("--rules", "tests/fixtures/empty-rules")
    async with up(data_dir, *rules, EMULATOR_SAVE_INTERVAL="0.1") as first:
        sender = first.client("sender")
        await sender.connect()
        await sender.publish("lamp/state", "on", qos=1, retain=True)
        await sender.disconnect()
        async with asyncio.timeout(TIMEOUT):  # the timer's save; no event says when
            while "lamp/state" not in await asyncio.to_thread(read_saved, data_dir):
                await asyncio.sleep(0.05)
        first.proc.kill()
        await first.proc.wait()
    async with up(data_dir, *rules) as second:
        reader = second.client("reader")
        await reader.connect()
        await reader.subscribe("lamp/state", 1)
        retained = await reader.message_on("lamp/state")
        assert (retained.payload, retained.retain) == (b"on", True)
        await reader.disconnect()


def read_saved(data_dir: Path) -> str:
    try:
        return (data_dir / "broker.json").read_text()
    except FileNotFoundError:
        return ""


async def test_in_memory_keeps_nothing_and_says_so(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "EMULATOR_IN_MEMORY"}
    proc = await start_up("--data-dir", str(tmp_path / "data"), "--in-memory", env=env)
    try:
        match = await wait_ready(proc)
        assert "data=in memory (nothing kept)" in match.string
    finally:
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(TIMEOUT):
            await proc.communicate()
    assert proc.returncode == 0
    assert not (tmp_path / "data").exists()


async def test_a_data_directory_serves_one_emulator_at_a_time(tmp_path: Path) -> None:
    """A second emulator on the same directory would overwrite the first one's files."""
    settings = {
        "mqtt_port": 0,
        "http_port": 0,
        "rules": [],
        "hot_reload": False,
        "data_dir": str(tmp_path / "data"),
    }
    first = Emulator(load_config(settings, environ={}))
    second = Emulator(load_config(settings, environ={}))
    await first.start()
    try:
        with pytest.raises(StartupError) as info:
            await second.start()
        assert str(info.value) == (
            f"data directory {tmp_path / 'data'} is in use by another emulator "
            f"(pid {os.getpid()}): stop it, or give this one another --data-dir (or --in-memory)"
        )
    finally:
        await second.stop()
        await first.stop()
    third = Emulator(load_config(settings, environ={}))  # the first one let it go
    await third.start()
    await third.stop()


def test_the_fixed_port_is_free_again_right_after_a_stop() -> None:
    """A restart reuses DynamoDB Local's port at once: the previous run's connections in
    TIME_WAIT do not count as a user of it, a listener does."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    served, _ = listener.accept()
    served.close()  # the server closes first: its side waits in TIME_WAIT
    client.close()
    with pytest.raises(BackendError, match=f"DynamoDB Local's port {port} is in use"):
        reserve_port(port)
    listener.close()
    assert reserve_port(port) == port


async def test_an_unreadable_saved_state_is_set_aside_and_the_broker_starts_empty(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "broker.json").write_text('{"format": 1, "retained": [')
    settings = {"mqtt_port": 0, "http_port": 0, "rules": [], "data_dir": str(data_dir)}
    emulator = Emulator(load_config({**settings, "hot_reload": False}, environ={}))
    await emulator.start()
    try:
        assert emulator.broker.state.retained == {}
        assert (data_dir / "broker.unreadable").read_text() == '{"format": 1, "retained": ['
        assert any(
            "unreadable broker state: JSONDecodeError" in r.getMessage() for r in caplog.records
        )
    finally:
        await emulator.stop()
    assert json.loads((data_dir / "broker.json").read_text())["format"] == 1
