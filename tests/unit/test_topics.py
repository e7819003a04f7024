"""Topic filters with AWS IoT's semantics: table-driven cases and property tests."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.topics import (
    TopicTrie,
    matches,
    validate_topic_filter,
    validate_topic_name,
)

CASES = [
    # (filter, topic, expected)
    ("sensor/#", "sensor/", True),
    ("sensor/#", "sensor/temperature", True),
    ("sensor/#", "sensor/temperature/room1", True),
    ("sensor/#", "sensor", False),  # AWS: the parent level is not matched
    ("sensor/+", "sensor/a", True),
    ("sensor/+", "sensor/", True),
    ("sensor/+", "sensor", False),
    ("sensor/+", "sensor/a/b", False),
    ("+/+", "a/b", True),
    ("+", "a", True),
    ("+", "a/b", False),
    ("#", "a", True),
    ("#", "a/b/c", True),
    ("#", "$aws/events/presence/connected/x", False),
    ("+/events/#", "$aws/events/x", False),
    ("$aws/events/#", "$aws/events/presence/connected/c1", True),
    ("$aws/events/presence/+/c1", "$aws/events/presence/connected/c1", True),
    ("$aws/+/presence/#", "$aws/events/presence/x", True),
    ("a/b", "a/b", True),
    ("a/b", "a/b/", False),
    ("a/+/c", "a/x/c", True),
    ("a/+/c", "a/x/d", False),
    ("chat/pub/#", "chat/pub/lobby", True),
    ("chat/pub/#", "chat/pub", False),
    ("/+", "/x", True),
    ("+/x", "/x", True),
]


@pytest.mark.parametrize(("topic_filter", "topic", "expected"), CASES)
def test_matches_table(topic_filter: str, topic: str, expected: bool) -> None:
    assert matches(topic_filter, topic) is expected
    trie: TopicTrie[str, int] = TopicTrie()
    trie.add(topic_filter, "k", 1)
    assert (trie.match(topic) == [("k", 1)]) is expected


@pytest.mark.parametrize(
    ("topic", "problem"),
    [
        ("a/b", None),
        ("", "topic is empty"),
        ("a/+", "topic name contains a wildcard (+ or #)"),
        ("a/#", "topic name contains a wildcard (+ or #)"),
        ("x" * 257, "topic is 257 bytes, over the limit of 256"),
        ("a/b/c/d/e/f/g/h", None),
        ("a/b/c/d/e/f/g/h/i", "topic has 8 slashes, over the limit of 7"),
    ],
)
def test_validate_topic_name(topic: str, problem: str | None) -> None:
    assert validate_topic_name(topic) == problem


@pytest.mark.parametrize(
    ("topic_filter", "ok"),
    [
        ("a/#", True),
        ("#", True),
        ("+/+", True),
        ("a/#/b", False),
        ("a#", False),
        ("a+/b", False),
        ("a/b+", False),
        ("", False),
        ("/".join("x" * 9), False),
    ],
)
def test_validate_topic_filter(topic_filter: str, ok: bool) -> None:
    assert (validate_topic_filter(topic_filter) is None) is ok


def test_trie_add_remove_prunes() -> None:
    trie: TopicTrie[str, int] = TopicTrie()
    assert trie.add("a/+/c", "x", 0)
    assert not trie.add("a/+/c", "x", 1)  # replaced, not new
    assert trie.add("a/#", "y", 1)
    assert len(trie) == 2
    assert sorted(trie.match("a/b/c")) == [("x", 1), ("y", 1)]
    assert trie.get("a/+/c", "x") == 1
    assert trie.remove("a/+/c", "x")
    assert not trie.remove("a/+/c", "x")
    assert trie.remove("a/#", "y")
    assert len(trie) == 0
    assert trie.match("a/b/c") == []
    assert list(trie.filters()) == []


def test_trie_filters_lists_everything() -> None:
    trie: TopicTrie[str, int] = TopicTrie()
    for f in ("a", "a/#", "+/b", "#"):
        trie.add(f, f, 0)
    assert sorted(f for f, _, _ in trie.filters()) == ["#", "+/b", "a", "a/#"]


level = st.sampled_from(["a", "b", "", "$aws", "x1"])
filter_level = st.sampled_from(["a", "b", "", "+", "$aws", "x1"])


@st.composite
def topic_filters(draw: st.DrawFn) -> str:
    levels = draw(st.lists(filter_level, min_size=1, max_size=5))
    if draw(st.booleans()):
        levels.append("#")
    return "/".join(levels)


topics = st.lists(level, min_size=1, max_size=6).map("/".join)


@settings(max_examples=400, deadline=None)
@given(st.lists(topic_filters(), min_size=1, max_size=20, unique=True), topics)
def test_trie_agrees_with_matches(filters: list[str], topic: str) -> None:
    trie: TopicTrie[str, None] = TopicTrie()
    for f in filters:
        trie.add(f, f, None)
    got = sorted(k for k, _ in trie.match(topic))
    expected = sorted(f for f in filters if matches(f, topic))
    assert got == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(topic_filters(), min_size=1, max_size=20), st.data())
def test_trie_remove_restores_empty(filters: list[str], data: st.DataObject) -> None:
    trie: TopicTrie[int, None] = TopicTrie()
    for i, f in enumerate(filters):
        trie.add(f, i, None)
    order = data.draw(st.permutations(list(enumerate(filters))))
    for i, f in order:
        assert trie.remove(f, i)
    assert len(trie) == 0
    assert trie._root.children == {}


def test_memoized_matches_follow_every_change() -> None:
    trie: TopicTrie[str, int] = TopicTrie()
    trie.add("room/+", "a", 0)
    assert trie.match("room/1") == [("a", 0)]
    trie.add("room/#", "b", 1)
    assert sorted(trie.match("room/1")) == [("a", 0), ("b", 1)]
    trie.add("room/#", "b", 0)  # same key and filter, new data (a re-subscription's QoS)
    assert sorted(trie.match("room/1")) == [("a", 0), ("b", 0)]
    trie.remove("room/+", "a")
    assert trie.match("room/1") == [("b", 0)]
    trie.remove("room/#", "b")
    assert trie.match("room/1") == []
