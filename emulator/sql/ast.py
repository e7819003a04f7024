"""The AST of AWS IoT SQL: frozen, slotted nodes; ``pos`` is the offset in the statement."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Node:
    pos: int


@dataclass(frozen=True, slots=True)
class Literal(Node):
    value: Any  # int, Decimal, str, bool, None


@dataclass(frozen=True, slots=True)
class Star(Node):
    """``*``: the whole incoming document."""


@dataclass(frozen=True, slots=True)
class Field(Node):
    name: str  # a top-level field of the current document


@dataclass(frozen=True, slots=True)
class Variable(Node):
    name: str  # with its '@', as written in SET


@dataclass(frozen=True, slots=True)
class Member(Node):
    target: Node
    name: str


@dataclass(frozen=True, slots=True)
class Index(Node):
    target: Node
    index: Node


@dataclass(frozen=True, slots=True)
class Unary(Node):
    op: str  # '-', 'NOT'
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary(Node):
    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Call(Node):
    name: str  # lower-cased: function names are case-insensitive
    args: tuple[Node, ...]
    written: str = ""  # as the user spelled it, for messages


@dataclass(frozen=True, slots=True)
class Case(Node):
    subject: Node | None
    whens: tuple[tuple[Node, Node], ...]
    default: Node | None


@dataclass(frozen=True, slots=True)
class ObjectLiteral(Node):
    items: tuple[tuple[str, Node], ...]


@dataclass(frozen=True, slots=True)
class ArrayLiteral(Node):
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class SelectItem(Node):
    expr: Node
    alias: tuple[str, ...] | None  # dotted alias path


@dataclass(frozen=True, slots=True)
class Assignment(Node):
    variable: str  # with its '@'
    expr: Node


@dataclass(frozen=True, slots=True)
class Select(Node):
    value: bool  # SELECT VALUE
    items: tuple[SelectItem, ...]
    # top level: the topic filter string, or None without FROM (a rule only Basic Ingest
    # triggers); nested: an expression (``FROM *`` is the whole document)
    source: Node | str | None
    where: Node | None
    assignments: tuple[Assignment, ...] = ()  # SET, top level only
