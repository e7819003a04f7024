"""Substitution templates ``${expression}`` in action fields (iot-substitution-templates.md).

The expressions see the original message, not the SELECT output ("you cannot reference an
alias created using the AS clause"). Compiled once; ``render`` only evaluates.
"""

from __future__ import annotations

from typing import Any

from emulator.sql import ast
from emulator.sql.context import Env, MessageContext
from emulator.sql.errors import RuleSyntaxError
from emulator.sql.evaluate import Compiled, Compiler
from emulator.sql.lexer import Kind
from emulator.sql.parser import Parser
from emulator.sql.values import UNDEFINED, to_string


class Template:
    __slots__ = ("text", "_parts", "_single", "_single_field", "function_names", "is_constant")

    def __init__(self, text: str, sql_version: str = "2016-03-23") -> None:
        self.text = text
        parts: list[str | Compiled] = []
        names: set[str] = set()
        fields: dict[int, str] = {}  # id of a compiled part -> the field it reads, if one
        i = 0
        literal: list[str] = []
        while i < len(text):
            start = text.find("${", i)
            if start < 0:
                literal.append(text[i:])
                break
            literal.append(text[i:start])
            end = _closing_brace(text, start + 2)
            if end < 0:
                raise RuleSyntaxError("unterminated ${ in template", text, 1, start + 1)
            expression = text[start + 2 : end]
            if not expression.strip():
                raise RuleSyntaxError("empty ${} in template", text, 1, start + 1)
            parser = Parser(expression)
            try:
                node = parser.parse_expr()
                if parser.tok.kind is not Kind.EOF:
                    raise parser.error(f"unexpected {parser.describe()} in template expression")
            except RuleSyntaxError as exc:
                raise RuleSyntaxError(exc.message, text, 1, start + 2 + exc.column) from None
            compiler = Compiler(expression, sql_version)
            try:
                compiled = compiler.expr(node)
            except RuleSyntaxError as exc:
                raise RuleSyntaxError(exc.message, text, 1, start + 2 + exc.column) from None
            names |= compiler.function_names
            if isinstance(node, ast.Field):
                fields[id(compiled)] = node.name
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(compiled)
            i = end + 1
        if literal and "".join(literal):
            parts.append("".join(literal))
        self._parts = tuple(parts)
        self.function_names = frozenset(names)
        self.is_constant = all(isinstance(p, str) for p in parts)
        # 'chat/pub${room}': at most one literal either side of one expression
        self._single = _single_expression(self._parts)
        # ... and when that expression is a field ('${room}'), its name: ``render_env``
        # reads it inline rather than through the field's closure (a Python frame).
        self._single_field = fields.get(id(self._single[1])) if self._single else None

    def render(self, ctx: MessageContext, sql_version: str = "2016-03-23") -> str:
        if self.is_constant:
            return self.text
        return self.render_env(Env(ctx.document, ctx, sql_version, ctx.payload))

    def render_env(self, env: Env) -> str:
        """``render`` with an ``Env`` the caller already built for this message."""
        if self.is_constant:
            return self.text
        single = self._single
        if single is not None:
            prefix, expression, suffix = single
            field = self._single_field
            if field is not None:  # the same read as Compiler.field's closure
                doc = env.doc
                value = doc.get(field, UNDEFINED) if type(doc) is dict else UNDEFINED
            else:
                value = expression(env)
            if type(value) is str:
                return prefix + value + suffix
            if value is UNDEFINED:
                return prefix + suffix
            return prefix + to_string(value, env.sql_version) + suffix
        out: list[str] = []
        for part in self._parts:
            if isinstance(part, str):
                out.append(part)
            else:
                part_value: Any = part(env)
                if part_value is not UNDEFINED:
                    out.append(to_string(part_value, env.sql_version))
        return "".join(out)


def _single_expression(parts: tuple[str | Compiled, ...]) -> tuple[str, Compiled, str] | None:
    exprs = [p for p in parts if not isinstance(p, str)]
    if len(exprs) != 1:
        return None
    i = parts.index(exprs[0])
    prefix, suffix = parts[:i], parts[i + 1 :]
    if len(prefix) > 1 or len(suffix) > 1:
        return None
    return (str(prefix[0]) if prefix else "", exprs[0], str(suffix[0]) if suffix else "")


def _closing_brace(text: str, i: int) -> int:
    depth = 0
    quote = ""
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"`":
            quote = ch
        elif ch == "{":
            depth += 1
        elif ch == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    return -1


def compile_template(text: str, sql_version: str = "2016-03-23") -> Template:
    return Template(text, sql_version)
