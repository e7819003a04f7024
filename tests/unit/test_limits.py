"""AWS IoT topic limits at their boundaries: 256 bytes of UTF-8 and 7 forward slashes."""

from __future__ import annotations

import pytest

from emulator.topics import (
    MAX_SLASHES,
    MAX_TOPIC_BYTES,
    validate_topic_filter,
    validate_topic_name,
)


@pytest.mark.parametrize("validate", [validate_topic_name, validate_topic_filter])
@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("x" * MAX_TOPIC_BYTES, True),
        ("x" * (MAX_TOPIC_BYTES + 1), False),
        # The limit counts UTF-8 bytes, not characters: 128 x 2-byte 'é' fits, 129 does not.
        ("é" * 128, True),
        ("é" * 129, False),
        ("/".join("a" * (MAX_SLASHES + 1)), True),
        ("/".join("a" * (MAX_SLASHES + 2)), False),
        ("/" * MAX_SLASHES, True),
        ("/" * (MAX_SLASHES + 1), False),
    ],
)
def test_limits_apply_to_names_and_filters(validate: object, text: str, ok: bool) -> None:
    assert callable(validate)
    problem = validate(text)
    assert (problem is None) is ok, problem


def test_limit_messages_name_the_limit() -> None:
    assert validate_topic_name("é" * 129) == "topic is 258 bytes, over the limit of 256"
    problem = validate_topic_filter("a/b/c/d/e/f/g/h/#")
    assert problem is not None and "8 slashes" in problem and "limit of 7" in problem


def test_wildcards_count_toward_the_filter_limits() -> None:
    assert validate_topic_filter("+/+/+/+/+/+/+/#") is None
    assert validate_topic_filter("+/+/+/+/+/+/+/+/#") is not None
