"""Pass-through over TLS with client certificates, QoS 0 and 1, beside plaintext: the
emulator's MQTT-over-TLS port (a device certificate made through its ``iot`` API, a policy
allowing everything attached, so the certificate's policy is checked as on AWS) and
mosquitto with a TLS listener requiring client certificates (``require_certificate``),
certificates from a CA made here with ``cryptography``.

One publisher process -> one subscriber process, the subscriber's receive rate, as the
``passthrough`` scenario measures it (the same hand-written client of load.py, its socket
wrapped in TLS), plaintext and TLS alternated three times on the same broker: the best of
each and the median TLS/plaintext ratio. ``python -m benchmarks --only tls``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import multiprocessing as mp
import re
import ssl
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks import harness, load
from benchmarks.harness import HOST, BrokerProcess
from emulator.identity.x509 import (
    issue_keys_and_certificate,
    key_pem,
    new_authority,
    pem,
    server_certificate,
)

Row = dict[str, Any]
CTX = mp.get_context("spawn")
TLS_READY = re.compile(r"mqtts://[^:\s]+:(\d+) .*ca=(\S+)")
ALLOW_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}],
}


class TlsClient(load.Client):
    """load.py's client over TLS with a client certificate."""

    async def connect_tls(
        self, host: str, port: int, client_id: str, context: ssl.SSLContext
    ) -> None:
        loop = asyncio.get_running_loop()
        connack = self._expect(load.CONNACK)
        transport, _ = await loop.create_connection(
            lambda: self, host, port, ssl=context, server_hostname="localhost"
        )
        self.transport = transport  # type: ignore[assignment]
        self.write(load.encode_connect(client_id))
        body = await asyncio.wait_for(connack, 30)
        if len(body) < 2 or body[1] != 0:
            raise ConnectionError(f"CONNACK refused: {body!r}")


def _context(files: dict[str, str]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=files["ca"])
    context.load_cert_chain(files["cert"], files["key"])
    return context


async def _subscriber(
    port: int, files: dict[str, str], qos: int, expect: int, timeout: float, ready: Any, out: Any
) -> None:
    done = asyncio.Event()
    state = {"n": 0, "first": 0.0, "last": 0.0}

    def on_publish(topic: str, payload: bytes) -> None:
        now = time.monotonic()
        if not state["n"]:
            state["first"] = now
        state["n"] += 1
        state["last"] = now
        if state["n"] >= expect:
            done.set()

    client = TlsClient(on_publish)
    await client.connect_tls(HOST, port, f"tls-sub-{mp.current_process().pid}", _context(files))
    await client.subscribe(["bench/tls"], qos)
    ready.set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), timeout)
    await client.close()
    out.put({"role": "sub", **state})


