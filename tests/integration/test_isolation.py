"""Isolation between clients in the rules engine and the Lambda service (issue 12): one
client's flood fills its own share of a queue, never everybody's, and one slow handler
does not serialize a function's other invocations.

The chat tests run the real chat (rules/, lambdas/chat under awslambdaric, moto). The
flooding client publishes through the broker's own entry point with its client ID, so its
whole flood is in the engine before the bystander acts (no rate limit or socket timing in
between); the bystanders are paho clients over real sockets.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from emulator.clock import now_ms
from emulator.config import REPO_ROOT
from emulator.messages import InboundMessage
from emulator.pytest_plugin import EmulatorFactory, EmulatorHandle
from emulator.testing import TestClient

# The broker's own per-connection quotas are another test's subject: out of the way here.
UNTHROTTLED = {"publish_rate": 1_000_000, "throughput_kib": 1_000_000}


@pytest.fixture
async def chat(iot_emulator_factory: EmulatorFactory) -> EmulatorHandle:
    return await iot_emulator_factory(rules=[str(REPO_ROOT / "rules")], **UNTHROTTLED)


def flood(iot: EmulatorHandle, topic: str, body: dict[str, Any], count: int) -> None:
    """``count`` messages from the client ``attacker``, handled before this returns."""
    payload = json.dumps(body).encode()
    publish = iot.emulator.broker.publish
    for _ in range(count):
        publish(InboundMessage(topic, payload, 0, False, "attacker", None, now_ms()))


async def replies(client: TestClient, *kinds: str) -> dict[str, dict[str, Any]]:
    """The first reply of each kind on the client's chat/in topic, in whatever order they
    come (asynchronous invocations run concurrently)."""
    found: dict[str, dict[str, Any]] = {}
    while not found.keys() >= set(kinds):
        body = (await client.message_on(f"chat/in/{client.client_id}", timeout=60)).json()
        found.setdefault(str(body.get("type")), dict(body))
    return found


async def test_a_flood_of_function_requests_leaves_a_bystander_its_welcome_and_backlog(
    chat: EmulatorHandle,
) -> None:
    """20,000 ``sendroom`` requests from one client: without per-client queues they fill
    the engine's queue and the function's event queue (10,000 each), and a bystander's
    announcement waits behind them for minutes, or is refused."""
    flood(chat, "chat/out", {"sendroom": "/lobby"}, 20_000)
    page = await chat.mqtt_client("bystander")
    await page.subscribe("chat/in/bystander", 1)
    await page.publish("chat/out", json.dumps({"connected": True, "path": "/lobby"}), qos=1)
    await page.publish("chat/out", json.dumps({"sendroom": "/lobby"}), qos=1)
    async with asyncio.timeout(30):
        got = await replies(page, "welcome", "backlog")
    assert got["welcome"]["room"] == got["backlog"]["room"] == "lobby"
    # The attacker's own requests past its share were refused, not the bystander's.
    assert chat.emulator.rules.counters["ChatLambda"].actions_failed >= 19_000


async def test_a_flood_on_the_stream_leaves_a_bystanders_message_stored(
    chat: EmulatorHandle,
) -> None:
    """30,000 ``chat/stream`` messages from one client and more while the bystander's
    message goes through: without per-client queues the shared action queue is full when
    the bystander's message is to be stored, and it never is."""
    page = await chat.mqtt_client("bystander")
    await page.subscribe("chat/pub/lobby", 1)
    flood(chat, "chat/stream", {"sendroom": "/lobby"}, 30_000)
    republished = asyncio.ensure_future(page.message_on("chat/pub/lobby", timeout=30))
    page.publish_nowait("chat/out", json.dumps({"message": "still here", "room": "/lobby"}), 1)
    sent = 30_000
    # The flood goes on, a chunk per loop turn, until the bystander's message is out: the
    # attacker's actions arrive faster than any worker finishes one, the whole time.
    while not republished.done():
        flood(chat, "chat/stream", {"sendroom": "/lobby"}, 500)
        sent += 500
        await asyncio.sleep(0)  # one loop turn: the broker reads the bystander's socket
    pub = republished.result().json()
    assert pub["message"] == "still here" and pub["clientId"] == "bystander"
    async with asyncio.timeout(60):
        await chat.emulator.rules.wait_idle()  # every admitted action has run
    ddb = chat.boto3_client("dynamodb")
    got = await asyncio.to_thread(
        ddb.get_item,
        TableName="chat",
        Key={"room": {"S": "lobby"}, "id": {"S": pub["id"]}},
    )
    assert got.get("Item", {}).get("message") == {"S": "still here"}
    counters = chat.emulator.rules.counters["ChatStream"]
    assert counters.matched == sent
    assert counters.actions_failed >= 29_000  # the attacker lost its own


