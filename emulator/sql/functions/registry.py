"""What a function is to the compiler (name, arity, implementation) and the table each
module of this package fills with its decorators."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from emulator.sql import ast
from emulator.sql.context import Env
from emulator.sql.values import UNDEFINED, to_number, to_string

Impl = Callable[[Env, list[Any]], Any]


@dataclass(frozen=True, slots=True)
class Function:
    name: str
    min_args: int
    max_args: int
    impl: Impl
    external: bool = False  # needs I/O (DynamoDB, Lambda)
    # Zero-argument functions that only read the message and cannot fail: the compiled
    # expression is this function itself (the hot path calls clientid()/timestamp()).
    # Each returns a str, int, bool or None, or Undefined: statement.py relies on it.
    direct: Callable[[Env], Any] | None = None
    # The implementation gets its arguments compiled, unevaluated, and runs them itself:
    # get_or_default() must see an argument fail without the call failing.
    lazy: bool = False
    # Checks the arguments' expressions when the statement compiles; a message is an error.
    check: Callable[[tuple[ast.Node, ...]], str | None] | None = None
    # The first SQL version that has it ("Supported by SQL version ... and later").
    since: str = "2015-10-08"


class FunctionTable:
    """The functions of one module, by lower-case name, filled once as the module loads."""

    __slots__ = ("functions",)

    def __init__(self) -> None:
        self.functions: dict[str, Function] = {}

    def register(
        self,
        name: str,
        min_args: int,
        max_args: int | None = None,
        external: bool = False,
        lazy: bool = False,
        check: Callable[[tuple[ast.Node, ...]], str | None] | None = None,
        since: str = "2015-10-08",
    ) -> Callable[[Impl], Impl]:
        def wrap(fn: Impl) -> Impl:
            self.functions[name.lower()] = Function(
                name,
                min_args,
                min_args if max_args is None else max_args,
                fn,
                external,
                lazy=lazy,
                check=check,
                since=since,
            )
            return fn

        return wrap

    def register_direct(
        self, name: str, since: str = "2015-10-08"
    ) -> Callable[[Callable[[Env], Any]], Callable[[Env], Any]]:
        """A zero-argument function of the message alone (see ``Function.direct``)."""

        def wrap(fn: Callable[[Env], Any]) -> Callable[[Env], Any]:
            self.functions[name.lower()] = Function(
                name, 0, 0, lambda env, args: fn(env), False, fn, since=since
            )
            return fn

        return wrap


def string_arg(v: Any, env: Env) -> str | None:
    """An argument as text, or None for Undefined and null (most string functions then
    return Undefined)."""
    if v is UNDEFINED or v is None:
        return None
    return to_string(v, env.sql_version)


def integer_args(args: list[Any]) -> list[int] | None:
    """Numeric arguments as integers (truncated), or None if one is not a number."""
    out = []
    for v in args:
        n = to_number(v) if type(v) is not bool else None
        if n is None:
            return None
        out.append(int(n))
    return out
