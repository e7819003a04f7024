"""Compiles an AST once into nested closures; evaluating a message only calls them.

Each compiled expression is ``fn(env) -> value``. ``Env`` carries the current document
(the payload, or an array element inside a nested SELECT) and the message context.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from emulator.sql import ast
from emulator.sql.context import Env, variables_of
from emulator.sql.errors import RuleEvaluationError, RuleSyntaxError
from emulator.sql.functions import REGISTRY
from emulator.sql.operators import BINARY, op_add, op_neg, op_not
from emulator.sql.parser import position
from emulator.sql.values import UNDEFINED, equal, to_number

Compiled = Callable[[Env], Any]


class Compiler:
    def __init__(self, sql: str, sql_version: str) -> None:
        self.sql = sql
        self.sql_version = sql_version
        self.function_names: set[str] = set()
        self.uses_external = False

    def error(self, message: str, pos: int) -> RuleSyntaxError:
        line, column = position(self.sql, pos)
        return RuleSyntaxError(message, self.sql, line, column)

    def expr(self, node: ast.Node) -> Compiled:
        method = _DISPATCH.get(type(node))
        if method is None:
            raise self.error(f"unsupported expression {type(node).__name__}", node.pos)
        return method(self, node)  # type: ignore[no-any-return]

    # -- leaves --------------------------------------------------------------------
    def literal(self, node: ast.Literal) -> Compiled:
        value = node.value
        return lambda env: value

    def star(self, node: ast.Star) -> Compiled:
        return lambda env: env.raw if env.doc is UNDEFINED else env.doc

    def variable(self, node: ast.Variable) -> Compiled:
        name = node.name

        def get(env: Env) -> Any:
            variables = variables_of(env)
            return UNDEFINED if variables is None else variables.get(name, UNDEFINED)

        return get

    def field(self, node: ast.Field) -> Compiled:
        name = node.name

        def get(env: Env) -> Any:
            doc = env.doc
            if type(doc) is dict:
                return doc.get(name, UNDEFINED)
            return UNDEFINED

        return get

    def member(self, node: ast.Member) -> Compiled:
        target = self.expr(node.target)
        name = node.name
        if name == "*":

            def all_values(env: Env) -> Any:
                v = target(env)
                return list(v.values()) if type(v) is dict else UNDEFINED

            return all_values

        def get(env: Env) -> Any:
            v = target(env)
            if type(v) is dict:
                return v.get(name, UNDEFINED)
            return UNDEFINED

        return get

    def index(self, node: ast.Index) -> Compiled:
        target = self.expr(node.target)
        index = self.expr(node.index)

        def get(env: Env) -> Any:
            v = target(env)
            i = index(env)
            if type(v) is list and type(i) is not bool:
                n = to_number(i)
                if n is not None and 0 <= int(n) < len(v):
                    return v[int(n)]
            elif type(v) is dict and type(i) is str:
                return v.get(i, UNDEFINED)
            return UNDEFINED

        return get

    # -- operators -----------------------------------------------------------------
    def unary(self, node: ast.Unary) -> Compiled:
        operand = self.expr(node.operand)
        if node.op == "NOT" and _is_undefined_test(node.operand):
            # WHERE NOT isUndefined(x), the usual guard: one test, no intermediate Boolean
            target = node.operand.args[0]  # type: ignore[attr-defined]
            if isinstance(target, ast.Field):
                # x a field of the document (the chat's): read inline, without the
                # field's own closure (a Python frame per message); same test as below.
                name = target.name

                def has_field(env: Env) -> Any:
                    doc = env.doc
                    return type(doc) is dict and doc.get(name, UNDEFINED) is not UNDEFINED

                return has_field
            arg = self.expr(target)

            def is_defined(env: Env) -> Any:
                try:
                    return arg(env) is not UNDEFINED
                except RuleEvaluationError:
                    raise
                except (ArithmeticError, ValueError, TypeError, OverflowError) as exc:
                    raise RuleEvaluationError(f"isundefined(): {exc}") from exc

            return is_defined
        if node.op == "NOT":

            def not_(env: Env) -> Any:
                v = operand(env)
                if v is True:  # the common case inline; op_not handles the rest
                    return False
                if v is False:
                    return True
                return op_not(v)

            return not_
        return lambda env: op_neg(operand(env))

    def binary(self, node: ast.Binary) -> Compiled:
        left, right = self.expr(node.left), self.expr(node.right)
        if node.op == "+":
            version = self.sql_version
            return lambda env: op_add(left(env), right(env), version)
        fn = BINARY[node.op]
        if node.op == "AND":
            # Short-circuit only when the result cannot depend on the right side's type.
            def and_(env: Env) -> Any:
                a = left(env)
                return fn(a, right(env))

            return and_
        return lambda env: fn(left(env), right(env))

    def call(self, node: ast.Call) -> Compiled:
        name = node.written or node.name  # messages use the user's spelling
        function = REGISTRY.get(node.name)
        if function is None:
            raise self.error(f"unknown function '{name}'", node.pos)
        n = len(node.args)
        if not function.min_args <= n <= function.max_args:
            expected = (
                str(function.min_args)
                if function.min_args == function.max_args
                else f"{function.min_args} to {function.max_args}"
            )
            raise self.error(f"{name}() takes {expected} arguments, got {n}", node.pos)
        if self.sql_version < function.since:  # version names sort by date; beta last
            raise self.error(
                f"{name}() needs SQL version {function.since} (this rule uses {self.sql_version})",
                node.pos,
            )
        if function.check is not None:
            problem = function.check(node.args)
            if problem:
                raise self.error(f"{name}(): {problem}", node.pos)
        self.function_names.add(node.name)
        self.uses_external |= function.external
        args = [self.expr(a) for a in node.args]
        impl = function.impl
        if not args and function.direct is not None:
            return function.direct
        if function.lazy or not args:
            # topic(), newuuid(): no argument list to build per call; a lazy function
            # (get_or_default) gets its compiled arguments and evaluates them itself
            fixed: list[Any] = args if function.lazy else []

            def call_fixed(env: Env) -> Any:
                try:
                    return impl(env, fixed)
                except RuleEvaluationError:
                    raise
                except (ArithmeticError, ValueError, TypeError, OverflowError) as exc:
                    raise RuleEvaluationError(f"{name}(): {exc}") from exc

            return call_fixed

        if len(args) == 1:  # isUndefined(x), upper(x), ...: no comprehension per call
            (arg,) = args

            def call1(env: Env) -> Any:
                try:
                    return impl(env, [arg(env)])
                except RuleEvaluationError:
                    raise
                except (ArithmeticError, ValueError, TypeError, OverflowError) as exc:
                    raise RuleEvaluationError(f"{name}(): {exc}") from exc

            return call1

        def call(env: Env) -> Any:
            try:
                return impl(env, [a(env) for a in args])
            except RuleEvaluationError:
                raise
            except (ArithmeticError, ValueError, TypeError, OverflowError) as exc:
                raise RuleEvaluationError(f"{name}(): {exc}") from exc

        return call

    def case(self, node: ast.Case) -> Compiled:
        whens = [(self.expr(c), self.expr(r)) for c, r in node.whens]
        default = self.expr(node.default) if node.default is not None else None
        if node.subject is not None:
            subject = self.expr(node.subject)

            def simple(env: Env) -> Any:
                v = subject(env)
                if v is UNDEFINED:
                    return UNDEFINED  # PITFALLS: CASE on Undefined is Undefined, even with ELSE
                for cond, result in whens:
                    c = cond(env)
                    if c is not UNDEFINED and equal(v, c):
                        return result(env)
                return default(env) if default else UNDEFINED

            return simple

        def searched(env: Env) -> Any:
            for cond, result in whens:
                if cond(env) is True:
                    return result(env)
            return default(env) if default else UNDEFINED

        return searched

    def object_literal(self, node: ast.ObjectLiteral) -> Compiled:
        self.literals_need_2016(node)
        items = [(k, self.expr(v)) for k, v in node.items]

        def build(env: Env) -> Any:
            out = {}
            for k, fn in items:
                v = fn(env)
                if v is not UNDEFINED:
                    out[k] = v
            return out

        return build

    def array_literal(self, node: ast.ArrayLiteral) -> Compiled:
        self.literals_need_2016(node)
        items = [self.expr(v) for v in node.items]
        return lambda env: [v for v in (fn(env) for fn in items) if v is not UNDEFINED]

    def literals_need_2016(self, node: ast.Node) -> None:
        if self.sql_version == "2015-10-08":  # iot-sql-literals.md, Note
            raise self.error("object and array literals need SQL version 2016-03-23", node.pos)

    def nested(self, node: ast.Select) -> Compiled:
        if self.sql_version == "2015-10-08":
            raise self.error("nested queries need SQL version 2016-03-23", node.pos)
        assert isinstance(node.source, ast.Node)
        source = self.expr(node.source)
        project = self.projection(node)
        where = self.expr(node.where) if node.where is not None else None

        def run(env: Env) -> Any:
            items = source(env)
            if type(items) is dict:
                # an object (FROM *, FROM obj) is one row, and the result is that row's
                # projection itself: transform()'s example 3 (iot-sql-functions.md)
                inner = env.child(items)
                if where is not None and where(inner) is not True:
                    return UNDEFINED
                return project(inner)
            if type(items) is not list:
                return UNDEFINED
            out = []
            for item in items:
                inner = env.child(item)
                if where is not None and where(inner) is not True:
                    continue  # elements whose condition is Undefined are dropped
                v = project(inner)
                if v is not UNDEFINED:
                    out.append(v)
            return out

        return run

    # -- SELECT ----------------------------------------------------------------------
    @staticmethod
    def star_then_fields(select: ast.Select) -> tuple[str, ...] | None:
        """The keys ``SELECT *, a AS x, f() AS y`` sets on its copy of the document (in
        order, one name each), or None when the projection has another shape."""
        items = select.items
        if select.value or not items or not _is_star(items[0]):
            return None
        keys: list[str] = []
        for index, item in enumerate(items[1:], 1):
            if isinstance(item.expr, ast.Star):
                return None
            alias = item.alias or (_default_name(item.expr, index),)
            if len(alias) != 1:
                return None
            keys.append(alias[0])
        return tuple(keys)

    def projection(self, select: ast.Select) -> Compiled:
        if select.value:
            return self.expr(select.items[0].expr)
        parts: list[tuple[tuple[str, ...] | None, Compiled, bool]] = []
        for index, item in enumerate(select.items):
            fn = self.expr(item.expr)
            if _is_star(item):
                parts.append((None, fn, True))
                continue
            alias = item.alias or (_default_name(item.expr, index),)
            parts.append((alias, fn, False))

        keys = self.star_then_fields(select)
        if keys is not None:
            return _star_then_fields(
                [(k, fn) for k, (_, fn, _) in zip(keys, parts[1:], strict=True)]
            )

        def project(env: Env) -> Any:
            out: dict[str, Any] = {}
            for alias, fn, is_star in parts:
                v = fn(env)
                if is_star:
                    if type(v) is dict:
                        out.update(v)
                    elif len(parts) == 1:
                        return v  # SELECT * of a non-object payload passes it through
                    continue
                if v is UNDEFINED:
                    continue
                assert alias is not None
                target = out
                for key in alias[:-1]:
                    nxt = target.get(key)
                    if type(nxt) is not dict:
                        nxt = {}
                        target[key] = nxt
                    target = nxt
                target[alias[-1]] = v
            return out

        return project


def _is_star(item: ast.SelectItem) -> bool:
    """``*`` merging the document's keys into the output (``* AS x`` is one key)."""
    return isinstance(item.expr, ast.Star) and item.alias is None


