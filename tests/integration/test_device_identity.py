"""Device identity against the emulator with outside clients only: boto3's ``iot`` client
makes certificates, policies and things; paho-mqtt and the AWS IoT Device SDK v2 (awscrt)
connect over mutual TLS trusting the emulator's CA file, as device code does against AWS.

The emulators run on their own threads (``iot_emulators``), so boto3's blocking calls and
the TLS handshakes of the clients never wait on the loop that serves them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from awscrt import auth
from awscrt import mqtt as crt_mqtt
from awsiot import mqtt_connection_builder
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from emulator.app import StartupError
from emulator.identity.x509 import (
    certificate_id,
    der,
    issue_keys_and_certificate,
    new_authority,
    pem,
)
from emulator.pytest_plugin import EmulatorHandle, ThreadedEmulatorFactory
from emulator.testing import TestClient

ALLOW_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}],
}
ARN = "arn:aws:iot:us-east-1:123456789012"
THING_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "iot:Connect",
            "Resource": f"{ARN}:client/${{iot:Connection.Thing.ThingName}}",
        },
        {
            "Effect": "Allow",
            "Action": "iot:Publish",
            "Resource": f"{ARN}:topic/things/${{iot:Connection.Thing.ThingName}}/*",
        },
    ],
}


@pytest.fixture
def iot(iot_emulators: ThreadedEmulatorFactory) -> EmulatorHandle:
    return iot_emulators(rules=[], backend="auto")


def iot_client(handle: EmulatorHandle) -> Any:
    return handle.boto3_client("iot")


def ca_file(handle: EmulatorHandle) -> str:
    path = handle.emulator.controlplane.ca_path
    assert path is not None
    return str(path)


def tls_port(handle: EmulatorHandle) -> int:
    port = handle.emulator.controlplane.mqtt_tls_port
    assert port is not None
    return port


def new_device(iot_api: Any, tmp_path: Path, name: str, active: bool = True) -> dict[str, Any]:
    """CreateKeysAndCertificate, the files a device keeps (certificate and private key)."""
    made = iot_api.create_keys_and_certificate(setAsActive=active)
    cert = tmp_path / f"{name}.pem.crt"
    key = tmp_path / f"{name}.private.key"
    cert.write_text(made["certificatePem"])
    key.write_text(made["keyPair"]["PrivateKey"])
    return {**made, "cert": str(cert), "key": str(key)}


def device(handle: EmulatorHandle, made: dict[str, Any], client_id: str) -> TestClient:
    client = TestClient("localhost", tls_port(handle), client_id)
    client.client.tls_set(ca_certs=ca_file(handle), certfile=made["cert"], keyfile=made["key"])
    return client


async def refused(client: TestClient) -> bool:
    """Whether the connection was refused: a failed handshake, a closed connection
    before CONNACK, or a CONNACK with an error code."""
    try:
        rc, _ = await client.connect(expect_rc=None)
    except (ssl.SSLError, OSError):
        return True
    finally:
        await client.close()
    return rc != 0


async def plain_subscriber(handle: EmulatorHandle, topic: str) -> TestClient:
    client = TestClient("127.0.0.1", handle.mqtt_port, f"watch-{abs(hash(topic))}")
    await client.connect()
    assert await client.subscribe(topic, 1) == [1]
    return client


# -- acceptance --------------------------------------------------------------------------
async def test_a_device_made_through_the_api_connects_over_mutual_tls_and_publishes(
    iot: EmulatorHandle, tmp_path: Path
) -> None:
    api = iot_client(iot)
    made = new_device(api, tmp_path, "sensor")
    assert len(made["certificateId"]) == 64
    assert made["certificateArn"] == f"{ARN}:cert/{made['certificateId']}"
    api.create_policy(policyName="devices", policyDocument=json.dumps(ALLOW_ALL))
    api.attach_policy(policyName="devices", target=made["certificateArn"])
    watcher = await plain_subscriber(iot, "sensors/#")
    sensor = device(iot, made, "sensor-1")
    try:
        await sensor.connect()
        await sensor.publish("sensors/1", b'{"t": 21}', qos=1)
        assert (await watcher.message_on("sensors/1")).payload == b'{"t": 21}'
    finally:
        await sensor.close()
        await watcher.close()
    described = api.describe_certificate(certificateId=made["certificateId"])
    assert described["certificateDescription"]["status"] == "ACTIVE"
    assert api.list_attached_policies(target=made["certificateArn"])["policies"] == [
        {"policyName": "devices", "policyArn": f"{ARN}:policy/devices"}
    ]


async def test_an_unregistered_or_inactive_certificate_is_refused(
    iot: EmulatorHandle, tmp_path: Path
) -> None:
    api = iot_client(iot)
    api.create_policy(policyName="devices", policyDocument=json.dumps(ALLOW_ALL))
    inactive = new_device(api, tmp_path, "inactive", active=False)
    api.attach_policy(policyName="devices", target=inactive["certificateArn"])
    assert await refused(device(iot, inactive, "inactive-1"))
    # made ACTIVE, the same files connect; INACTIVE again, refused again
    api.update_certificate(certificateId=inactive["certificateId"], newStatus="ACTIVE")
    client = device(iot, inactive, "inactive-1")
    await client.connect()
    await client.close()
    api.update_certificate(certificateId=inactive["certificateId"], newStatus="INACTIVE")
    assert await refused(device(iot, inactive, "inactive-1"))
    # a certificate deleted from the registry (issued by the emulator's CA) is unknown
    api.delete_certificate(certificateId=inactive["certificateId"], forceDelete=True)
    assert await refused(device(iot, inactive, "gone-1"))
    # and a self-signed certificate nobody registered never gets past the handshake
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stranger")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    stranger = {"cert": str(tmp_path / "s.crt"), "key": str(tmp_path / "s.key")}
    Path(stranger["cert"]).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    Path(stranger["key"]).write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    assert await refused(device(iot, stranger, "stranger-1"))
    assert iot.emulator.health()["tls"]["refused"] >= 3


async def test_a_policy_on_the_thing_name_admits_the_attached_thing_and_denies_another(
    iot: EmulatorHandle, tmp_path: Path
) -> None:
    api = iot_client(iot)
    made = new_device(api, tmp_path, "pump")
    api.create_policy(policyName="things", policyDocument=json.dumps(THING_POLICY))
    api.attach_policy(policyName="things", target=made["certificateArn"])
    api.create_thing(thingName="pump-7")
    api.create_thing(thingName="pump-8")  # exists, but not attached to this certificate
    api.attach_thing_principal(thingName="pump-7", principal=made["certificateArn"])
    assert api.list_thing_principals(thingName="pump-7")["principals"] == [made["certificateArn"]]
    watcher = await plain_subscriber(iot, "things/#")
    pump = device(iot, made, "pump-7")
    try:
        await pump.connect()
        await pump.publish("things/pump-7/state", b"on", qos=1)
        assert (await watcher.message_on("things/pump-7/state")).payload == b"on"
    finally:
        await pump.close()
        await watcher.close()
    other = device(iot, made, "pump-8")
    rc, _ = await other.connect(expect_rc=None)
    await other.close()
    assert rc not in (0, -1)  # a CONNACK refusing it (AWS: not authorized)
    # TestAuthorization says the same
    result = api.test_authorization(
        principal=made["certificateArn"],
        clientId="pump-8",
        authInfos=[{"actionType": "CONNECT", "resources": [f"{ARN}:client/pump-8"]}],
    )
    assert result["authResults"][0]["authDecision"] == "IMPLICIT_DENY"
    result = api.test_authorization(
        principal=made["certificateArn"],
        clientId="pump-7",
        authInfos=[{"actionType": "CONNECT", "resources": [f"{ARN}:client/pump-7"]}],
    )
    assert result["authResults"][0]["authDecision"] == "ALLOWED"


async def test_a_certificate_without_policies_is_denied_as_on_aws(
    iot: EmulatorHandle, tmp_path: Path
) -> None:
    made = new_device(iot_client(iot), tmp_path, "bare")
    rc, _ = await device(iot, made, "bare-1").connect(expect_rc=None)
    assert rc not in (0, -1)


async def test_the_device_sdk_v2_mtls_builder_connects_unmodified(
    iot: EmulatorHandle, tmp_path: Path
) -> None:
    api = iot_client(iot)
    made = new_device(api, tmp_path, "crt")
    api.create_policy(policyName="devices", policyDocument=json.dumps(ALLOW_ALL))
    api.attach_policy(policyName="devices", target=made["certificateArn"])
    endpoint = api.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
    host, _, port = endpoint.partition(":")
    assert (host, int(port)) == ("localhost", tls_port(iot))
    watcher = await plain_subscriber(iot, "crt/#")
    connection = mqtt_connection_builder.mtls_from_path(
        endpoint=host,
        port=int(port),
        cert_filepath=made["cert"],
        pri_key_filepath=made["key"],
        ca_filepath=ca_file(iot),
        client_id="crt-device",
        clean_session=True,
        keep_alive_secs=30,
    )
    try:
        await asyncio.wrap_future(connection.connect())
        published, _ = connection.publish("crt/hello", b"from awscrt", crt_mqtt.QoS.AT_LEAST_ONCE)
        await asyncio.wrap_future(published)
        assert (await watcher.message_on("crt/hello")).payload == b"from awscrt"
    finally:
        await asyncio.wrap_future(connection.disconnect())
        await watcher.close()


async def test_lifecycle_events_and_principal_name_the_certificate(
    iot: EmulatorHandle, tmp_path: Path
) -> None:
    api = iot_client(iot)
    made = new_device(api, tmp_path, "ids")
    api.create_policy(policyName="devices", policyDocument=json.dumps(ALLOW_ALL))
    api.attach_policy(policyName="devices", target=made["certificateArn"])
    api.create_topic_rule(
        ruleName="who",
        topicRulePayload={
            "sql": "SELECT principal() AS principal, clientid() AS client FROM 'ids/in'",
            "actions": [{"republish": {"topic": "ids/out", "roleArn": f"{ARN}:role/r"}}],
        },
    )
    watcher = await plain_subscriber(iot, "$aws/events/presence/connected/+")
    assert await watcher.subscribe("ids/out", 1) == [1]
    client = device(iot, made, "ids-1")
    try:
        await client.connect()
        event = (await watcher.message_on("$aws/events/presence/connected/ids-1")).json()
        assert event["principalIdentifier"] == made["certificateId"]
        await client.publish("ids/in", b"{}", qos=1)
        out = (await watcher.message_on("ids/out")).json()
        assert out == {"principal": made["certificateId"], "client": "ids-1"}
    finally:
        await client.close()
        await watcher.close()


async def test_wss_on_the_https_port_trusts_the_same_ca(iot: EmulatorHandle) -> None:
    port = iot.emulator.controlplane.https_port
    assert port is not None
    client = TestClient("localhost", port, "wss-1", transport="websockets")
    client.client.tls_set(ca_certs=ca_file(iot))
    await client.connect()
    await client.close()
    # the CA file is served too, the same bytes
    with urllib.request.urlopen(f"{iot.http_url}/ca.pem") as answer:
        assert answer.read() == Path(ca_file(iot)).read_bytes()


# -- topic rules through the API ----------------------------------------------------------
async def test_a_rule_created_through_the_api_fires_and_disabling_it_stops_it(
    iot: EmulatorHandle,
) -> None:
    api = iot_client(iot)
    watcher = await plain_subscriber(iot, "alerts/#")
    assert await watcher.subscribe("marker", 1) == [1]
    publisher = TestClient("127.0.0.1", iot.mqtt_port, "pub-1")
    await publisher.connect()
    try:
        api.create_topic_rule(
            ruleName="hot",
            topicRulePayload={
                "sql": "SELECT temp FROM 'sensors/+/temp' WHERE temp > 30",
                "actions": [{"republish": {"topic": "alerts/hot", "roleArn": f"{ARN}:role/r"}}],
            },
        )
        await publisher.publish("sensors/1/temp", b'{"temp": 35}', qos=1)
        assert (await watcher.message_on("alerts/hot")).json() == {"temp": 35}
        rule = api.get_topic_rule(ruleName="hot")
        assert rule["rule"]["sql"] == "SELECT temp FROM 'sensors/+/temp' WHERE temp > 30"
        assert rule["ruleArn"] == f"{ARN}:rule/hot"
        listed = api.list_topic_rules()["rules"]
        assert [(r["ruleName"], r["topicPattern"]) for r in listed] == [("hot", "sensors/+/temp")]
        api.disable_topic_rule(ruleName="hot")
        await publisher.publish("sensors/1/temp", b'{"temp": 36}', qos=1)
        await publisher.publish("marker", b"after", qos=1)  # delivered after any republish
        assert (await watcher.next_message()).topic == "marker"
        api.enable_topic_rule(ruleName="hot")
        await publisher.publish("sensors/1/temp", b'{"temp": 37}', qos=1)
        assert (await watcher.message_on("alerts/hot")).json() == {"temp": 37}
        api.delete_topic_rule(ruleName="hot")
        assert api.list_topic_rules()["rules"] == []
    finally:
        await publisher.close()
        await watcher.close()


def test_bad_sql_answers_sql_parse_exception(iot: EmulatorHandle) -> None:
    api = iot_client(iot)
    with pytest.raises(ClientError) as info:
        api.create_topic_rule(
            ruleName="broken", topicRulePayload={"sql": "SELECT * FORM 'a'", "actions": []}
        )
    error = info.value.response["Error"]
    assert error["Code"] == "SqlParseException"
    assert "line 1" in error["Message"]
    with pytest.raises(ClientError) as missing:
        api.get_topic_rule(ruleName="broken")
    assert missing.value.response["Error"]["Code"] == "UnauthorizedException"


def test_the_aws_cli_runs_against_the_emulator(iot: EmulatorHandle) -> None:
    aws = Path(sys.executable).with_name("aws")
    env = {
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PATH": "/usr/bin:/bin",
        "HOME": "/nonexistent",
    }
    payload = json.dumps(
        {
            "sql": "SELECT * FROM 'cli/in'",
            "actions": [{"republish": {"topic": "cli/out", "roleArn": f"{ARN}:role/r"}}],
        }
    )
    base = [str(aws), "--endpoint-url", iot.http_url, "iot"]
    subprocess.run(
        [*base, "create-topic-rule", "--rule-name", "cli", "--topic-rule-payload", payload],
        check=True,
        env=env,
        capture_output=True,
        timeout=60,
    )
    listed = subprocess.run(
        [*base, "list-topic-rules"], check=True, env=env, capture_output=True, timeout=60
    )
    assert [r["ruleName"] for r in json.loads(listed.stdout)["rules"]] == ["cli"]


def test_unknown_api_paths_answer_aws_errors_not_the_chat_page(iot: EmulatorHandle) -> None:
    api = iot_client(iot)
    # GET /endpoint and GET /rules were the chat page's rooms: boto3 read {} from them
    assert api.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
    assert api.list_topic_rules()["rules"] == []
    for method, path in (("GET", "/jobs/x"), ("POST", "/thing-groups/g"), ("GET", "/things/a/b")):
        request = urllib.request.Request(f"{iot.http_url}{path}", method=method)
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request)
        info.value.close()
        assert info.value.code == 404
        assert info.value.headers["x-amzn-ErrorType"] == "UnknownOperationException"
        assert info.value.headers["Content-Type"].startswith("application/json")
    # a browser opening the room /jobs still gets the page
    page = urllib.request.Request(f"{iot.http_url}/jobs", headers={"Accept": "text/html"})
    with urllib.request.urlopen(page) as answer:
        assert answer.headers["Content-Type"].startswith("text/html")


# -- what lasts -------------------------------------------------------------------------
@pytest.fixture
def kept(iot_emulators: ThreadedEmulatorFactory, tmp_path: Path) -> Iterator[Any]:
    def start() -> EmulatorHandle:
        return iot_emulators(rules=[], backend="auto", in_memory=False, data_dir=tmp_path / "d")

    yield start


async def test_certificates_policies_and_rules_survive_a_restart(kept: Any, tmp_path: Path) -> None:
    first: EmulatorHandle = kept()
    api = iot_client(first)
    made = new_device(api, tmp_path, "kept")
    api.create_policy(policyName="devices", policyDocument=json.dumps(ALLOW_ALL))
    api.attach_policy(policyName="devices", target=made["certificateArn"])
    api.create_thing(thingName="kept-1", attributePayload={"attributes": {"room": "lab"}})
    api.create_topic_rule(
        ruleName="kept",
        topicRulePayload={
            "sql": "SELECT * FROM 'kept/in'",
            "actions": [{"republish": {"topic": "kept/out", "roleArn": f"{ARN}:role/r"}}],
        },
    )
    ca = Path(ca_file(first)).read_bytes()
    assert first.runner is not None
    first.close_now()
    first.runner.stop()
    second: EmulatorHandle = kept()
    api = iot_client(second)
    assert Path(ca_file(second)).read_bytes() == ca
    assert api.describe_thing(thingName="kept-1")["attributes"] == {"room": "lab"}
    assert [r["ruleName"] for r in api.list_topic_rules()["rules"]] == ["kept"]
    watcher = await plain_subscriber(second, "kept/out")
    client = device(second, made, "kept-1")
    try:
        await client.connect()  # the same files, the same CA: still registered and ACTIVE
        await client.publish("kept/in", b"again", qos=1)
        assert (await watcher.message_on("kept/out")).payload == b"again"
    finally:
        await client.close()
        await watcher.close()


async def test_get_registry_data_reads_the_thing_registry(iot: EmulatorHandle) -> None:
    api = iot_client(iot)
    api.create_thing(thingName="lamp-3", attributePayload={"attributes": {"room": "hall"}})
    api.create_topic_rule(
        ruleName="registry",
        topicRulePayload={
            "sql": (
                "SELECT get_registry_data('DescribeThing', topic(2), 'arn:aws:iam::1:role/r')"
                ".attributes.room AS room FROM 'lamps/+/on'"
            ),
            "awsIotSqlVersion": "2016-03-23",
            "actions": [{"republish": {"topic": "lamps/where", "roleArn": f"{ARN}:role/r"}}],
        },
    )
    watcher = await plain_subscriber(iot, "lamps/where")
    try:
        await watcher.publish("lamps/lamp-3/on", b"{}", qos=1)
        assert (await watcher.message_on("lamps/where")).json() == {"room": "hall"}
    finally:
        await watcher.close()


async def test_deactivating_a_certificate_disconnects_its_devices(
    iot: EmulatorHandle, tmp_path: Path
) -> None:
    api = iot_client(iot)
    made = new_device(api, tmp_path, "cut")
    api.create_policy(policyName="devices", policyDocument=json.dumps(ALLOW_ALL))
    api.attach_policy(policyName="devices", target=made["certificateArn"])
    client = device(iot, made, "cut-1")
    try:
        await client.connect()
        api.update_certificate(certificateId=made["certificateId"], newStatus="REVOKED")
        await client.wait_disconnected()
    finally:
        await client.close()
    assert await refused(device(iot, made, "cut-1"))


async def test_alpn_x_amzn_mqtt_ca_is_selected(iot: EmulatorHandle, tmp_path: Path) -> None:
    """What a device on AWS's port 443 offers (protocols.md): the MQTT port accepts it."""
    api = iot_client(iot)
    made = new_device(api, tmp_path, "alpn")
    api.create_policy(policyName="devices", policyDocument=json.dumps(ALLOW_ALL))
    api.attach_policy(policyName="devices", target=made["certificateArn"])
    context = ssl.create_default_context(cafile=ca_file(iot))
    context.load_cert_chain(made["cert"], made["key"])
    context.set_alpn_protocols(["x-amzn-mqtt-ca"])
    client = TestClient("localhost", tls_port(iot), "alpn-1")
    client.client.tls_set_context(context)
    try:
        await client.connect()
        tls = client.client.socket()
        assert isinstance(tls, ssl.SSLSocket)
        assert tls.selected_alpn_protocol() == "x-amzn-mqtt-ca"
    finally:
        await client.close()


