"""Numbers: arithmetic and trigonometry, rounding, ``rand()``, bitwise operations."""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

from emulator.sql.context import Env
from emulator.sql.errors import RuleEvaluationError
from emulator.sql.functions.registry import FunctionTable, Impl, integer_args
from emulator.sql.values import DECIMAL_CONTEXT, UNDEFINED, to_decimal, to_number

TABLE = FunctionTable()
register = TABLE.register
register_direct = TABLE.register_direct


# -- math ----------------------------------------------------------------------------
def _num(v: Any) -> Decimal | None:
    if type(v) is bool:
        return None
    return to_decimal(v)


def _math(fn: Callable[[float], float]) -> Impl:
    def impl(env: Env, args: list[Any]) -> Any:
        d = _num(args[0])
        if d is None:
            return UNDEFINED
        try:
            result = fn(float(d))
        except (ValueError, OverflowError):
            return UNDEFINED
        if math.isnan(result) or math.isinf(result):
            return UNDEFINED
        return Decimal(repr(result))

    return impl


for _name, _fn in {
    "acos": math.acos,
    "asin": math.asin,
    "atan": math.atan,
    "cos": math.cos,
    "cosh": math.cosh,
    "exp": math.exp,
    "ln": math.log,
    "log": math.log10,
    "sin": math.sin,
    "sinh": math.sinh,
    "sqrt": math.sqrt,
    "tan": math.tan,
    "tanh": math.tanh,
}.items():
    register(_name, 1)(_math(_fn))


@register("atan2", 2)
def _atan2(env: Env, args: list[Any]) -> Any:
    y, x = _num(args[0]), _num(args[1])
    if y is None or x is None:
        return UNDEFINED
    return Decimal(repr(math.atan2(float(y), float(x))))


@register("power", 2)
def _power(env: Env, args: list[Any]) -> Any:
    a, b = _num(args[0]), _num(args[1])
    if a is None or b is None:
        return UNDEFINED
    try:
        result = math.pow(float(a), float(b))
    except (ValueError, OverflowError):
        return UNDEFINED
    if type(args[0]) is int and type(args[1]) is int and b >= 0:
        return int(args[0]) ** int(args[1])
    return Decimal(repr(result))


@register("abs", 1)
def _abs(env: Env, args: list[Any]) -> Any:
    v = to_number(args[0]) if type(args[0]) is not bool else None
    return UNDEFINED if v is None else abs(v)


def _rounding(mode: str) -> Impl:
    def impl(env: Env, args: list[Any]) -> Any:
        v = args[0]
        if type(v) is int:
            return v
        d = _num(v)
        if d is None:
            return UNDEFINED
        return int(d.to_integral_value(rounding=mode))

    return impl


register("ceil", 1)(_rounding(ROUND_CEILING))
register("floor", 1)(_rounding(ROUND_FLOOR))
# AWS's examples round halves away from zero (round(-1.5) = -2).
register("round", 1)(_rounding(ROUND_HALF_UP))


@register("sign", 1)
def _sign(env: Env, args: list[Any]) -> Any:
    d = _num(args[0])
    if d is None:
        return UNDEFINED
    return 0 if d == 0 else (1 if d > 0 else -1)


@register("trunc", 2)
def _trunc(env: Env, args: list[Any]) -> Any:
    d, places = _num(args[0]), to_number(args[1])
    if d is None or places is None:
        return UNDEFINED
    q = Decimal(1).scaleb(-int(places))
    result = d.quantize(q, rounding=ROUND_DOWN, context=DECIMAL_CONTEXT)
    if type(args[0]) is int or int(places) <= 0:
        return int(result)
    return result


@register("mod", 2)
def _mod(env: Env, args: list[Any]) -> Any:
    a, b = to_number(args[0]), to_number(args[1])
    if a is None or b is None or b == 0 or type(args[0]) is bool:
        return UNDEFINED
    if type(a) is int and type(b) is int:
        return a % b  # mod: result has the divisor's sign (documented examples)
    return Decimal(a) % Decimal(b)


@register("remainder", 2)
def _remainder(env: Env, args: list[Any]) -> Any:
    a, b = to_number(args[0]), to_number(args[1])
    if a is None or b is None or b == 0:
        return UNDEFINED
    if type(a) is int and type(b) is int:
        r = abs(a) % abs(b)
        return r if a >= 0 else -r
    return DECIMAL_CONTEXT.remainder(Decimal(a), Decimal(b))


@register("rand", 0)
def _rand(env: Env, args: list[Any]) -> Any:
    source = env.msg.random
    if source is None:
        raise RuleEvaluationError("rand(): no random source in this message context")
    return Decimal(repr(source()))


# -- bits ----------------------------------------------------------------------------
@register("bitand", 2)
def _bitand(env: Env, args: list[Any]) -> Any:
    ints = integer_args(args)
    return UNDEFINED if ints is None else ints[0] & ints[1]


@register("bitor", 2)
def _bitor(env: Env, args: list[Any]) -> Any:
    ints = integer_args(args)
    return UNDEFINED if ints is None else ints[0] | ints[1]


@register("bitxor", 2)
def _bitxor(env: Env, args: list[Any]) -> Any:
    ints = integer_args(args)
    return UNDEFINED if ints is None else ints[0] ^ ints[1]


@register("bitnot", 1)
def _bitnot(env: Env, args: list[Any]) -> Any:
    # Two's complement NOT (the page's example '2' assumes 4 bits; see docs/differences.md).
    ints = integer_args(args)
    return UNDEFINED if ints is None else ~ints[0]
