"""MQTT 5 with mqtt.js (``protocolVersion: 5``, and 4 for MQTT 3.1.1), a Node client nobody
here wrote, over TCP and WebSocket: the acceptance scenarios of test_mqtt5.py (paho) again:
CONNACK properties, message properties end to end, message expiry, topic aliases both
ways, shared subscriptions, request/response, MQTT 5 and 3.1.1 together, and a rule
reading user properties and republishing with headers (aws-iot-current.md, sections 1,
2 and 5).

The Node side is ``mqtt5_mqttjs.cjs``: one process per scenario prints what it observed as
JSON, asserted on here. The scenarios share one emulator per module; their client IDs,
topics and share names carry a tag of their own."""

from __future__ import annotations

import base64
import itertools
import json
import math
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator.pytest_plugin import EmulatorHandle, emulator_in_thread

SCRIPT = Path(__file__).with_name("mqtt5_mqttjs.cjs")
NODE_MODULES = Path(__file__).parents[2] / "node_modules"
_tags = itertools.count()

# A rule reading the MQTT 5 properties and republishing with headers (shared by the
# MQTT 5 tests of paho-mqtt, mqtt.js and the AWS CRT client).
RULES = (Path(__file__).parent / "mqtt5_rules.yaml").read_text()


@pytest.fixture(scope="module")
def iot(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EmulatorHandle]:
    rules = tmp_path_factory.mktemp("mqttjs") / "rules.yaml"
    rules.write_text(RULES)
    with emulator_in_thread(request.config.rootpath, rules=[str(rules)], backend="auto") as handle:
        yield handle


@pytest.fixture(params=["tcp", "ws"])
def url(request: pytest.FixtureRequest, iot: EmulatorHandle) -> str:
    if request.param == "ws":
        return iot.ws_url
    return f"mqtt://{iot.host}:{iot.mqtt_port}"