async def _publisher(port: int, files: dict[str, str], qos: int, count: int, out: Any) -> None:
    client = TlsClient()
    await client.connect_tls(HOST, port, f"tls-pub-{mp.current_process().pid}", _context(files))
    topic = "bench/tls"
    payload = b"x" * 16
    if qos == 0:
        frame = load.encode_publish(topic, payload)
        batch = frame * 100
        for _ in range(count // 100):
            client.write(batch)
            await client.drain()
            await asyncio.sleep(0)
        for _ in range(count % 100):
            client.write(frame)
    else:
        head = struct.pack("!H", len(topic)) + topic.encode()
        prefix = (
            bytes([load.PUBLISH << 4 | 2]) + load.encode_length(len(head) + 2 + len(payload)) + head
        )
        await client.publish_qos1(lambda pid: prefix + struct.pack("!H", pid) + payload, count)
    await client.close()
    out.put({"role": "pub", "sent": count})


def subscriber_worker(*args: Any) -> None:
    load._run(_subscriber(*args))


def publisher_worker(*args: Any) -> None:
    load._run(_publisher(*args))


def measure(port: int, files: dict[str, str], qos: int, count: int, timeout: float) -> float:
    """Messages per second received by one TLS subscriber from one TLS publisher."""
    results, ready = CTX.Queue(), CTX.Event()
    sub = CTX.Process(
        target=subscriber_worker, args=(port, files, qos, count, timeout, ready, results)
    )
    sub.start()
    if not ready.wait(30):
        sub.kill()
        raise harness.HarnessError("TLS subscriber not ready")
    pub = CTX.Process(target=publisher_worker, args=(port, files, qos, count, results))
    pub.start()
    got: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout + 15
    while len(got) < 2 and time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            item = results.get(timeout=max(0.1, deadline - time.monotonic()))
            got[item["role"]] = item
    for p in (pub, sub):
        p.join(10)
        if p.is_alive():
            p.kill()
    s = got.get("sub", {"n": 0, "first": 0.0, "last": 0.0})
    span = s["last"] - s["first"]
    return (s["n"] - 1) / span if s["n"] > 1 and span > 0 else 0.0


# -- the emulator ------------------------------------------------------------------------
def emulator_device(broker: BrokerProcess, directory: Path) -> tuple[int, dict[str, str]]:
    """The emulator's TLS port, and a device's files made through its ``iot`` API."""
    import boto3

    line = next((m for m in map(TLS_READY.search, broker.output) if m), None)
    if line is None or broker.http_port is None:
        raise harness.HarnessError("the emulator's ready line names no mqtts:// port")
    iot = boto3.client(
        "iot",
        endpoint_url=f"http://{HOST}:{broker.http_port}",
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )
    made = iot.create_keys_and_certificate(setAsActive=True)
    iot.create_policy(policyName="bench", policyDocument=json.dumps(ALLOW_ALL))
    iot.attach_policy(policyName="bench", target=made["certificateArn"])
    iot.close()
    cert, key = directory / "device.crt", directory / "device.key"
    cert.write_text(made["certificatePem"])
    key.write_text(made["keyPair"]["PrivateKey"])
    return int(line.group(1)), {"ca": line.group(2), "cert": str(cert), "key": str(key)}


# -- mosquitto ---------------------------------------------------------------------------
def start_mosquitto_tls(directory: Path) -> tuple[BrokerProcess, int, dict[str, str]] | None:
    """mosquitto with a plain listener and a TLS listener requiring client certificates."""
    exe = harness.mosquitto_path()
    if exe is None:
        return None
    now = dt.datetime.now(dt.UTC)
    authority = new_authority(now)
    server, server_key = server_certificate(authority, ["localhost", HOST], now)
    device = issue_keys_and_certificate(authority, now)
    files = {
        "ca": directory / "ca.pem",
        "server": directory / "server.pem",
        "server_key": directory / "server.key",
        "cert": directory / "device.crt",
        "key": directory / "device.key",
    }
    files["ca"].write_text(pem(authority.certificate))
    files["server"].write_text(pem(server))
    files["server_key"].write_text(key_pem(server_key))
    files["cert"].write_text(device.certificate_pem)
    files["key"].write_text(device.private_key_pem)
    # mosquitto started as root drops to its own user: it must read these files
    directory.chmod(0o755)
    for path in files.values():
        path.chmod(0o644)
    tcp, tls = harness.free_port(), harness.free_port()
    conf = directory / "mosquitto.conf"
    conf.write_text(
        f"per_listener_settings false\nallow_anonymous true\n"
        f"listener {tcp} {HOST}\n"
        f"listener {tls} {HOST}\ncafile {files['ca']}\ncertfile {files['server']}\n"
        f"keyfile {files['server_key']}\nrequire_certificate true\ntls_version tlsv1.2\n"
        "persistence false\nlog_dest stderr\nlog_type error\nmax_queued_messages 1000000\n"
        "max_inflight_messages 64\n"
    )
    proc = subprocess.Popen(
        [exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    out: list[str] = []
    reader = threading.Thread(target=harness._pump, args=(proc, out), daemon=True)
    reader.start()
    harness._wait_port(tcp, proc, 15.0, out)
    harness._wait_port(tls, proc, 15.0, out)
    broker = BrokerProcess("mosquitto", proc, tcp, None, output=out, reader=reader)
    return (
        broker,
        tls,
        {"ca": str(files["ca"]), "cert": str(files["cert"]), "key": str(files["key"])},
    )


def _row(scenario: str, broker: str, value: float | None, note: str = "") -> Row:
    return {
        "scenario": scenario,
        "broker": broker,
        "metric": "rate",
        "value": None if value is None else round(value),
        "unit": "msg/s",
        **({"note": note} if note else {}),
    }


ROUNDS = 3


def _rounds(
    name: str, broker: BrokerProcess, port: int, files: dict[str, str], sizes: Any
) -> list[Row]:
    """Plaintext and TLS alternated ``ROUNDS`` times at each QoS: the best run of each, and
    the median of the TLS/plaintext ratios of runs side by side (a pair shares the busy
    machine's moment; one lucky run does not move a median)."""
    rows: list[Row] = []
    for qos, count in ((0, sizes.passthrough), (1, sizes.passthrough_qos1)):
        plain: list[float] = []
        tls: list[float] = []
        for _ in range(ROUNDS):
            plain.append(_plain(broker, qos, count, sizes.timeout))
            tls.append(measure(port, files, qos, count, sizes.timeout))
        ratios = sorted(t / p for p, t in zip(plain, tls, strict=True) if p)
        rows.append(_row(f"tls_plain_qos{qos}", name, max(plain)))
        rows.append(_row(f"tls_qos{qos}", name, max(tls)))
        rows.append(
            {
                "scenario": f"tls_qos{qos}",
                "broker": name,
                "metric": "tls/plain",
                "value": round(ratios[len(ratios) // 2], 2) if ratios else None,
                "unit": "ratio",
            }
        )
    return rows


def tls_passthrough(sizes: Any, brokers: Any = None) -> list[Row]:
    """Rows ``tls_plain_qos{0,1}`` (plaintext) and ``tls_qos{0,1}`` for the emulator and
    mosquitto; ``brokers`` is ignored (this scenario starts its own)."""
    rows: list[Row] = []
    directory = Path(tempfile.mkdtemp(prefix="bench-tls-"))
    broker = harness.start_emulator(extra=["--mqtt-tls-port", "0", "--https-port", "0"])
    try:
        port, files = emulator_device(broker, directory)
        rows += _rounds("emulator", broker, port, files, sizes)
    finally:
        broker.stop()
    mosquitto = start_mosquitto_tls(directory)
    if mosquitto is None:
        rows.append(_row("tls_qos0", "mosquitto", None, "not installed"))
        return rows
    broker, port, files = mosquitto
    try:
        rows += _rounds("mosquitto", broker, port, files, sizes)
    finally:
        broker.stop()
    return rows


def _plain(broker: BrokerProcess, qos: int, count: int, timeout: float) -> float:
    from benchmarks.scenarios import measure_passthrough

    return measure_passthrough(broker, qos, count, timeout, topic="bench/plain")["rate"]
