"""A compiled rule statement: ``compile_statement(sql)`` once, ``evaluate(ctx)`` per message."""

from __future__ import annotations

from typing import Any, Final

from emulator.sql import ast
from emulator.sql.context import Env, Json, MessageContext
from emulator.sql.errors import RuleEvaluationError, RuleSyntaxError
from emulator.sql.evaluate import Compiler
from emulator.sql.functions import REGISTRY
from emulator.sql.parser import parse
from emulator.sql.values import UNDEFINED, to_json, to_string
from emulator.topics import matches, validate_topic_filter

SQL_VERSIONS = ("2015-10-08", "2016-03-23", "beta")


class _NoMatch:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_MATCH"


NO_MATCH: Final = _NoMatch()


class Statement:
    """A parsed and compiled ``[SET @v = ...] SELECT ... [FROM 'filter'] [WHERE ...]``.

    ``topic_filter`` is None for a statement without FROM: a rule only Basic Ingest
    (``$aws/rules/<name>/...``) triggers; ``evaluate`` then takes any topic."""

    __slots__ = (
        "sql",
        "sql_version",
        "topic_filter",
        "uses_external",
        "function_names",
        "_project",
        "_where",
        "_assignments",
        "_fresh_object",
        "_scalar_over_flat",
    )

    def __init__(self, sql: str, sql_version: str) -> None:
        if sql_version not in SQL_VERSIONS:
            raise RuleSyntaxError(
                f"unknown SQL version {sql_version!r} (use 2016-03-23 or 2015-10-08)", sql, 1, 1
            )
        tree = parse(sql)
        assert tree.source is None or isinstance(tree.source, str)
        if tree.source is not None:
            problem = validate_topic_filter(tree.source)
            if problem:
                start = sql.find(tree.source)
                raise RuleSyntaxError(f"FROM: {problem}", sql, 1, max(start, 0) + 1)
        compiler = Compiler(sql, sql_version)
        self._assignments = tuple((a.variable, compiler.expr(a.expr)) for a in tree.assignments)
        self._project = compiler.projection(tree)
        self._where = compiler.expr(tree.where) if tree.where is not None else None
        # SELECT a, b, * builds a new dict per message, which may be converted in place;
        # SELECT VALUE may return a part of the shared document, which must be copied.
        self._fresh_object = not tree.value
        # SELECT *, a AS x with only scalars added: over a flat document, the output needs
        # no to_json (see evaluate_env)
        self._scalar_over_flat = compiler.star_then_fields(tree) is not None and all(
            _scalar_over_flat(item.expr) for item in tree.items[1:]
        )
        self.sql = sql
        self.sql_version = sql_version
        self.topic_filter = tree.source
        self.uses_external = compiler.uses_external
        self.function_names = frozenset(compiler.function_names)

    def matches_topic(self, topic: str) -> bool:
        return self.topic_filter is not None and matches(self.topic_filter, topic)

    def evaluate(self, ctx: MessageContext) -> Json | _NoMatch:
        """The rule's output for this message, or NO_MATCH (topic or WHERE)."""
        if self.topic_filter is not None and not matches(self.topic_filter, ctx.topic):
            return NO_MATCH
        return self.evaluate_matched(ctx)

    def evaluate_matched(self, ctx: MessageContext) -> Json | _NoMatch:
        """Like ``evaluate`` for a message already routed by topic (the engine's index)."""
        return self.evaluate_env(Env(ctx.document, ctx, self.sql_version, ctx.payload))

    def evaluate_env(self, env: Env, flat_document: bool = False) -> Json | _NoMatch:
        """``evaluate_matched`` with the caller's ``Env`` (the engine renders the actions'
        templates with the same one: both see the original message).

        ``flat_document``: ``env.doc`` is a document ``parse_document`` found flat (no
        Decimal, no nested value), so a copy of it needs no ``to_json``."""
        try:
            if self._assignments:
                env.variables = _assign(self._assignments, env)
            if self._where is not None and self._where(env) is not True:
                return NO_MATCH
            out = self._project(env)
        except RecursionError:
            raise RuleEvaluationError("payload nested too deeply to evaluate") from None
        if out is UNDEFINED:
            return NO_MATCH  # SELECT VALUE of an Undefined value: no message to act on
        if type(out) is bytes:
            return out
        if self._fresh_object and type(out) is dict:
            if flat_document and self._scalar_over_flat:
                # The chat's SELECT *, clientid() AS clientId, ... over a flat document: a
                # copy of the document plus scalars by their form, so nothing to check.
                return out
            # The usual output holds only plain values: one C-level pass over the value
            # types says so, without a call and a Python loop turn per key.
            if _PLAIN.issuperset(map(type, out.values())):
                return out
            return _json_in_place(out, self.sql_version)
        return to_json(out, self.sql_version)


_PLAIN = frozenset({str, int, bool, type(None)})
MAX_VARIABLE_BYTES = 128 * 1024  # each value, and all together (SET clause limits)


def _assign(assignments: tuple[tuple[str, Any], ...], env: Env) -> dict[str, Any]:
    """The SET clause's values, in order: each may read the ones before it."""
    variables: dict[str, Any] = {}
    env.variables = variables
    total = 0
    for name, expression in assignments:
        value = expression(env)
        if type(value) is bytes:
            raise RuleEvaluationError(
                f"SET {name}: the payload is not JSON; a variable takes JSON values only "
                "(encode(*, 'base64') first)"
            )
        if type(value) in (str, list, dict):
            size = len(to_string(value, env.sql_version).encode())
            total += size
            if size > MAX_VARIABLE_BYTES or total > MAX_VARIABLE_BYTES:
                raise RuleEvaluationError(
                    f"SET {name}: variables hold at most 128 KiB of JSON, each and together"
                )
        variables[name] = value
    return variables


def _scalar_over_flat(node: ast.Node) -> bool:
    """An expression whose value is a str, int, bool or None (or Undefined) whenever the
    document is flat: a field of it, a literal of those types, or a function of the
    message alone (``Function.direct``: clientid(), timestamp(), ...)."""
    if isinstance(node, ast.Field):
        return True
    if isinstance(node, ast.Literal):
        return type(node.value) in _PLAIN
    if isinstance(node, ast.Call) and not node.args:
        function = REGISTRY.get(node.name)
        return function is not None and function.direct is not None
    return False


def _json_in_place(out: dict[str, Any], sql_version: str) -> dict[str, Any]:
    """``to_json`` for a dict the projection just built: only values that need it change."""
    plain = _PLAIN
    changes: list[tuple[str, Any]] | None = None
    for key, value in out.items():
        if type(value) not in plain:
            if changes is None:
                changes = []
            changes.append((key, value))
    if changes is not None:
        for key, value in changes:
            if value is UNDEFINED:
                del out[key]
            else:
                out[key] = to_json(value, sql_version)
    return out


def compile_statement(sql: str, sql_version: str = "2016-03-23") -> Statement:
    return Statement(sql, sql_version)
