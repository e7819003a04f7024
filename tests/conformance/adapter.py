"""Runs the Eclipse Paho interoperability suites (vendored, unchanged, in ``paho/``) against
the emulator, with AWS IoT's documented differences from MQTT as expected outcomes.

The suites are scripts: their ``__main__`` sets module globals (host, port, topics) and
``setUpClass`` makes two clients, ``aclient`` and ``bclient``, with their callbacks. The
adapter does the same for one test at a time against a fresh in-memory emulator, with two
changes that stand for AWS's rules rather than for the suite's:

- the clients cap QoS at 1 (``QosCappedClient``): AWS "doesn't support publishing or
  subscribing with QoS level 2" (mqtt.md, differences from MQTT 3.1.1), and every test of the
  suite asks for QoS 2 somewhere;
- the callbacks (``Recorder``, a subclass of the suite's) also keep the order of events and
  wake a waiting test, so that the adapted tests (``adapted311.py``) wait on events.

``setUpClass``'s ``cleanup()`` is not run: it clears what earlier tests left on a shared
broker (each test here has its own emulator), and it finds retained messages through a ``#``
subscription, which AWS does not send them to.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar, Final, Self

HERE: Final = Path(__file__).resolve().parent
SUITE_DIR: Final = HERE / "paho" / "interoperability"
PINNED_COMMIT: Final = "9d7bb80bb8b9d9cfc0b52f8cb4c1916401281103"

# What the emulator runs the suites with: no rules, so no backend; every CONNECT accepted at
# once (AWS allows 1 CONNECT per second per client ID, and the suite reconnects a client
# within a second: not what any of its tests checks); and the policy that refuses the
# suite's "nosubscribe" filter, which test_subscribe_failure needs a server to refuse.
SUITE_SETTINGS: Final[dict[str, Any]] = {
    "rules": [],
    "backend": "auto",
    "connect_rate": 0,
    "policies": [str(HERE / "nosubscribe_policy.json")],
}

# The suite's own configuration (client_test.py's __main__).
TOPICS: Final = ("TopicA", "TopicA/B", "Topic/C", "TopicA/C", "/TopicA")
WILDTOPICS: Final = ("TopicA/+", "+/C", "#", "/#", "/+", "+/+", "TopicA/#")
NOSUBSCRIBE_TOPICS: Final = ("test/nosubscribe",)
TOPIC_PREFIX5: Final = "client_test5/"  # client_test5.py's __main__

WAIT: Final = 5.0  # seconds an adapted test waits for an event before failing


def load(name: str) -> ModuleType:
    """Import a vendored module as the suite expects (``mqtt`` a top-level package)."""
    if str(SUITE_DIR) not in sys.path:
        sys.path.insert(0, str(SUITE_DIR))
    return importlib.import_module(name)


def suite_tests(module: ModuleType) -> list[str]:
    """The test methods unittest would run from the suite's ``Test`` class."""
    return sorted(name for name in dir(module.Test) if name.startswith("test"))


def capped_client_class(client_module: ModuleType) -> type[Any]:
    """The suite's MQTT 3.1.1 client with every QoS above 1 lowered to 1 (AWS supports 0
    and 1)."""
    base: type[Any] = client_module.Client

    class QosCappedClient(base):
        def subscribe(self, topics: list[str], qoss: list[int]) -> int:
            return int(super().subscribe(topics, [min(q, 1) for q in qoss]))

        def publish(self, topic: str, payload: bytes, qos: int = 0, retained: bool = False) -> int:
            return int(super().publish(topic, payload, min(qos, 1), retained))

        def connect(self, *args: Any, willQoS: int = 2, **kwargs: Any) -> Any:
            return super().connect(*args, willQoS=min(willQoS, 1), **kwargs)

    return QosCappedClient


def capped_client5_class(client_module: ModuleType, formats: ModuleType) -> type[Any]:
    """The suite's MQTT 5 client with every QoS above 1 lowered to 1, in publications,
    Wills and subscription options (whose other options are kept)."""
    base: type[Any] = client_module.Client

    def capped(options: Any) -> Any:
        return formats.SubscribeOptions(
            min(options.QoS, 1), options.noLocal, options.retainAsPublished, options.retainHandling
        )

    class QosCappedClient5(base):
        def subscribe(self, topics: list[str], options: list[Any], properties: Any = None) -> int:
            return int(super().subscribe(topics, [capped(o) for o in options], properties))

        def publish(
            self,
            topic: str,
            payload: bytes | str,
            qos: int = 0,
            retained: bool = False,
            properties: Any = None,
        ) -> int:
            return int(super().publish(topic, payload, min(qos, 1), retained, properties))

        def connect(self, *args: Any, willQoS: int = 2, **kwargs: Any) -> Any:
            return super().connect(*args, willQoS=min(willQoS, 1), **kwargs)

    return QosCappedClient5