def run(scenario: str, url: str) -> dict[str, Any]:
    """Run one scenario of the Node script; what it observed."""
    node = shutil.which("node")
    assert node, "Node.js is needed for the mqtt.js tests"
    assert (NODE_MODULES / "mqtt").is_dir(), "mqtt.js is missing: run npm ci"
    tag = f"{scenario}{next(_tags)}"
    done = subprocess.run(
        [node, str(SCRIPT), json.dumps({"scenario": scenario, "url": url, "tag": tag})],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines, f"no output from {scenario}: {done.stderr}"
    result: dict[str, Any] = json.loads(lines[-1])
    assert "error" not in result, f"{scenario} over {url}: {result['error']}"
    return result


def unhex(value: dict[str, str]) -> bytes:
    return bytes.fromhex(value["hex"])


def test_connack_properties_as_aws_sends_them(url: str) -> None:
    """Maximum QoS 1, Topic Alias Maximum 8, Receive Maximum 100, Subscription Identifiers
    unavailable, a Session Expiry Interval over the maximum lowered and returned, the
    keep-alive raised to 30 s, and an assigned client ID for an empty one."""
    result = run("connack", url)
    p = result["properties"]
    assert result["reasonCode"] == 0
    assert p["maximumQoS"] == 1, p
    assert p["topicAliasMaximum"] == 8, p
    assert p["receiveMaximum"] == 100, p
    assert p["subscriptionIdentifiersAvailable"] is False, p
    assert p["sessionExpiryInterval"] == 3600, p
    assert p["serverKeepAlive"] == 30, "AWS: a keep-alive of 1-29 s is 30 s"
    assigned = p.get("assignedClientIdentifier", "")
    assert assigned.startswith("auto-") and "/" not in assigned, p


def test_user_properties_and_correlation_data_round_trip(url: str) -> None:
    result = run("properties", url)
    p = result["withProperties"]["properties"]
    assert p["userProperties"] == {"a": ["1", "3"], "b": "2"}, p
    assert unhex(p["correlationData"]) == b"\x00\x01corr", p
    assert p["contentType"] == "application/json", p
    assert p["responseTopic"] == "reply/here", p
    assert p["payloadFormatIndicator"] is True, p
    assert 58 <= p["messageExpiryInterval"] <= 60, p
    assert result["bare"]["properties"] == {}, "a PUBLISH without properties got some"


def test_message_expiry_is_passed_on_as_what_is_left(url: str) -> None:
    """AWS forwards the Message Expiry Interval as the time left, and expired messages are
    not delivered, also those queued for an offline persistent session."""
    result = run("expiry", url)
    live = result["live"]
    assert live["payload"] == "long" and 58 <= live["properties"]["messageExpiryInterval"] <= 60
    retained = result["retained"]
    assert retained["payload"] == "retained" and retained["retain"] is True
    assert 28 <= retained["properties"]["messageExpiryInterval"] <= 30, retained
    assert result["sessionPresent"] is True
    first, second = result["queued"]
    assert first["payload"] == "five", "the 1 s message expired while the client was away"
    # 5 s less the 1.2 s or more it waited, and no less than the time it was away allows
    left = first["properties"]["messageExpiryInterval"]
    assert 5 - math.ceil(result["awayMs"] / 1000) <= left <= 3, (result["awayMs"], left)
    assert (second["payload"], second["properties"]) == ("plain", {}), "no expiry: none given"


def test_topic_alias_from_the_client(url: str) -> None:
    """The broker resolves aliases the client sets, by hand (and bound again to another
    topic) or with mqtt.js's autoAssignTopicAlias (past 8 topics it rebinds the least
    recently used alias); the receiver (no Topic Alias Maximum) gets every topic in full."""
    result = run("aliasFromClient", url)
    manual = [(p["topic"], p["properties"].get("topicAlias")) for p in result["manualSent"]]
    tag = manual[0][0].split("/")[1]
    base = f"alias/{tag}"
    assert manual == [(f"{base}/manual", 3), ("", 3), (f"{base}/other", 3), ("", 3)]
    auto = [(p["topic"], p["properties"].get("topicAlias")) for p in result["autoSent"]]
    assert [topic == "" for topic, _ in auto] == [False, True] + [False] * 9 + [True], auto
    assert all(1 <= alias <= 8 for _, alias in auto), auto
    assert auto[10][1] in {alias for _, alias in auto[:9]}, f"an alias bound again: {auto}"
    auto_topics = [0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9]
    assert result["received"] == [
        [f"{base}/manual", "first"],
        [f"{base}/manual", "second"],
        [f"{base}/other", "third"],
        [f"{base}/other", "fourth"],
    ] + [[f"{base}/auto{t}", f"auto-{n}"] for n, t in enumerate(auto_topics)]
    assert result["receivedAliases"] == [None] * 16
    assert result["disconnects"] == []


def test_topic_alias_to_a_client_that_takes_them(url: str) -> None:
    """The client's Topic Alias Maximum (2) bounds the broker's aliases: the first two
    topics get aliases 1 and 2 (then the alias alone), a third goes in full; mqtt.js gives
    the application the topics."""
    result = run("aliasToClient", url)
    topics = [topic for topic, _ in result["received"]]
    base = topics[0].rsplit("/", 1)[0]
    assert topics == [f"{base}/{t}" for t in "aabaccb"]
    assert [payload for _, payload in result["received"]] == [str(n) for n in range(7)]
    assert result["packets"] == [
        [f"{base}/a", 1],
        ["", 1],
        [f"{base}/b", 2],
        ["", 1],
        [f"{base}/c", None],
        [f"{base}/c", None],
        ["", 2],
    ]
    assert result["disconnects"] == []


def test_shared_subscription_spreads_the_messages(url: str) -> None:
    """Each message goes to one member of the group (two MQTT 5 members and one MQTT 3.1.1),
    in turn; a plain subscriber gets all of them."""
    result = run("shared", url)
    assert result["granted"] == [[1], [1], [1]]
    got = result["got"]
    assert sorted(n for part in got for n in part) == list(range(9)), got
    assert [len(part) for part in got] == [3, 3, 3], got
    assert result["watched"] == 9


def test_request_response_with_correlation_data(url: str) -> None:
    result = run("requestResponse", url)
    request = result["request"]
    reply_to = request["properties"]["responseTopic"]
    assert unhex(request["properties"]["correlationData"]) == b"req-1"
    replies = result["replies"]
    assert [r["topic"] for r in replies] == [reply_to, reply_to]
    assert sorted((r["payload"], unhex(r["properties"]["correlationData"])) for r in replies) == [
        ("pong:req-1", b"req-1"),
        ("pong:req-2", b"req-2"),
    ]


def test_mqtt5_and_311_clients_talk_to_each_other(url: str) -> None:
    result = run("mixed", url)
    assert result["toOld"]["protocol"] == 4
    assert result["toOld"]["payload"] == "from 5"
    assert result["toOld"]["properties"] == {}, "MQTT 3.1.1 has no properties"
    assert result["toNew"]["payload"] == "from 3.1.1"
    assert result["toNew"]["properties"] == {}


def test_a_rule_reads_user_properties_and_republishes_with_headers(url: str) -> None:
    result = run("rule", url)
    assert result["payload"] == {
        "tags": ["red", "blue"],
        "ct": "text/plain",
        "corr": base64.b64encode(b"c-42").decode(),
    }
    p = result["properties"]
    assert p["contentType"] == "application/json", p
    assert unhex(p["correlationData"]) == b"c-42", p
    assert p["userProperties"] == {"from-rule": "red"}, p
    assert 118 <= p["messageExpiryInterval"] <= 120, p
