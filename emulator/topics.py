"""Topic names, topic filters and a trie to match them, with AWS IoT's rules.

Pure code: no I/O. Used by the broker (subscriptions) and the rules engine (rule FROM filters).

AWS IoT differs from MQTT 3.1.1 here (reference/aws-iot/mqtt.md, "differences"):
- ``sensor/#`` matches ``sensor/`` and everything below it, but *not* ``sensor`` itself;
- filters starting with a wildcard (``+``, ``#``) never match topics starting with ``$``
  (MQTT 3.1.1 section 4.7.2, which AWS follows);
- a topic or filter is at most 256 UTF-8 bytes with at most 7 forward slashes
  (AWS IoT Core message broker quotas);
- a Basic Ingest topic, ``$aws/rules/<ruleName>/<topic>``, goes to that one rule and to no
  subscriber; its first three levels count toward neither limit (iot-basic-ingest.md), and
  no one may subscribe to it (reserved-topics.md: "Publish" only).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

MAX_TOPIC_BYTES = 256
MAX_SLASHES = 7
BASIC_INGEST_PREFIX = "$aws/rules/"

K = TypeVar("K")
D = TypeVar("D")


def _check_common(text: str, what: str) -> str | None:
    if not text:
        return f"{what} is empty"
    if "\x00" in text:
        return f"{what} contains a NUL character"
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_TOPIC_BYTES:
        return f"{what} is {size} bytes, over the limit of {MAX_TOPIC_BYTES}"
    slashes = text.count("/")
    if slashes > MAX_SLASHES:
        return f"{what} has {slashes} slashes, over the limit of {MAX_SLASHES}"
    return None


@dataclass(frozen=True, slots=True)
class BasicIngest:
    """A publish to ``$aws/rules/<rule>/<topic>``: for the rule ``rule`` only, which sees
    ``topic`` (without the prefix) through ``topic()`` and ``topic(n)``."""

    rule: str
    topic: str


def basic_ingest(topic: str) -> BasicIngest | None:
    """The rule and the topic it sees, if ``topic`` is a Basic Ingest topic. AWS: "topic
    names that start with ``$aws/rules/rule_name`` for their first three levels"; the
    topic after them may be empty (``$aws/rules/rule_name`` itself is the reserved topic
    reserved-topics.md lists)."""
    if not topic.startswith(BASIC_INGEST_PREFIX):
        return None
    rule, _, rest = topic[len(BASIC_INGEST_PREFIX) :].partition("/")
    return BasicIngest(rule, rest)


def validate_topic_name(topic: str) -> str | None:
    """Why ``topic`` can't be published to, or ``None`` when it can. Not cached: the hot
    paths check through a ``limits.PublishCheck``, which remembers valid names."""
    ingest = basic_ingest(topic)
    if ingest is None:
        problem = _check_common(topic, "topic")
    elif ingest.topic:
        # AWS quotas: "Topic size (excluding $aws/rules/name/)", "Slashes in topic or filter
        # (excluding Basic Ingest's first 3)".
        problem = _check_common(ingest.topic, "topic")
    else:
        problem = None
    if problem:
        return problem
    if "\x00" in topic:
        return "topic contains a NUL character"
    if "+" in topic or "#" in topic:
        return "topic name contains a wildcard (+ or #)"
    return None


def validate_topic_filter(topic_filter: str) -> str | None:
    """Why ``topic_filter`` can't be subscribed to, or ``None`` when it can."""
    problem = _check_common(topic_filter, "topic filter")
    if problem:
        return problem
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            return "'#' must be a whole level and the last one"
        if "+" in level and level != "+":
            return "'+' must be a whole level"
    return None


SHARE_PREFIX = "$share/"
MAX_SHARE_NAME = 128


def shared_subscription(topic_filter: str) -> tuple[str, str] | None:
    """``$share/<group>/<filter>`` as (group, filter); None for any other filter."""
    if not topic_filter.startswith(SHARE_PREFIX):
        return None
    group, slash, rest = topic_filter[len(SHARE_PREFIX) :].partition("/")
    if not slash:
        return None
    return group, rest


def validate_subscription(topic_filter: str) -> str | None:
    """Why a client can't subscribe to ``topic_filter``: ``validate_topic_filter``, and
    AWS's "Your devices and rules can't subscribe to Basic Ingest reserved topics". A
    shared subscription (``$share/<ShareName>/<TopicFilter>``, for MQTT 3.1.1 and 5) needs
    a ShareName of at most 128 characters without ``/``, ``+`` or ``#``; its two extra
    slashes do not count toward the slash limit (aws-iot-current.md, section 2)."""
    if topic_filter.startswith(SHARE_PREFIX) or topic_filter == SHARE_PREFIX[:-1]:
        shared = shared_subscription(topic_filter)
        if shared is None or not shared[0] or not shared[1]:
            return "a shared subscription is $share/<ShareName>/<TopicFilter>"
        group, topic_filter = shared
        if "+" in group or "#" in group:
            return "a shared subscription's ShareName may not contain '+' or '#'"
        if len(group) > MAX_SHARE_NAME:
            return f"a shared subscription's ShareName is over {MAX_SHARE_NAME} characters"
    if topic_filter.startswith(BASIC_INGEST_PREFIX) or topic_filter == BASIC_INGEST_PREFIX[:-1]:
        return "Basic Ingest topics ($aws/rules/...) cannot be subscribed to"
    return validate_topic_filter(topic_filter)


