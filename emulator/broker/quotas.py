"""AWS IoT's per-connection and per-client quotas, as pure values and counters.

Theory of operation
-------------------
``BrokerQuotas`` is the frozen set of limits the broker enforces, built once from the
``Config`` (``from_config``; AWS's values are the defaults, README "Limits"). The pure code
(``protocol.py``, ``state.py``) reads it; nothing here does I/O or reads a clock: time comes
in as ``now`` (ms), as everywhere in the broker.

- ``TokenBucket``: a rate with a one-second burst, refilled lazily from ``now``. Tokens are
  counted in thousandths (``COST`` per event), so the refill is integer arithmetic: the
  protocol refills once per read and then pays ``COST`` per PUBLISH (two integer
  operations on the hot path). ``delay_ms`` tells how long to wait until a debt is paid
  (the read throughput: reading pauses, nothing is dropped).
- ``LimitLog``: a limit is hit per message, but logged once per client per ``LOG_INTERVAL_MS``
  with the count since the previous line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emulator.config import Config

COST = 1000  # thousandths of a token per event
LOG_INTERVAL_MS = 10_000  # a limit hit is logged at most once per this, per client and limit
MAX_PACKET_IDS = 65535  # MQTT packet identifiers 1..65535: the in-flight window's ceiling


@dataclass(frozen=True, slots=True)
class BrokerQuotas:
    """The broker's limits (see README "Limits" and docs/differences.md)."""

    max_inflight: int = 100  # unacknowledged QoS 1 messages sent to one client
    publish_rate: int = 100  # PUBLISH per second per connection; excess dropped
    throughput_bytes: int = 512 * 1024  # bytes per second read per connection; excess delayed
    max_subscriptions: int = 50  # per connection; beyond: SUBACK 0x80
    max_filters_per_subscribe: int = 8  # more in one SUBSCRIBE: the connection is closed
    keepalive_min: int = 30  # seconds
    keepalive_max: int = 1200  # seconds; also what 0 means
    stored_resend_rate: int = 10  # stored messages per second after a reconnect
    connect_interval_ms: int = 1000  # between accepted CONNECTs of one client ID
    max_queued: int = 1000  # QoS 1 messages waiting per session
    client_buffer_bytes: int = 8192 * 1024  # written to a client and not yet sent
    session_expiry: int = 3600  # seconds: the longest an MQTT 5 client may ask for
    topic_alias_max: int = 8  # MQTT 5 topic aliases per connection, client to broker
    max_group_members: int = 100  # subscriptions per shared subscription group

    @classmethod
    def from_config(cls, config: Config) -> BrokerQuotas:
        rate = config.connect_rate
        return cls(
            # Packet identifiers are 16 bits: a window past 65535 could not be numbered.
            max_inflight=max(1, min(config.max_inflight, MAX_PACKET_IDS)),
            publish_rate=max(1, config.publish_rate),
            throughput_bytes=max(1, config.throughput_kib) * 1024,
            max_subscriptions=max(0, config.max_subscriptions),
            max_filters_per_subscribe=max(1, config.max_filters_per_subscribe),
            keepalive_min=max(0, config.keepalive_min),
            keepalive_max=max(1, config.keepalive_max),
            stored_resend_rate=max(1, config.stored_resend_rate),
            connect_interval_ms=round(1000 / rate) if rate > 0 else 0,
            max_queued=max(0, config.max_queued_messages),
            client_buffer_bytes=max(1, config.client_buffer_kib) * 1024,
            session_expiry=max(0, int(config.session_expiry)),
        )

    def keep_alive(self, requested: int) -> int:
        """The keep-alive the broker applies: AWS clamps it to 30..1200 s, 0 meaning 1200."""
        if requested == 0:
            return self.keepalive_max
        return min(max(requested, self.keepalive_min), self.keepalive_max)


class TokenBucket:
    """``rate`` events per second, up to one second's worth at once (module docstring)."""

    __slots__ = ("capacity", "rate", "tokens", "updated")

    def __init__(self, rate: int, now: int) -> None:
        self.rate = rate  # thousandths of a token per ms == events per second
        self.capacity = rate * COST
        self.tokens = self.capacity
        self.updated = now

    def refill(self, now: int) -> None:
        elapsed = now - self.updated
        if elapsed > 0:
            tokens = self.tokens + elapsed * self.rate
            capacity = self.capacity
            self.tokens = tokens if tokens < capacity else capacity
            self.updated = now

    def take(self, now: int, count: int = 1) -> bool:
        """Pay for ``count`` events if the tokens are there; False: over the rate."""
        self.refill(now)
        cost = count * COST
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False

    def charge(self, now: int, count: int) -> int:
        """Pay for ``count`` events even into debt (bytes already read); the ms to wait
        until the debt is paid (0: none)."""
        self.refill(now)
        self.tokens -= count * COST
        return self.delay_ms()

    def delay_ms(self) -> int:
        tokens = self.tokens
        return 0 if tokens >= 0 else -(tokens // self.rate)


class LimitLog:
    """Counts hits of one limit for one client; ``hit`` (``count`` of them) returns the
    count to log, at most once per ``interval`` ms (the first hit at once), else 0."""

    __slots__ = ("count", "interval", "next_at")

    def __init__(self, interval: int = LOG_INTERVAL_MS) -> None:
        self.count = 0
        self.interval = interval
        self.next_at = -1

    def hit(self, now: int, count: int = 1) -> int:
        self.count += count
        if now < self.next_at:
            return 0
        count = self.count
        self.count = 0
        self.next_at = now + self.interval
        return count