HOLD_HANDLER = """
import json
import socket


def handler(event, context):
    \"\"\"Tell the test it runs; with "hold", keep running until the test closes the
    socket. The socket closes when the handler returns.\"\"\"
    with socket.create_connection(("127.0.0.1", event["port"])) as sock:
        sock.sendall((json.dumps({"clientId": event["clientId"], "n": event["n"]}) + "\\n").encode())
        if event["hold"]:
            sock.recv(1)
    return {"n": event["n"]}
"""

HOLD_RULES = """
rules:
  - ruleName: Hold
    sql: "SELECT *, clientid() AS clientId FROM 'hold/in'"
    actions:
      - lambda: {functionArn: "arn:aws:lambda:us-east-1:123456789012:function:hold"}
functions:
  - {functionName: hold, handler: handler.handler, codeUri: code, timeout: 60}
"""


class Running:
    """One invocation of ``hold`` as the test sees it: who, which, and its end."""

    def __init__(
        self, who: str, n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ):
        self.who, self.n, self.writer = who, n, writer
        self.ended = asyncio.ensure_future(reader.read())  # EOF: the handler returned

    def release(self) -> None:
        self.writer.close()

    async def end(self) -> None:
        async with asyncio.timeout(30):
            await self.ended


class Handlers:
    """A TCP server the ``hold`` handler reports to: one connection per invocation."""

    def __init__(self) -> None:
        self.arrived: asyncio.Queue[Running] = asyncio.Queue()
        self.all: list[Running] = []
        self.port = 0

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hello = json.loads(await reader.readline())
        running = Running(hello["clientId"], hello["n"], reader, writer)
        self.all.append(running)
        await self.arrived.put(running)

    async def next(self) -> Running:
        async with asyncio.timeout(60):
            return await self.arrived.get()


@pytest.fixture
async def handlers() -> AsyncIterator[Handlers]:
    found = Handlers()
    server = await asyncio.start_server(found._connected, "127.0.0.1", 0)
    found.port = server.sockets[0].getsockname()[1]
    try:
        yield found
    finally:
        for running in found.all:
            running.release()
            running.ended.cancel()
        server.close()
        await server.wait_closed()


async def hold_emulator(
    factory: EmulatorFactory, tmp_path: Path, *extra_rules: str, **settings: Any
) -> EmulatorHandle:
    """An emulator with the ``hold`` function, its rule, and ``extra_rules`` (YAML)."""
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "handler.py").write_text(HOLD_HANDLER)
    files = []
    for n, text in enumerate((HOLD_RULES, *extra_rules)):
        files.append(tmp_path / f"rules{n}.yaml")
        files[-1].write_text(text)
    return await factory(rules=[str(f) for f in files], **settings)


async def invoke_from(client: TestClient, port: int, n: int, hold: bool) -> None:
    """Client ``client`` invokes ``hold`` asynchronously through the rule's lambda action."""
    body = {"port": port, "n": n, "hold": hold}
    await client.publish("hold/in", json.dumps(body), qos=1)


async def test_a_slow_handler_does_not_serialize_another_clients_invocation(
    iot_emulator_factory: EmulatorFactory, tmp_path: Path, handlers: Handlers
) -> None:
    """Client A's nine invocations run at once and stay running (more than the four
    workers and eight dispatchers the service had); client B's still runs to its end."""
    iot = await hold_emulator(iot_emulator_factory, tmp_path)
    assert iot.emulator.config.lambda_concurrency == 10
    a, b = await iot.mqtt_client("A"), await iot.mqtt_client("B")
    for n in range(9):
        await invoke_from(a, handlers.port, n, hold=True)
    held = [await handlers.next() for _ in range(9)]
    assert sorted((r.who, r.n) for r in held) == [("A", n) for n in range(9)]
    await invoke_from(b, handlers.port, 100, hold=False)
    other = await handlers.next()
    assert (other.who, other.n) == ("B", 100)
    await other.end()  # B's handler returned...
    assert not any(r.ended.done() for r in held)  # ...while all of A's are still running
    for running in held:
        running.release()
    for running in held:
        await running.end()