def _is_undefined_test(node: ast.Node) -> bool:
    return isinstance(node, ast.Call) and node.name == "isundefined" and len(node.args) == 1


def _star_then_fields(fields: list[tuple[str, Compiled]]) -> Compiled:
    """``SELECT *, a AS x, f() AS y``: the chat's shape, without the general loop's
    per-item tests. Same result as ``projection``'s general case (``star`` inline)."""
    only_star = not fields

    def project(env: Env) -> Any:
        v = env.doc
        if type(v) is dict:
            out = v.copy()  # the document is shared by every rule: never changed in place
        elif only_star:
            # SELECT * of a non-object payload passes it through (raw when not JSON)
            return env.raw if v is UNDEFINED else v
        else:
            out = {}
        for key, fn in fields:
            x = fn(env)
            if x is not UNDEFINED:
                out[key] = x
        return out

    return project


def _default_name(expr: ast.Node, index: int) -> str:
    if isinstance(expr, ast.Field):
        return expr.name
    if isinstance(expr, ast.Variable):
        return expr.name[1:]
    if isinstance(expr, ast.Member):
        return expr.name
    if isinstance(expr, ast.Call):
        return expr.name
    return f"_{index + 1}"


_DISPATCH: dict[type, Callable[[Compiler, Any], Compiled]] = {
    ast.Literal: Compiler.literal,
    ast.Star: Compiler.star,
    ast.Field: Compiler.field,
    ast.Variable: Compiler.variable,
    ast.Member: Compiler.member,
    ast.Index: Compiler.index,
    ast.Unary: Compiler.unary,
    ast.Binary: Compiler.binary,
    ast.Call: Compiler.call,
    ast.Case: Compiler.case,
    ast.ObjectLiteral: Compiler.object_literal,
    ast.ArrayLiteral: Compiler.array_literal,
    ast.Select: Compiler.nested,
}

__all__ = ["Compiler", "Env", "Decimal"]
