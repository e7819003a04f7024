"""Functions that choose between their arguments, evaluating them themselves: one argument
failing is their input, not the statement's failure."""

from __future__ import annotations

from typing import Any

from emulator.sql import ast
from emulator.sql.context import Env
from emulator.sql.errors import RuleEvaluationError
from emulator.sql.functions.registry import FunctionTable
from emulator.sql.values import UNDEFINED

TABLE = FunctionTable()

# What the default of get_or_default() may not call (aws-iot-current.md §4): the calls
# that reach another service.
_NOT_IN_DEFAULT = frozenset(
    {
        "get_secret",
        "get_dynamodb",
        "aws_lambda",
        "get_thing_shadow",
        "machinelearning_predict",
        "get_registry_data",
    }
)


def _calls(node: Any) -> list[ast.Call]:
    """Every function call in an expression (``decode(..., 'proto', ...)`` included)."""
    found: list[ast.Call] = []
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, ast.Call):
            found.append(current)
        if isinstance(current, ast.Node):
            stack.extend(getattr(current, slot) for slot in current.__slots__)
        elif isinstance(current, tuple):
            stack.extend(current)
    return found


def _check_default(args: tuple[ast.Node, ...]) -> str | None:
    if len(args) < 2:
        return None
    for call in _calls(args[1]):
        protobuf = call.name == "decode" and any(
            isinstance(a, ast.Literal) and a.value == "proto" for a in call.args
        )
        if call.name in _NOT_IN_DEFAULT or protobuf:
            return f"the default value may not call {call.written or call.name}()"
    return None


@TABLE.register("get_or_default", 1, 2, lazy=True, check=_check_default, since="2016-03-23")
def _get_or_default(env: Env, args: list[Any]) -> Any:
    """The first argument, unless it is Undefined, Null or fails (a get_dynamodb() error,
    say): then the second, even if that is Undefined or Null; with no second, Undefined."""
    try:
        value = args[0](env)
    except RuleEvaluationError:
        value = UNDEFINED
    if value is not UNDEFINED and value is not None:
        return value
    return args[1](env) if len(args) == 2 else UNDEFINED
