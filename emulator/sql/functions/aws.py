"""Functions that call AWS: ``get_dynamodb()`` and ``aws_lambda()`` through the context's
external calls; the others need the real service and fail with a clear error."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from emulator.sql.context import Env
from emulator.sql.errors import RuleEvaluationError
from emulator.sql.functions.registry import FunctionTable, Impl
from emulator.sql.values import UNDEFINED, to_json, to_string

TABLE = FunctionTable()
register = TABLE.register
register_direct = TABLE.register_direct


# -- AWS-only ------------------------------------------------------------------------
@register("get_dynamodb", 4, 6, external=True)
def _get_dynamodb(env: Env, args: list[Any]) -> Any:
    ext = env.msg.external
    if ext is None:
        raise RuleEvaluationError("get_dynamodb: no DynamoDB backend is connected")
    table, pk_name, pk_value = (to_json(a) for a in args[:3])
    if len(args) == 6:
        sk_name, sk_value, role = to_json(args[3]), to_json(args[4]), to_json(args[5])
    else:
        sk_name, sk_value, role = None, None, to_json(args[3])
    item = ext.get_dynamodb(table, pk_name, pk_value, sk_name, sk_value, role)
    return UNDEFINED if item is None else _from_json(item)


@register("aws_lambda", 2, external=True)
def _aws_lambda(env: Env, args: list[Any]) -> Any:
    ext = env.msg.external
    if ext is None:
        raise RuleEvaluationError("aws_lambda: no Lambda service is connected")
    return _from_json(ext.aws_lambda(to_string(args[0]), to_json(args[1], env.sql_version)))


def _from_json(v: Any) -> Any:
    if type(v) is float:
        return Decimal(repr(v))
    if type(v) is dict:
        return {k: _from_json(x) for k, x in v.items()}
    if type(v) is list:
        return [_from_json(x) for x in v]
    return v


def _aws_only(name: str) -> Impl:
    def impl(env: Env, args: list[Any]) -> Any:
        raise RuleEvaluationError(f"{name}() needs the real AWS service and is not emulated")

    return impl


for _name, _arity in {
    "machinelearning_predict": (3, 3),
    "get_secret": (2, 4),
    "get_thing_shadow": (3, 3),
    "get_registry_data": (2, 2),
    "get_mqtt_property": (1, 1),
    "get_user_properties": (1, 1),
}.items():
    register(_name, _arity[0], _arity[1])(_aws_only(_name))
