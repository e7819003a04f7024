"""The Eclipse Paho MQTT 5 interoperability suite (client_test5.py, vendored unchanged in
tests/conformance/paho) against the emulator, through tests/conformance/adapter.py: each test
runs as written (QoS capped at 1) or, where AWS documents another outcome, in the adapted form
of tests/conformance/adapted5.py that asserts AWS's.

It takes about 2 minutes, most of it the suite's own sleeps (test_session_expiry 20 s,
test_will_delay 12 s)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emulator.pytest_plugin import ThreadedEmulatorFactory
from tests.conformance import adapter
from tests.conformance.adapted5 import ADAPTED, AS_WRITTEN

SUITE_TESTS = adapter.suite_tests(adapter.load("client_test5"))


@pytest.fixture
def suite(iot_emulators: ThreadedEmulatorFactory) -> Iterator[adapter.Suite5]:
    """The suite configured for a fresh emulator (no state left by another test)."""
    handle = iot_emulators(**adapter.SUITE_SETTINGS)
    suite = adapter.Suite5.start(handle.host, handle.mqtt_port)
    try:
        yield suite
    finally:
        suite.close()


def test_every_test_of_the_suite_is_run_as_written_or_adapted() -> None:
    assert sorted(AS_WRITTEN | ADAPTED.keys()) == SUITE_TESTS
    assert not AS_WRITTEN & ADAPTED.keys()


@pytest.mark.parametrize("name", sorted(AS_WRITTEN))
def test_as_written(suite: adapter.Suite5, name: str) -> None:
    suite.run(name)


@pytest.mark.parametrize("name", sorted(ADAPTED))
def test_adapted_to_aws(suite: adapter.Suite5, name: str) -> None:
    ADAPTED[name](suite)