def recorder_class(callbacks_base: type[Any]) -> type[Any]:
    """The suite's ``Callbacks`` that also log events in order and wake a waiting test."""

    class Recorder(callbacks_base):
        def __init__(self) -> None:
            super().__init__()
            # clear() calls __init__ again: keep one condition for the object's life.
            self.changed: threading.Condition = getattr(self, "changed", threading.Condition())
            self.events: list[tuple[str, Any]] = []

        def _note(self, kind: str, value: Any) -> None:
            with self.changed:
                self.events.append((kind, value))
                self.changed.notify_all()

        def publishArrived(self, topicName: str, payload: bytes, *rest: Any) -> bool:
            result = super().publishArrived(topicName, payload, *rest)
            self._note("message", (topicName, payload, *rest))
            return bool(result)

        def published(self, msgid: int) -> None:
            super().published(msgid)
            self._note("published", msgid)

        def subscribed(self, msgid: int, data: Any) -> None:
            super().subscribed(msgid, data)
            self._note("subscribed", (msgid, data))

        def disconnected(self, reasoncode: Any, properties: Any) -> None:
            """MQTT 5 only: the server's DISCONNECT."""
            super().disconnected(reasoncode, properties)
            self._note("disconnected", (reasoncode, properties))

        def unsubscribed(self, msgid: int, *rest: Any) -> None:
            super().unsubscribed(msgid, *rest)
            self._note("unsubscribed", msgid)

        def wait_for(self, what: str, predicate: Callable[[], bool], timeout: float = WAIT) -> None:
            with self.changed:
                if not self.changed.wait_for(predicate, timeout):
                    raise AssertionError(f"no {what} within {timeout} s; events: {self.events}")

        def messages_on(self, topic: str) -> list[tuple[Any, ...]]:
            with self.changed:
                return [m for m in self.messages if m[0] == topic]

    return Recorder


@dataclass
class Suite:
    """One run of a suite's tests against one broker: the module, configured as its
    ``__main__`` and ``setUpClass`` would configure it, with capped clients."""

    module: ModuleType
    host: str
    port: int
    client: type[Any]
    recorder: type[Any]
    clients: list[Any] = field(default_factory=list)  # every client made, closed at the end

    MODULE: ClassVar[str] = ""

    @classmethod
    def client_class(cls, module: ModuleType) -> type[Any]:
        raise NotImplementedError

    @classmethod
    def start(cls, host: str, port: int) -> Self:
        module = load(cls.MODULE)
        suite = cls(module, host, port, cls.client_class(module), recorder_class(module.Callbacks))
        callback, callback2 = suite.recorder(), suite.recorder()
        vars(module).update(  # the globals its __main__ (or setData) and setUpClass set
            host=host,
            port=port,
            topics=TOPICS,
            wildtopics=WILDTOPICS,
            nosubscribe_topics=NOSUBSCRIBE_TOPICS,
            callback=callback,
            callback2=callback2,
            aclient=suite.new_client(b"myclientid", callback),
            bclient=suite.new_client(b"myclientid2", callback2),
        )
        return suite

    def new_client(self, client_id: bytes, callback: Any) -> Any:
        client = self.client(client_id)
        client.registerCallback(callback)
        self.clients.append(client)
        return client

    def run(self, name: str) -> None:
        """Run one of the suite's tests as it is written (its assertions raise)."""
        test = self.module.Test(name)
        getattr(test, name)()

    def close(self) -> None:
        """Close the clients' sockets (their receiver threads end with them)."""
        for client in self.clients:
            sock = getattr(client, "sock", None)
            if sock is not None:
                sock.close()


class Suite311(Suite):
    """``client_test.py``, MQTT 3.1.1."""

    MODULE = "client_test"

    @classmethod
    def client_class(cls, module: ModuleType) -> type[Any]:
        return capped_client_class(module.mqtt_client)


class Suite5(Suite):
    """``client_test5.py``, MQTT 5 (its ``setData`` gives the same topics as 3.1.1's
    ``__main__``). ``tests/integration/test_paho_conformance5.py`` runs it."""

    MODULE = "client_test5"

    @classmethod
    def client_class(cls, module: ModuleType) -> type[Any]:
        return capped_client5_class(module.mqtt_client, module.MQTTV5)

    @classmethod
    def start(cls, host: str, port: int) -> Self:
        suite = super().start(host, port)
        # __main__ sets it (setData does not); test_shared_subscriptions uses it
        vars(suite.module)["topic_prefix"] = TOPIC_PREFIX5
        return suite
