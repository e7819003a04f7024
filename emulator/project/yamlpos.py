"""YAML loading that remembers where each value came from, and understands CloudFormation's
short tags (``!Ref``, ``!GetAtt``, ``!Sub``...), so every diagnostic can name file:line:col.
"""

from __future__ import annotations

from typing import Any

import yaml


class PosStr(str):
    """A string scalar with its 1-based position and the column where its text starts."""

    line: int
    column: int
    text_line: int
    text_column: int


class PosDict(dict[str, Any]):
    line: int
    column: int
    key_positions: dict[str, tuple[int, int]]


class PosList(list[Any]):
    line: int
    column: int


def position_of(value: Any, default: tuple[int, int] = (0, 0)) -> tuple[int, int]:
    line = getattr(value, "line", None)
    return (line, value.column) if line is not None else default


class _Loader(yaml.SafeLoader):
    pass


def _mark(obj: Any, node: yaml.Node) -> Any:
    obj.line = node.start_mark.line + 1
    obj.column = node.start_mark.column + 1
    return obj


def _construct_str(loader: _Loader, node: yaml.ScalarNode) -> PosStr:
    s = PosStr(loader.construct_scalar(node))
    _mark(s, node)
    # Where the text itself starts: after an opening quote, or on the next line for | and >.
    if node.style in ("|", ">"):
        s.text_line, s.text_column = s.line + 1, _block_indent(loader, node)
    elif node.style in ("'", '"'):
        s.text_line, s.text_column = s.line, s.column + 1
    else:
        s.text_line, s.text_column = s.line, s.column
    return s


def _block_indent(loader: _Loader, node: yaml.ScalarNode) -> int:
    buffer = node.start_mark.buffer
    if not buffer:
        return node.start_mark.column + 1
    i = buffer.find("\n", node.start_mark.index)
    if i < 0:
        return node.start_mark.column + 1
    j = i + 1
    while j < len(buffer) and buffer[j] == " ":
        j += 1
    return j - i


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> PosDict:
    d = PosDict()
    _mark(d, node)
    d.key_positions = {}
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        d[str(key)] = loader.construct_object(value_node, deep=True)
        d.key_positions[str(key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
    return d


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> PosList:
    items = PosList(loader.construct_object(child, deep=True) for child in node.value)
    return _mark(items, node)  # type: ignore[no-any-return]


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SCALAR_TAG, _construct_str)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_seq)

_INTRINSICS = [
    "Ref",
    "GetAtt",
    "Sub",
    "Join",
    "Select",
    "Split",
    "If",
    "Equals",
    "Not",
    "And",
    "Or",
    "FindInMap",
    "GetAZs",
    "ImportValue",
    "Base64",
    "Cidr",
    "Condition",
]


def _intrinsic(name: str) -> Any:
    key = name if name in ("Ref", "Condition") else f"Fn::{name}"

    def construct(loader: _Loader, node: yaml.Node) -> PosDict:
        if isinstance(node, yaml.ScalarNode):
            value: Any = _construct_str(loader, node)
            if name == "GetAtt":
                value = PosList(str(value).split(".", 1))
        elif isinstance(node, yaml.SequenceNode):
            value = _construct_seq(loader, node)
        else:
            value = _construct_map(loader, node)  # type: ignore[arg-type]
        d = PosDict({key: value})
        d.key_positions = {}
        return _mark(d, node)  # type: ignore[no-any-return]

    return construct


for _name in _INTRINSICS:
    _Loader.add_constructor(f"!{_name}", _intrinsic(_name))


def load_yaml(text: str) -> Any:
    """Parse YAML (or JSON) keeping positions; raises yaml.YAMLError with a problem_mark."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
