"""Type tests, encoding and hashing, ``cast``, and reaching into documents."""

from __future__ import annotations

import base64
import hashlib
from decimal import ROUND_DOWN, Decimal
from typing import Any

from emulator.sql.context import Env
from emulator.sql.errors import RuleEvaluationError
from emulator.sql.functions.registry import FunctionTable, Impl, string_arg
from emulator.sql.values import UNDEFINED, to_decimal, to_number, to_string

TABLE = FunctionTable()
register = TABLE.register
register_direct = TABLE.register_direct


# -- predicates ----------------------------------------------------------------------
@register("isundefined", 1)
def _isundefined(env: Env, args: list[Any]) -> Any:
    return args[0] is UNDEFINED


@register("isnull", 1)
def _isnull(env: Env, args: list[Any]) -> Any:
    return args[0] is None


for _name, _types in {
    "isstring": (str,),
    "isboolean": (bool,),
    "isarray": (list,),
    "isobject": (dict,),
}.items():

    def _make(types: tuple[type, ...]) -> Impl:
        return lambda env, args: type(args[0]) in types

    register(_name, 1)(_make(_types))


@register("isnumber", 1)
def _isnumber(env: Env, args: list[Any]) -> Any:
    return type(args[0]) in (int, Decimal)


@register("isempty", 1)
def _isempty(env: Env, args: list[Any]) -> Any:
    v = args[0]
    return type(v) in (str, list, dict) and len(v) == 0


# -- encoding, hashing, casting ------------------------------------------------------
@register("encode", 2)
def _encode(env: Env, args: list[Any]) -> Any:
    value, scheme = args
    if scheme != "base64":
        raise RuleEvaluationError(f"encode: unsupported encoding {scheme!r} (only 'base64')")
    if type(value) is bytes:
        data = value
    elif value is UNDEFINED:
        return UNDEFINED
    else:
        data = to_string(value, env.sql_version).encode()
    return base64.b64encode(data).decode()


@register("decode", 2)
def _decode(env: Env, args: list[Any]) -> Any:
    value, scheme = args
    if scheme != "base64":
        raise RuleEvaluationError(f"decode: unsupported encoding {scheme!r} (only 'base64')")
    if type(value) is not str:
        return UNDEFINED
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        return UNDEFINED
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


for _name in ("md5", "sha1", "sha224", "sha256", "sha384", "sha512"):

    def _hash(algorithm: str) -> Impl:
        def impl(env: Env, args: list[Any]) -> Any:
            s = string_arg(args[0], env)
            return UNDEFINED if s is None else hashlib.new(algorithm, s.encode()).hexdigest()

        return impl

    register(_name, 1)(_hash(_name))


@register("md2", 1)
def _md2(env: Env, args: list[Any]) -> Any:
    raise RuleEvaluationError("md2: not available in this emulator (Python has no MD2)")


@register("cast", 2)
def _cast(env: Env, args: list[Any]) -> Any:
    value, target = args[0], str(args[1]).lower()
    t = type(value)
    if value is UNDEFINED or value is None:
        return UNDEFINED
    if target in ("int", "integer"):
        if t is bool:
            return 1 if value else 0
        d = to_decimal(value) if t is not str else to_decimal(value.strip())
        return UNDEFINED if d is None else int(d.to_integral_value(rounding=ROUND_DOWN))
    if target == "decimal":
        if t is bool:
            return Decimal(1 if value else 0)
        d = to_decimal(value) if t is not str else to_decimal(value.strip())
        return UNDEFINED if d is None else d
    if target == "string":
        return to_string(value, env.sql_version)
    if target in ("boolean", "bool"):
        if t is bool:
            return value
        if t in (int, Decimal):
            return value != 0
        if t is str:
            low = value.strip().lower()
            return True if low == "true" else False if low == "false" else UNDEFINED
        return UNDEFINED
    raise RuleEvaluationError(f"cast: unknown type {args[1]!r}")


# -- structure -----------------------------------------------------------------------
@register("get", 2)
def _get(env: Env, args: list[Any]) -> Any:
    container, key = args
    t = type(container)
    if t is list or t is str:
        n = to_number(key)
        if n is None or type(key) is bool:
            return UNDEFINED
        i = int(n)
        return container[i] if 0 <= i < len(container) else UNDEFINED
    if t is dict:
        return container.get(to_string(key, env.sql_version), UNDEFINED)
    return UNDEFINED


@register("nanvl", 2)
def _nanvl(env: Env, args: list[Any]) -> Any:
    v = args[0]
    if type(v) is Decimal and v.is_nan():
        return args[1]
    return v


@register("transform", 3)
def _transform(env: Env, args: list[Any]) -> Any:
    mode, obj, arr = args
    if type(mode) is not str or type(obj) is not dict or type(arr) is not list:
        return UNDEFINED
    if mode == "enrichArray":
        return [{**item, **obj} if type(item) is dict else item for item in arr]
    if mode == "applyObjectsToArray":
        return [{**obj, **item} if type(item) is dict else item for item in arr]
    raise RuleEvaluationError(f"transform: unknown mode {mode!r}")
