"""YAML loading that remembers where each value came from, and understands CloudFormation's
short tags (``!Ref``, ``!GetAtt``, ``!Sub``...), so every diagnostic can name file:line:col.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml


class PosStr(str):
    """A string scalar with its 1-based position and the column where its text starts.

    ``position_at`` maps an offset in the value back to the file, whatever the scalar's
    style: YAML folds lines, strips indentation and decodes escapes, so a value's line and
    column are not the file's (a SQL error on the second line of a ``>-`` block).
    """

    line: int
    column: int
    text_line: int
    text_column: int
    _source: _ScalarSource | None = None
    _map: list[tuple[int, int]] | None = None

    @classmethod
    def at(cls, text: str, line: int, column: int) -> PosStr:
        """A value made from the file's text (e.g. a resolved ``!Sub``): every offset maps
        to where that text starts."""
        s = cls(text)
        s.line = s.text_line = line
        s.column = s.text_column = column
        return s

    def position_at(self, offset: int) -> tuple[int, int]:
        """The 1-based file line and column of the value's character at ``offset``; in the
        blanks that end the value or past it (an unexpected end of statement), just after
        its last non-blank character, where the reader looks for what is missing."""
        if self._source is None:
            return self.text_line, self.text_column
        if self._map is None:
            self._map = _scalar_map(str(self), self._source)
        return self._map[max(0, min(offset, len(self.rstrip())))]


def sql_offset(text: str, line: int, column: int) -> int:
    """The offset in ``text`` of a 1-based line and column counted as the SQL lexer does
    (lines end at ``\\n``)."""
    offset = 0
    for _ in range(line - 1):
        newline = text.find("\n", offset)
        if newline < 0:
            break
        offset = newline + 1
    return offset + column - 1


@dataclass(frozen=True, slots=True)
class _ScalarSource:
    """Where a scalar's text is in the file: the loader's buffer, the index, line and
    column (0-based) of its first character (the quote or block indicator included)."""

    buffer: str
    index: int
    line: int
    column: int
    style: str | None


_BREAKS = "\r\n\x85\u2028\u2029"
_BLANKS = " \t" + _BREAKS
_ESCAPE_LENGTH = {"x": 4, "u": 6, "U": 10}


class _Reader:
    """A cursor over the loader's buffer that counts lines and columns as PyYAML's
    ``Reader.forward`` does, so positions agree with the loader's own marks."""

    def __init__(self, src: _ScalarSource) -> None:
        self.buf, self.j = src.buffer, src.index
        self.line, self.column = src.line, src.column

    def here(self) -> tuple[int, int]:
        return self.line + 1, self.column + 1

    def at(self, chars: str) -> bool:
        return self.j < len(self.buf) and self.buf[self.j] in chars

    def at_escaped_break(self) -> bool:
        return self.buf[self.j : self.j + 1] == "\\" and self.buf[self.j + 1 : self.j + 2] in tuple(
            _BREAKS
        )

    def advance(self, n: int = 1) -> None:
        for _ in range(n):
            ch = self.buf[self.j]
            self.j += 1
            if ch in "\n\x85\u2028\u2029" or (ch == "\r" and self.buf[self.j : self.j + 1] != "\n"):
                self.line, self.column = self.line + 1, 0
            elif ch != "\ufeff":
                self.column += 1

    def line_break(self) -> None:
        self.advance(2 if self.buf[self.j : self.j + 2] == "\r\n" else 1)

    def double_quoted_blanks(self) -> list[tuple[int, int]]:
        """Read a run of blanks of a double-quoted scalar; the positions of the characters
        YAML makes of it (spaces kept, one line break folded to a space, n to n-1 line
        breaks, an escaped line break to nothing), so escapes after it stay in step."""
        kept: list[tuple[int, int]] = []
        pending: list[tuple[int, int]] = []
        breaks: list[tuple[int, int]] = []
        while self.at(_BLANKS) or self.at_escaped_break():
            if self.at(" \t"):
                if not breaks:
                    pending.append(self.here())
                self.advance()
            elif self.at_escaped_break():
                kept += pending
                pending = []
                self.advance()
                self.line_break()
                while self.at(" \t"):
                    self.advance()
            else:
                breaks.append(self.here())
                pending = []
                self.line_break()
        if not breaks:
            return kept + pending
        return kept + (breaks[:1] if len(breaks) == 1 else breaks[1:])


def _scalar_map(value: str, src: _ScalarSource) -> list[tuple[int, int]]:
    """For each character of ``value`` (and one past the end), its file position.

    The non-blank characters of a value appear in the file in order, each as itself, an
    escape (double-quoted) or ``''`` (single-quoted); what YAML changes is blanks and line
    breaks (folding, indentation, chomping). So the walk pairs each non-blank character with
    the next non-blank text of the scalar, and each blank with the file's next blank. In a
    double-quoted scalar an escape may make a blank too: there runs of blanks are read as
    YAML folds them.
    """
    r = _Reader(src)
    style = src.style
    if style in ("|", ">"):  # the header line (indicators, comment) holds no text
        while r.j < len(r.buf) and not r.at(_BREAKS):
            r.advance()
        r.line_break()
    elif style in ("'", '"'):
        r.advance()
    out: list[tuple[int, int]] = []
    i = 0
    while i < len(value):
        if style == '"' and (r.at(_BLANKS) or r.at_escaped_break()):
            made = r.double_quoted_blanks()[: len(value) - i]
            out += made
            i += len(made)
            continue
        if value[i] not in _BLANKS:
            while r.at(_BLANKS):
                r.advance()
        out.append(r.here())
        if r.j >= len(r.buf):
            pass
        elif style == '"' and r.at("\\"):
            r.advance(_ESCAPE_LENGTH.get(r.buf[r.j + 1 : r.j + 2], 2))
        elif style == "'" and r.buf[r.j : r.j + 2] == "''":
            r.advance(2)
        elif r.at(_BREAKS):
            r.line_break()
        elif value[i] not in _BLANKS or r.at(_BLANKS):
            r.advance()
        i += 1
    out.append(r.here())
    return out


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
    mark = node.start_mark
    if mark.buffer:
        s._source = _ScalarSource(mark.buffer, mark.index, mark.line, mark.column, node.style)
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