def matches(topic_filter: str, topic: str) -> bool:
    """One-off check of a filter against a topic name (AWS semantics)."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    f_levels = topic_filter.split("/")
    t_levels = topic.split("/")
    for index, f_level in enumerate(f_levels):
        if f_level == "#":
            # AWS: 'a/#' needs at least the level after 'a' to exist (it may be empty).
            return len(t_levels) > index or index == 0
        if index >= len(t_levels):
            return False
        if f_level != "+" and f_level != t_levels[index]:
            return False
    return len(f_levels) == len(t_levels)


@dataclass(slots=True)
class _Node(Generic[K, D]):
    children: dict[str, _Node[K, D]] = field(default_factory=dict)
    # Entries of the filter that ends at this node.
    entries: dict[K, D] = field(default_factory=dict)
    # Entries of the filter that ends with '#' right below this node.
    hash_entries: dict[K, D] = field(default_factory=dict)


class TopicTrie(Generic[K, D]):
    """Maps topic filters to ``{key: data}`` and finds every entry matching a topic.

    A match walks at most the levels of the topic, following the literal child and the
    ``+`` child at each level, so its cost does not depend on how many unrelated filters
    are stored. ``key`` identifies a subscriber (a client ID, a rule name); ``data`` is
    whatever goes with it (a QoS, a compiled rule). One key holds one entry per filter.
    """

    __slots__ = ("_root", "_count", "_cache")

    # Topics repeat (a room's topic, chat/out), so match results are memoized per topic
    # until the next change; churn only costs a cache clear.
    CACHE_SIZE = 4096  # hot topics are few (rooms); unique ones (lifecycle) must not pile up

    def __init__(self) -> None:
        self._root: _Node[K, D] = _Node()
        self._count = 0
        self._cache: dict[str, list[tuple[K, D]]] = {}

    def __len__(self) -> int:
        return self._count

    def add(self, topic_filter: str, key: K, data: D) -> bool:
        """Store ``key -> data`` under ``topic_filter``; True if the key was new there."""
        node = self._root
        levels = topic_filter.split("/")
        if levels[-1] == "#":
            for level in levels[:-1]:
                node = node.children.setdefault(level, _Node())
            bucket = node.hash_entries
        else:
            for level in levels:
                node = node.children.setdefault(level, _Node())
            bucket = node.entries
        new = key not in bucket
        if new or bucket[key] != data:
            self._cache.clear()
        bucket[key] = data
        self._count += new
        return new

    def remove(self, topic_filter: str, key: K) -> bool:
        """Forget ``key`` under ``topic_filter``; True if it was there. Prunes empty nodes."""
        levels = topic_filter.split("/")
        is_hash = levels[-1] == "#"
        if is_hash:
            levels = levels[:-1]
        path: list[tuple[_Node[K, D], str]] = []
        node = self._root
        for level in levels:
            child = node.children.get(level)
            if child is None:
                return False
            path.append((node, level))
            node = child
        bucket = node.hash_entries if is_hash else node.entries
        if key not in bucket:
            return False
        del bucket[key]
        self._count -= 1
        self._cache.clear()
        for parent, level in reversed(path):
            child = parent.children[level]
            if child.children or child.entries or child.hash_entries:
                break
            del parent.children[level]
        return True

    def get(self, topic_filter: str, key: K) -> D | None:
        levels = topic_filter.split("/")
        is_hash = levels[-1] == "#"
        node = self._root
        for level in levels[:-1] if is_hash else levels:
            child = node.children.get(level)
            if child is None:
                return None
            node = child
        return (node.hash_entries if is_hash else node.entries).get(key)

    def match(self, topic: str) -> list[tuple[K, D]]:
        """Every ``(key, data)`` whose filter matches ``topic``; a key may appear once per
        matching filter (callers that need one delivery per key pick the highest QoS).
        The list is shared with later calls for the same topic: do not modify it."""
        found = self._cache.get(topic)
        if found is not None:
            return found
        found = self._walk(topic)
        if len(self._cache) >= self.CACHE_SIZE:
            self._cache.clear()
        self._cache[topic] = found
        return found

    def _walk(self, topic: str) -> list[tuple[K, D]]:
        levels = topic.split("/")
        out: list[tuple[K, D]] = []
        last = len(levels)
        dollar = topic.startswith("$")
        # Iterative walk: (node, level index).
        stack: list[tuple[_Node[K, D], int]] = [(self._root, 0)]
        while stack:
            node, index = stack.pop()
            at_root = index == 0
            if node.hash_entries and not (at_root and dollar):
                # '#' below this node matches when at least one more level exists
                # (AWS: 'a/#' matches 'a/' but not 'a'); a bare '#' matches everything.
                if index < last or at_root:
                    out.extend(node.hash_entries.items())
            if index == last:
                if node.entries:
                    out.extend(node.entries.items())
                continue
            children = node.children
            if not children:
                continue
            child = children.get(levels[index])
            if child is not None:
                stack.append((child, index + 1))
            if not (at_root and dollar):
                plus = children.get("+")
                if plus is not None and levels[index] != "+":
                    stack.append((plus, index + 1))
        return out

    def filters(self) -> Iterator[tuple[str, K, D]]:
        """Every stored ``(filter, key, data)``; for inspection, not the hot path."""
        stack: list[tuple[_Node[K, D], tuple[str, ...]]] = [(self._root, ())]
        while stack:
            node, prefix = stack.pop()
            for key, data in node.entries.items():
                yield "/".join(prefix), key, data
            for key, data in node.hash_entries.items():
                yield "/".join((*prefix, "#")), key, data
            for level, child in node.children.items():
                stack.append((child, (*prefix, level)))