async def test_a_file_rule_wins_its_name_over_the_api(
    iot_emulators: ThreadedEmulatorFactory, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n"
        "  - ruleName: shared\n"
        "    sql: SELECT * FROM 'file/in'\n"
        "    actions:\n"
        "      - republish: {topic: file/out, roleArn: 'arn:aws:iam::123456789012:role/r'}\n"
    )
    handle = iot_emulators(rules=[str(rules)], backend="auto")
    api = iot_client(handle)
    payload = {
        "sql": "SELECT * FROM 'api/in'",
        "actions": [{"republish": {"topic": "api/out", "roleArn": f"{ARN}:role/r"}}],
    }
    with pytest.raises(ClientError) as created:
        api.create_topic_rule(ruleName="shared", topicRulePayload=payload)
    assert created.value.response["Error"]["Code"] == "ResourceAlreadyExistsException"
    with pytest.raises(ClientError) as replaced:
        api.replace_topic_rule(ruleName="shared", topicRulePayload=payload)
    assert replaced.value.response["Error"]["Code"] == "InvalidRequestException"
    assert "edit the file" in replaced.value.response["Error"]["Message"]
    rule = api.get_topic_rule(ruleName="shared")["rule"]
    assert rule["sql"] == "SELECT * FROM 'file/in'"
    assert rule["actions"] == [
        {"republish": {"topic": "file/out", "roleArn": "arn:aws:iam::123456789012:role/r"}}
    ]
    api.create_topic_rule(ruleName="own", topicRulePayload=payload)
    listed = {r["ruleName"]: r["topicPattern"] for r in api.list_topic_rules()["rules"]}
    assert listed == {"shared": "file/in", "own": "api/in"}


