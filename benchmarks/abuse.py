"""Abuse load (issue 12): one attacker per attack kind against the real chat (its rules and
Lambda, rules/) while honest chat clients talk; how many honest messages are lost, their
latency, and the emulator's memory.

    python -m benchmarks.abuse [--seconds 30] [--honest 50] [--rooms 5] [--only KIND ...]

Honest clients are paho-mqtt clients over WebSocket doing what static/chat.js does: they
subscribe to chat/in/<id> and their room's chat/pub/<room>, announce themselves on chat/out
(the Lambda answers with a welcome), then publish {"room","message","name"} on chat/out at
``--rate`` messages per second each; every message is expected at the room's other honest
clients (``lost`` counts the deliveries still missing after a drain). Halfway through, each
announces itself again and asks for the backlog on chat/stream, as the page does: welcomes
and backlogs must come back while the attack runs.

The attackers (benchmarks/attacks.py) run in one separate process (so their CPU is not the
honest clients'), one coroutine per kind (``ATTACKS``); each only uses what the chat's
browser policy allows a client, or the HTTP port any client can reach. The emulator's resident memory (main process, /proc) is
read after the honest clients are welcomed, sampled during the attack (peak) and read again
after the attackers left and the honest deliveries drained.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks import harness, report
from benchmarks.attacks import ATTACKS, Target, attacker_worker

CHAT_RULES = harness.REPO / "rules"
SCENARIO = "abuse"
DRAIN_SECONDS = 15.0


# -- honest chat clients (paho, one network thread each) ---------------------------------
@dataclass
class Book:
    """What the honest clients sent and received, shared by their threads."""

    members: dict[str, int] = field(default_factory=dict)  # room -> honest clients in it
    sent: dict[str, tuple[int, str, float]] = field(default_factory=dict)  # id -> who, room, t
    seen: set[tuple[int, str]] = field(default_factory=set)  # (receiver, message id)
    latencies: list[float] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    changed: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    def expected(self) -> int:
        return sum(self.members[room] - 1 for _, room, _ in self.sent.values())


class Honest:
    """One chat page: chat/in/<id> and its room, an announcement, messages on chat/out."""

    def __init__(self, index: int, room: str, host: str, http_port: int, book: Book) -> None:
        import paho.mqtt.client as mqtt

        self.index, self.room, self.book = index, room, book
        self.name = f"h{index}"
        self.client_id = f"honest-{index}"
        self.seq = 0
        self.sent = 0
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, transport="websockets"
        )
        client.ws_set_options(path="/mqtt")
        client.reconnect_delay_set(1, 2)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
        self.client = client
        self.host, self.port = host, http_port

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=60)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self._count("connect_refused")
            return
        self._count("connects")
        client.subscribe([(f"chat/in/{self.client_id}", 1), (f"chat/pub/{self.room}", 1)])
        self.announce()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, p: Any) -> None:
        self._count("disconnects")

    def _count(self, key: str) -> None:
        with self.book.changed:
            self.book.counts[key] += 1
            self.book.changed.notify_all()

    def announce(self) -> None:
        self.seq += 1
        body = {"connected": True, "path": f"/{self.room}", "name": self.name, "seq": self.seq}
        self.client.publish("chat/out", json.dumps(body), qos=1)

    def ask_backlog(self) -> None:
        self.client.publish("chat/stream", json.dumps({"sendroom": f"/{self.room}"}), qos=1)

    def say(self) -> None:
        self.sent += 1
        text = f"{self.name}-{self.sent}"
        with self.book.lock:
            self.book.sent[text] = (self.index, self.room, time.monotonic())
        body = {"room": f"/{self.room}", "message": text, "name": self.name}
        self.client.publish("chat/out", json.dumps(body), qos=1)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        now = time.monotonic()
        try:
            body = json.loads(msg.payload)
        except ValueError:
            return
        if not isinstance(body, dict):
            return
        book = self.book
        with book.changed:
            if msg.topic.startswith("chat/in/"):
                book.counts[f"{body.get('type')}_received"] += 1
            else:
                sent = book.sent.get(str(body.get("message")))
                key = (self.index, str(body.get("message")))
                if sent is not None and sent[0] != self.index and key not in book.seen:
                    book.seen.add(key)
                    book.latencies.append(now - sent[2])
            book.changed.notify_all()


def wait_until(book: Book, done: Callable[[], bool], timeout: float) -> bool:
    """Block until ``done()`` (checked under the book's lock at each change) or timeout."""
    deadline = time.monotonic() + timeout
    with book.changed:
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            book.changed.wait(min(left, 0.5))
    return True


# -- the run ------------------------------------------------------------------------------
def rss_kib(pid: int, key: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def pin_aws_quotas() -> None:
    """Run the emulator under attack with its defaults, AWS's quotas: the harness raises
    quotas for the throughput benchmarks through the environment (publish rate, throughput,
    subscriptions, filters per SUBSCRIBE, and whichever it raises next), this sets every
    numeric setting back to its default (the ports the harness passes as flags win)."""
    from dataclasses import fields

    from emulator.config import Config

    defaults = Config()
    for f in fields(Config):
        value = getattr(defaults, f.name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            os.environ[f"EMULATOR_{f.name.upper()}"] = str(value)


def run(args: argparse.Namespace) -> tuple[list[report.Row], dict[str, Any]]:
    kinds = args.only or list(ATTACKS)
    pin_aws_quotas()
    broker = harness.start_emulator(rules=[CHAT_RULES], backend=args.backend)
    honest: list[Honest] = []
    notes: dict[str, Any] = {}
    try:
        assert broker.http_port is not None
        target = Target(
            harness.HOST, broker.port, broker.http_port, args.big_mib, args.slowloris_sockets
        )
        book = Book()
        rooms = [f"room{r}" for r in range(args.rooms)]
        for i in range(args.honest):
            room = rooms[i % len(rooms)]
            book.members[room] = book.members.get(room, 0) + 1
            honest.append(Honest(i, room, harness.HOST, broker.http_port, book))
        for client in honest:
            client.start()
        welcomed = wait_until(
            book, lambda: book.counts["welcome_received"] >= len(honest), args.setup_timeout
        )
        notes["welcomed_before_attack"] = book.counts["welcome_received"]
        if not welcomed:
            sys.stderr.write(f"only {book.counts['welcome_received']} welcomes before the attack\n")
        rss_before = rss_kib(broker.pid)

        ctx = mp.get_context("spawn")
        results = ctx.Queue()
        attacker = ctx.Process(
            target=attacker_worker, args=(target, kinds, args.seconds, results), daemon=True
        )
        before = Counter(book.counts)
        attacker.start()
        peak = rss_before
        start = time.monotonic()
        tick = 1.0 / (len(honest) * args.rate)
        halfway = False
        k = 0
        next_sample = start
        while (now := time.monotonic()) < start + args.seconds:
            if not halfway and now >= start + args.seconds / 2:
                halfway = True
                for client in honest:
                    client.announce()
                    client.ask_backlog()
            due = start + k * tick
            if now < due:
                time.sleep(min(due - now, 0.05))
            else:
                honest[k % len(honest)].say()
                k += 1
            if now >= next_sample:
                peak = max(peak, rss_kib(broker.pid))
                next_sample = now + 0.5
        attack_stats = results.get(timeout=120)
        attacker.join(30)
        drained = wait_until(book, lambda: len(book.seen) >= book.expected(), DRAIN_SECONDS)
        rss_after = rss_kib(broker.pid)
        during = Counter(book.counts)
        during.subtract(before)

        expected = book.expected()
        lat_ms = [x * 1000 for x in book.latencies]
        rows = [
            report_row("honest_clients", len(honest), "clients"),
            report_row("honest_sent", len(book.sent), "msgs"),
            report_row("honest_expected", expected, "deliveries"),
            report_row("honest_lost", expected - len(book.seen), "deliveries"),
            report_row("p50", _round(percentile(lat_ms, 0.50)), "ms"),
            report_row("p99", _round(percentile(lat_ms, 0.99)), "ms"),
            report_row("max", _round(max(lat_ms) if lat_ms else None), "ms"),
            report_row("halfway_welcomes", during["welcome_received"], f"of {len(honest)}"),
            report_row("halfway_backlogs", during["backlog_received"], f"of {len(honest)}"),
            report_row("honest_disconnects", during["disconnects"], "events"),
            report_row("rss_before", rss_before, "KiB"),
            report_row("rss_peak", peak, "KiB"),
            report_row("rss_after", rss_after, "KiB"),
            report_row("rss_hwm", rss_kib(broker.pid, "VmHWM"), "KiB"),
        ]
        notes.update(
            drained=drained,
            attacks=kinds,
            attack_stats=attack_stats,
            emulator_alive=broker.proc.poll() is None,
            median_ms=_round(statistics.median(lat_ms)) if lat_ms else None,
        )
        return rows, notes
    finally:
        for client in honest:
            with contextlib.suppress(Exception):
                client.stop()
        broker.stop()


def report_row(metric: str, value: float | None, unit: str) -> report.Row:
    return {
        "scenario": SCENARIO,
        "broker": "emulator",
        "metric": metric,
        "value": value,
        "unit": unit,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.abuse",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--honest", type=int, default=50)
    parser.add_argument("--rooms", type=int, default=5)
    parser.add_argument("--rate", type=float, default=1.0, help="messages/s per honest client")
    parser.add_argument("--only", action="append", choices=sorted(ATTACKS), help="repeatable")
    parser.add_argument("--backend", default="moto", help="the chat's DynamoDB and Kinesis")
    parser.add_argument("--big-mib", type=int, default=64, help="bigws: WebSocket message MiB")
    parser.add_argument("--slowloris-sockets", type=int, default=500)
    parser.add_argument("--setup-timeout", type=float, default=60)
    parser.add_argument("--no-save", action="store_true", help="do not write results/*.json")
    args = parser.parse_args(argv)
    rows, notes = run(args)
    print(report.table(rows))
    print()
    for key, value in notes.items():
        if key != "attack_stats":
            print(f"{key}: {value}")
    print("attackers:")
    for key, value in sorted(notes["attack_stats"].items()):
        print(f"  {key}: {value}")
    if not args.no_save:
        path = report.write_json(rows, {**vars(args), "notes": notes})
        print(f"\nsaved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
