"""Numbers: arithmetic and trigonometry, rounding, ``rand()``, bitwise operations.

Each function follows the argument-type table of its section in iot-sql-functions.md:
Int, Decimal and numeric Strings (the Conversions of iot-sql-data-types.md) are numbers;
Boolean, Array, Object, Null and Undefined, and any type a table has no row for, give
Undefined. Functions documented "with double precision" compute with Python floats and
return the double as a Decimal; the others keep the 34-digit Decimal.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_UP, Context, Decimal
from typing import Any

from emulator.sql.context import Env
from emulator.sql.errors import RuleEvaluationError
from emulator.sql.functions.registry import FunctionTable, Impl
from emulator.sql.operators import op_mod
from emulator.sql.values import UNDEFINED, to_decimal, to_int

TABLE = FunctionTable()
register = TABLE.register
register_direct = TABLE.register_direct


def _num(v: Any) -> Decimal | None:
    """A number or numeric String as a Decimal; None for every other type (Boolean too:
    ``to_decimal`` never sees one, as Python's ``bool`` is an ``int``)."""
    if type(v) is bool:
        return None
    return to_decimal(v)


def _double(result: float) -> Any:
    """A double-precision result as AWS returns it: a Decimal of the double's shortest
    text; NaN and infinities ("imaginary results", overflow) are Undefined."""
    if math.isnan(result) or math.isinf(result):
        return UNDEFINED
    return Decimal(repr(result))


# -- double precision ----------------------------------------------------------------
def _math(fn: Callable[[float], float]) -> Impl:
    def impl(env: Env, args: list[Any]) -> Any:
        d = _num(args[0])
        if d is None:
            return UNDEFINED
        try:
            return _double(fn(float(d)))
        except (ValueError, OverflowError):  # acos(2), ln(0), sqrt(-1), exp(1000)
            return UNDEFINED

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


def _math2(fn: Callable[[float, float], float]) -> Impl:
    def impl(env: Env, args: list[Any]) -> Any:
        a, b = _num(args[0]), _num(args[1])
        if a is None or b is None:
            return UNDEFINED
        try:
            return _double(fn(float(a), float(b)))
        except (ValueError, OverflowError, ZeroDivisionError):  # power(0, -1), power(-8, 0.5)
            return UNDEFINED

    return impl


# atan2(y, x): y first, as Java's Math.atan2 (the page's text names the point (x, y), its
# example atan2(1, 0) = pi/2 takes y first).
register("atan2", 2)(_math2(math.atan2))
# power(2, 5) = 32.0: a double even for two Ints.
register("power", 2)(_math2(math.pow))


# -- exact -----------------------------------------------------------------------------
@register("abs", 1)
def _abs(env: Env, args: list[Any]) -> Any:
    v = args[0]
    if type(v) is int:
        return abs(v)
    d = _num(v)  # a Decimal, or a String's Decimal
    return UNDEFINED if d is None else d.copy_abs()  # exact: no context to overflow


def _rounding(mode: str) -> Impl:
    def impl(env: Env, args: list[Any]) -> Any:
        v = args[0]
        if type(v) is int:
            return v
        d = _num(v)
        if d is None or not d.is_finite():
            return UNDEFINED
        r = d.to_integral_value(rounding=mode)
        # An Int has at most 34 digits: a larger whole number stays a (whole) Decimal
        # rather than become an integer of a million digits ('1E999999').
        return int(r) if r.adjusted() < 34 else r

    return impl


register("ceil", 1)(_rounding(ROUND_CEILING))
register("floor", 1)(_rounding(ROUND_FLOOR))
# The page's table says "rounded down"; its text and five examples round to the nearest
# Int, halves away from zero (round(1.5) = 2, round(-1.5) = -2): Java's HALF_UP.
register("round", 1)(_rounding(ROUND_HALF_UP))


@register("sign", 1)
def _sign(env: Env, args: list[Any]) -> Any:
    d = _num(args[0])
    if d is None:
        return UNDEFINED
    return 0 if d == 0 else (1 if d > 0 else -1)


@register("trunc", 2)
def _trunc(env: Env, args: list[Any]) -> Any:
    """Places below 0 count as 0 and above 34 as 34; a non-Int place count is rounded down;
    trailing zeros are stripped. The table has no row for a String place count."""
    value, places_arg = args
    if type(places_arg) is int:
        places = places_arg
    elif type(places_arg) is Decimal and places_arg.is_finite():
        places = int(places_arg)
    else:
        return UNDEFINED
    if type(value) is int:
        return value  # Int, Int: the source value (and an Int has no decimal places)
    d = _num(value)
    if d is None or not d.is_finite():
        return UNDEFINED
    places = min(max(places, 0), 34)
    exponent = d.as_tuple().exponent
    if type(exponent) is int and exponent < -places:
        # Enough precision for every digit kept: quantize must not round.
        digits = max(d.adjusted(), 0) + places + 2
        d = d.quantize(Decimal(1).scaleb(-places), ROUND_DOWN, Context(prec=digits))
    return d.normalize(Context(prec=max(34, len(d.as_tuple().digits))))  # 2.00 -> 2


# mod and remainder: "Equivalent to" each other and to the % operator (their pages): the
# remainder takes the dividend's sign, as Java's % and BigDecimal.remainder.
@register("mod", 2)
def _mod(env: Env, args: list[Any]) -> Any:
    return op_mod(args[0], args[1])


register("remainder", 2)(_mod)


@register("rand", 0)
def _rand(env: Env, args: list[Any]) -> Any:
    source = env.msg.random
    if source is None:
        raise RuleEvaluationError("rand(): no random source in this message context")
    return Decimal(repr(source()))


# -- bits ------------------------------------------------------------------------------
def _bits(op: Callable[[int, int], int]) -> Impl:
    """Int, Decimal and numeric-String arguments are Ints (truncated: "rounded down");
    any other argument makes the result Undefined."""

    def impl(env: Env, args: list[Any]) -> Any:
        a, b = to_int(args[0]), to_int(args[1])
        if a is None or b is None:
            return UNDEFINED
        return op(a, b)

    return impl


register("bitand", 2)(_bits(lambda a, b: a & b))
register("bitor", 2)(_bits(lambda a, b: a | b))
register("bitxor", 2)(_bits(lambda a, b: a ^ b))


@register("bitnot", 1)
def _bitnot(env: Env, args: list[Any]) -> Any:
    # Two's complement NOT, as Java's ~: bitnot(13) = -14. The page's example, 2, is a
    # 4-bit complement (docs/differences.md). Its table's last row, "Other value | Other
    # value", lost a column; the other bit functions give Undefined there, and so does this.
    n = to_int(args[0])
    return UNDEFINED if n is None else ~n