async def test_a_clients_backlog_of_invocations_does_not_delay_another_clients(
    iot_emulator_factory: EmulatorFactory, tmp_path: Path, handlers: Handlers
) -> None:
    """With the function's concurrency taken by A, B's invocation is the next but one to
    run when workers free up, not the one after A's whole backlog (FIFO would run A's
    four waiting invocations first)."""
    iot = await hold_emulator(iot_emulator_factory, tmp_path, lambda_concurrency=2)
    a, b = await iot.mqtt_client("A"), await iot.mqtt_client("B")
    for n in range(6):
        await invoke_from(a, handlers.port, n, hold=True)
    running = [await handlers.next() for _ in range(2)]
    assert sorted((r.who, r.n) for r in running) == [("A", 0), ("A", 1)]
    await invoke_from(b, handlers.port, 100, hold=True)
    async with asyncio.timeout(10):
        await iot.emulator.rules.wait_idle()  # the rule has queued every invocation
    pool = iot.emulator.functions.pools["hold"]
    assert (pool.events.waiting("A"), pool.events.waiting("B")) == (4, 1)
    order = []
    for current in list(running):  # free one worker at a time; see whose turn it is
        current.release()
        await current.end()
        following = await handlers.next()
        order.append((following.who, following.n))
    assert order == [("A", 2), ("B", 100)]
    assert pool.events.waiting("A") == 3  # A's backlog still waits, behind B's


HOLD_SQL_RULES = """
rules:
  - ruleName: HoldSql
    sql: >-
      SELECT aws_lambda('arn:aws:lambda:us-east-1:123456789012:function:hold',
      {"port": port, "n": n, "hold": hold, "clientId": clientid()}) AS result
      FROM 'holdsql/in'
    awsIotSqlVersion: "2016-03-23"
    actions:
      - republish: {topic: "holdsql/out"}
"""


async def test_rules_calling_functions_from_sql_are_evaluated_client_by_client(
    iot_emulator_factory: EmulatorFactory, tmp_path: Path, handlers: Handlers
) -> None:
    """``aws_lambda()`` in a rule's SQL holds one of the engine's 8 evaluation threads for
    the call: with all 8 taken by A and two more of A's waiting, B's evaluation is the
    next but one to get a thread (a FIFO pool would run A's two first)."""
    iot = await hold_emulator(iot_emulator_factory, tmp_path, HOLD_SQL_RULES)
    a, b = await iot.mqtt_client("A"), await iot.mqtt_client("B")
    for n in range(10):
        await a.publish("holdsql/in", json.dumps({"port": handlers.port, "n": n, "hold": True}), 1)
    running = [await handlers.next() for _ in range(8)]
    assert sorted(r.who for r in running) == ["A"] * 8
    await b.publish("holdsql/in", json.dumps({"port": handlers.port, "n": 100, "hold": False}), 1)
    waiting = iot.emulator.rules.external_queue
    assert (waiting.waiting("A"), waiting.waiting("B")) == (2, 1)
    order = []
    for current in running[:2]:  # free one thread at a time; see whose turn it is
        current.release()
        following = await handlers.next()
        order.append((following.who, following.n))
    assert order[0][0] == "A" and order[1] == ("B", 100)


async def test_synchronous_calls_waiting_for_a_worker_are_served_caller_by_caller(
    iot_emulator_factory: EmulatorFactory, tmp_path: Path, handlers: Handlers
) -> None:
    """With the function's two workers taken by A's synchronous Invoke calls and three more
    of A's waiting, B's asynchronous invocation gets the next worker but one (a FIFO wait
    for workers would give A's three first)."""
    iot = await hold_emulator(iot_emulator_factory, tmp_path, lambda_concurrency=2)
    b = await iot.mqtt_client("B")
    lambda_api = iot.boto3_client("lambda")
    loop = asyncio.get_running_loop()

    def call(n: int) -> Any:
        event = {"port": handlers.port, "n": n, "hold": True, "clientId": "A"}
        return lambda_api.invoke(FunctionName="hold", Payload=json.dumps(event).encode())

    with ThreadPoolExecutor(5) as threads:
        calls = [loop.run_in_executor(threads, call, n) for n in range(5)]
        running = [await handlers.next() for _ in range(2)]
        await invoke_from(b, handlers.port, 100, hold=True)
        async with asyncio.timeout(10):
            await iot.emulator.rules.wait_idle()  # B's event is queued; its runner waits
        waiters = iot.emulator.functions.pools["hold"].slot_waiters
        assert (waiters.waiting(("invoke", "local")), waiters.waiting("B")) == (3, 1)
        order = []
        for current in list(running):  # free one worker at a time; see whose turn it is
            current.release()
            following = await handlers.next()
            order.append((following.who, following.n))
            running.append(following)
        assert order[0][0] == "A" and order[1] == ("B", 100)
        for current in running:
            current.release()
        for _ in range(2):  # A's last two
            (await handlers.next()).release()
        async with asyncio.timeout(30):
            answers = await asyncio.gather(*calls)
    assert all(answer["StatusCode"] == 200 for answer in answers)
