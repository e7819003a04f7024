"""Tokens of AWS IoT SQL, each with its line and column."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from emulator.sql.errors import RuleSyntaxError


class Kind(Enum):
    IDENT = "identifier"
    STRING = "string"  # 'text' or "text": AWS IoT SQL has no quoted names
    VARIABLE = "variable"  # @name, set by the SET clause
    INT = "integer"
    DECIMAL = "decimal"
    OP = "operator"
    EOF = "end of statement"


@dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    text: str
    pos: int
    line: int
    column: int


OPERATORS = (
    "<>",
    "!=",
    "<=",
    ">=",
    "=",
    "<",
    ">",
    "+",
    "-",
    "*",
    "/",
    "%",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ".",
    ":",
)


def tokenize(sql: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    line = 1
    line_start = 0
    n = len(sql)

    def fail(message: str, at: int) -> RuleSyntaxError:
        # From the offset itself: a string may span lines, so the running counters can
        # already be past the token's start.
        at_line = sql.count("\n", 0, at) + 1
        return RuleSyntaxError(message, sql, at_line, at - (sql.rfind("\n", 0, at) + 1) + 1)

    while i < n:
        ch = sql[i]
        if ch == "\n":
            line += 1
            i += 1
            line_start = i
            continue
        if ch.isspace():
            i += 1
            continue
        start = i
        col = i - line_start + 1
        if ch.isalpha() or ch == "_" or ch == "$":
            i += 1
            while i < n and (sql[i].isalnum() or sql[i] in "_$"):
                i += 1
            tokens.append(Token(Kind.IDENT, sql[start:i], start, line, col))
        elif ch == "@":
            i += 1
            while i < n and (sql[i].isalnum() or sql[i] == "_"):
                i += 1
            if i == start + 1:
                raise fail("expected a variable name after '@'", start)
            tokens.append(Token(Kind.VARIABLE, sql[start:i], start, line, col))
        elif ch.isdigit():
            i += 1
            while i < n and sql[i].isdigit():
                i += 1
            kind = Kind.INT
            if i + 1 < n and sql[i] == "." and sql[i + 1].isdigit():
                kind = Kind.DECIMAL
                i += 1
                while i < n and sql[i].isdigit():
                    i += 1
            if i < n and sql[i] in "eE":
                j = i + 1
                if j < n and sql[j] in "+-":
                    j += 1
                if j < n and sql[j].isdigit():
                    kind = Kind.DECIMAL
                    i = j
                    while i < n and sql[i].isdigit():
                        i += 1
            tokens.append(Token(kind, sql[start:i], start, line, col))
        elif ch == "`":
            raise fail(
                "AWS IoT SQL has no quoted names: for a key such as my-key, "
                "write get(obj, 'my-key') (or get(*, 'my-key') at the top)",
                start,
            )
        elif ch in "'\"":
            quote = ch
            i += 1
            chars: list[str] = []
            while True:
                if i >= n:
                    raise fail("unterminated string", start)
                c = sql[i]
                if c == quote:
                    if i + 1 < n and sql[i + 1] == quote:  # doubled quote escapes itself
                        chars.append(quote)
                        i += 2
                        continue
                    i += 1
                    break
                if c == "\\" and i + 1 < n:
                    nxt = sql[i + 1]
                    chars.append({"n": "\n", "t": "\t", "r": "\r"}.get(nxt, nxt))
                    i += 2
                    continue
                if c == "\n":
                    line += 1
                    line_start = i + 1
                chars.append(c)
                i += 1
            tokens.append(Token(Kind.STRING, "".join(chars), start, line, col))
        else:
            for op in OPERATORS:
                if sql.startswith(op, i):
                    tokens.append(Token(Kind.OP, op, start, line, col))
                    i += len(op)
                    break
            else:
                raise fail(f"unexpected character {ch!r}", start)
    tokens.append(Token(Kind.EOF, "", n, line, n - line_start + 1))
    return tokens