def test_the_default_tls_ports_move_to_free_ones_when_taken(
    iot_emulators: ThreadedEmulatorFactory,
) -> None:
    holders = []
    for port in (8883, 8443):
        holder = socket.socket()
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with contextlib.suppress(OSError):  # taken by another process already: as good
            holder.bind(("127.0.0.1", port))
            holder.listen()
        holders.append(holder)
    try:
        handle = iot_emulators(rules=[], backend="auto", mqtt_tls_port=8883, https_port=8443)
        controlplane = handle.emulator.controlplane
        assert controlplane.mqtt_tls_port not in (None, 0, 8883)
        assert controlplane.https_port not in (None, 0, 8443)
        assert f"mqtts://127.0.0.1:{controlplane.mqtt_tls_port} " in handle.emulator.ready_line()
        # a port chosen by the user is not moved: the start fails naming it
        taken = controlplane.mqtt_tls_port
        with pytest.raises(StartupError, match=f"MQTT TLS port {taken}"):
            iot_emulators(rules=[], backend="auto", mqtt_tls_port=taken)
    finally:
        for holder in holders:
            holder.close()


def self_signed(tmp_path: Path, name: str) -> dict[str, str]:
    """A device's own certificate and key, from no CA the emulator knows."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    files = {"cert": str(tmp_path / f"{name}.crt"), "key": str(tmp_path / f"{name}.key")}
    Path(files["cert"]).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    Path(files["key"]).write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


async def test_a_certificate_from_a_csr_or_registered_without_ca_connects(
    iot: EmulatorHandle, tmp_path: Path
) -> None:
    api = iot_client(iot)
    api.create_policy(policyName="devices", policyDocument=json.dumps(ALLOW_ALL))
    # CreateCertificateFromCsr: the device keeps its key; the CA signs its request
    key = ec.generate_private_key(ec.SECP256R1())
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "csr-device")]))
        .sign(key, hashes.SHA256())
    )
    made = api.create_certificate_from_csr(
        certificateSigningRequest=request.public_bytes(serialization.Encoding.PEM).decode(),
        setAsActive=True,
    )
    csr_files = {"cert": str(tmp_path / "csr.crt"), "key": str(tmp_path / "csr.key")}
    Path(csr_files["cert"]).write_text(made["certificatePem"])
    Path(csr_files["key"]).write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    api.attach_policy(policyName="devices", target=made["certificateArn"])
    client = device(iot, csr_files, "csr-1")
    await client.connect()
    await client.close()
    # RegisterCertificateWithoutCA: a certificate of the device's own, after the TLS
    # listener started; before it is registered it does not get through
    own = self_signed(tmp_path, "own")
    assert await refused(device(iot, own, "own-1"))
    registered = api.register_certificate_without_ca(
        certificatePem=Path(own["cert"]).read_text(), status="ACTIVE"
    )
    api.attach_policy(policyName="devices", target=registered["certificateArn"])
    client = device(iot, own, "own-1")
    await client.connect()
    await client.close()
    with pytest.raises(ClientError) as again:
        api.register_certificate_without_ca(certificatePem=Path(own["cert"]).read_text())
    assert again.value.response["Error"]["Code"] == "ResourceAlreadyExistsException"


def test_the_registry_answers_with_aws_shapes_and_error_codes(
    iot: EmulatorHandle, tmp_path: Path
) -> None:
    api = iot_client(iot)

    def code(call: Any, **kwargs: Any) -> str:
        with pytest.raises(ClientError) as info:
            call(**kwargs)
        return str(info.value.response["Error"]["Code"])

    certs = [api.create_keys_and_certificate(setAsActive=False) for _ in range(3)]
    page = api.list_certificates(pageSize=2)
    assert len(page["certificates"]) == 2 and page["nextMarker"]
    rest = api.list_certificates(pageSize=2, marker=page["nextMarker"])
    listed = {c["certificateId"] for c in page["certificates"] + rest["certificates"]}
    assert listed == {c["certificateId"] for c in certs}
    assert "nextMarker" not in rest
    assert code(api.describe_certificate, certificateId="0" * 64) == "ResourceNotFoundException"
    first = certs[0]
    api.update_certificate(certificateId=first["certificateId"], newStatus="ACTIVE")
    assert code(api.delete_certificate, certificateId=first["certificateId"]) == (
        "CertificateStateException"
    )
    document = json.dumps(ALLOW_ALL)
    created = api.create_policy(policyName="p1", policyDocument=document)
    assert created["policyVersionId"] == "1"
    assert code(api.create_policy, policyName="p1", policyDocument=document) == (
        "ResourceAlreadyExistsException"
    )
    assert code(api.create_policy, policyName="bad", policyDocument='{"Statement": 1}') == (
        "MalformedPolicyException"
    )
    for _ in range(4):
        api.create_policy_version(policyName="p1", policyDocument=document, setAsDefault=True)
    assert api.get_policy(policyName="p1")["defaultVersionId"] == "5"
    assert code(api.create_policy_version, policyName="p1", policyDocument=document) == (
        "VersionsLimitExceededException"
    )
    api.attach_policy(policyName="p1", target=first["certificateArn"])
    assert api.list_targets_for_policy(policyName="p1")["targets"] == [first["certificateArn"]]
    assert code(api.delete_policy, policyName="p1") == "DeleteConflictException"
    api.detach_policy(policyName="p1", target=first["certificateArn"])
    assert api.list_attached_policies(target=first["certificateArn"])["policies"] == []
    assert code(api.attach_policy, policyName="nope", target=first["certificateArn"]) == (
        "ResourceNotFoundException"
    )
    thing = api.create_thing(thingName="t1", attributePayload={"attributes": {"a": "1"}})
    again = api.create_thing(thingName="t1", attributePayload={"attributes": {"a": "1"}})
    assert again["thingId"] == thing["thingId"]  # the same configuration: idempotent
    assert code(api.create_thing, thingName="t1") == "ResourceAlreadyExistsException"
    described = api.describe_thing(thingName="t1")
    assert described["thingId"] == thing["thingId"] and described["defaultClientId"] == "t1"
    assert [
        t["thingName"] for t in api.list_things(attributeName="a", attributeValue="1")["things"]
    ] == ["t1"]
    assert code(api.describe_thing, thingName="t2") == "ResourceNotFoundException"
    api.delete_thing(thingName="t2")  # a missing thing: no error, as AWS
    assert code(api.describe_endpoint, endpointType="iot:Nope") == "InvalidRequestException"
    result = api.test_authorization(
        principal=first["certificateArn"],
        policyNamesToAdd=["p1"],
        authInfos=[{"actionType": "PUBLISH", "resources": [f"{ARN}:topic/a"]}],
    )
    assert result["authResults"][0]["authDecision"] == "ALLOWED"
    assert result["authResults"][0]["allowed"]["policies"][0]["policyName"] == "p1"


def test_with_credentials_the_control_plane_needs_sigv4_for_iot(
    iot_emulators: ThreadedEmulatorFactory,
) -> None:
    handle = iot_emulators(rules=[], backend="auto", credentials={"AKIDLOCAL": "secret"})

    def client(key: str, secret: str) -> Any:
        return boto3.client(
            "iot",
            endpoint_url=handle.http_url,
            region_name="us-east-1",
            aws_access_key_id=key,
            aws_secret_access_key=secret,
        )

    good = client("AKIDLOCAL", "secret")
    bad = client("AKIDLOCAL", "wrong")
    try:
        assert good.list_topic_rules()["rules"] == []
        with pytest.raises(ClientError) as info:
            bad.list_topic_rules()
        assert info.value.response["Error"]["Code"] == "InvalidSignatureException"
    finally:
        good.close()
        bad.close()


async def test_the_device_sdk_v2_sigv4_websocket_builder_connects_over_wss(
    iot_emulators: ThreadedEmulatorFactory,
) -> None:
    """AWS's other way in for devices: SigV4 over WSS, here on the HTTPS port, the
    signature verified (credentials configured)."""
    handle = iot_emulators(rules=[], backend="auto", credentials={"AKIDLOCAL": "secret"})
    controlplane = handle.emulator.controlplane
    assert controlplane.https_port is not None
    watcher = await plain_subscriber(handle, "wss/#")
    connection = mqtt_connection_builder.websockets_with_default_aws_signing(
        endpoint="localhost",
        port=controlplane.https_port,
        region="us-east-1",
        credentials_provider=auth.AwsCredentialsProvider.new_static("AKIDLOCAL", "secret"),
        ca_filepath=ca_file(handle),
        client_id="wss-sdk",
        clean_session=True,
        keep_alive_secs=30,
    )
    try:
        await asyncio.wrap_future(connection.connect())
        published, _ = connection.publish("wss/hello", b"signed", crt_mqtt.QoS.AT_LEAST_ONCE)
        await asyncio.wrap_future(published)
        assert (await watcher.message_on("wss/hello")).payload == b"signed"
    finally:
        await asyncio.wrap_future(connection.disconnect())
        await watcher.close()


async def test_register_certificate_checks_it_against_its_ca(
    iot: EmulatorHandle, tmp_path: Path
) -> None:
    """A fleet's own CA: the device certificate is registered with the CA certificate it
    was issued by (not with another), then connects."""
    api = iot_client(iot)
    now = dt.datetime.now(dt.UTC)
    fleet_ca = new_authority(now)
    other_ca = new_authority(now)
    issued = issue_keys_and_certificate(fleet_ca, now)
    files = {"cert": str(tmp_path / "fleet.crt"), "key": str(tmp_path / "fleet.key")}
    Path(files["cert"]).write_text(issued.certificate_pem)
    Path(files["key"]).write_text(issued.private_key_pem)
    with pytest.raises(ClientError) as wrong:
        api.register_certificate(
            certificatePem=issued.certificate_pem,
            caCertificatePem=pem(other_ca.certificate),
            status="ACTIVE",
        )
    assert wrong.value.response["Error"]["Code"] == "CertificateValidationException"
    registered = api.register_certificate(
        certificatePem=issued.certificate_pem,
        caCertificatePem=pem(fleet_ca.certificate),
        status="ACTIVE",
    )
    description = api.describe_certificate(certificateId=registered["certificateId"])
    assert description["certificateDescription"]["caCertificateId"] == certificate_id(
        der(fleet_ca.certificate)
    )
    api.create_policy(policyName="devices", policyDocument=json.dumps(ALLOW_ALL))
    api.attach_policy(policyName="devices", target=registered["certificateArn"])
    client = device(iot, files, "fleet-1")
    await client.connect()
    await client.close()
