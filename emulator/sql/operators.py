"""AWS IoT SQL operators with the type rules of iot-sql-operators.md. Pure functions.

Every row of the page's operator tables is a case in tests/unit/sql_cases/docs_operators.yaml.
Where a table says an operand is "converted", the conversion is the one of
iot-sql-data-types.md ("To decimal", "To string"): only strings matching its regex are numbers,
and Null or Undefined made into a String is Undefined.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from decimal import Decimal, DivisionByZero, InvalidOperation
from typing import Any

from emulator.sql.values import (
    DECIMAL_CONTEXT,
    UNDEFINED,
    equal,
    to_boolean,
    to_decimal,
    to_string,
)


def op_and(a: Any, b: Any) -> Any:
    if type(a) is bool and type(b) is bool:
        return a and b
    # "true"/"false" Strings convert; anything else (Undefined too) makes the result
    # Undefined: no short-circuit, the table has no row where one operand decides.
    x, y = to_boolean(a), to_boolean(b)
    if x is None or y is None:
        return UNDEFINED
    return x and y


def op_or(a: Any, b: Any) -> Any:
    if type(a) is bool and type(b) is bool:
        return a or b
    x, y = to_boolean(a), to_boolean(b)
    if x is None or y is None:
        return UNDEFINED
    return x or y


def op_not(a: Any) -> Any:
    x = to_boolean(a)
    return UNDEFINED if x is None else not x


def op_eq(a: Any, b: Any) -> Any:
    if a is UNDEFINED or b is UNDEFINED:
        return UNDEFINED
    if a is None and b is None:
        return True  # no Null row in the = table; the <> table's says Null <> Null is false
    return equal(a, b)


def op_ne(a: Any, b: Any) -> Any:
    if a is UNDEFINED or b is UNDEFINED:
        return UNDEFINED
    if a is None and b is None:
        return False
    return not equal(a, b)


def _compare_converted(a: Any, b: Any, test: Callable[[Any, Any], bool]) -> Any:
    """The String/Int/Decimal row: both sides converted to Decimal, else Undefined."""
    x, y = to_decimal(a), to_decimal(b)
    if x is None or y is None:
        return UNDEFINED
    return test(x, y)


# Each comparison tests Int/Decimal operands inline (the usual WHERE), the rest converted.
def op_lt(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if (ta is int or ta is Decimal) and (tb is int or tb is Decimal):
        return a < b
    return _compare_converted(a, b, operator.lt)


def op_le(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if (ta is int or ta is Decimal) and (tb is int or tb is Decimal):
        return a <= b
    return _compare_converted(a, b, operator.le)


def op_gt(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if (ta is int or ta is Decimal) and (tb is int or tb is Decimal):
        return a > b
    return _compare_converted(a, b, operator.gt)


def op_ge(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if (ta is int or ta is Decimal) and (tb is int or tb is Decimal):
        return a >= b
    return _compare_converted(a, b, operator.ge)


def op_add(a: Any, b: Any, sql_version: str = "2016-03-23") -> Any:
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        return a + b
    # A String on either side concatenates; iot-sql-data-types.md, "To string": Null and
    # Undefined convert to Undefined.
    if ta is str:
        if tb is str:
            return a + b
        if b is UNDEFINED or b is None:
            return UNDEFINED
        return a + to_string(b, sql_version)
    if tb is str:
        if a is UNDEFINED or a is None:
            return UNDEFINED
        return to_string(a, sql_version) + b
    if (ta is int or ta is Decimal) and (tb is int or tb is Decimal):
        return DECIMAL_CONTEXT.add(Decimal(a), Decimal(b))
    return UNDEFINED


def _arith(
    a: Any, b: Any, int_op: Callable[[int, int], Any], dec_op: Callable[[Decimal, Decimal], Any]
) -> Any:
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        return int_op(a, b)
    # Booleans are not numbers (to_decimal refuses them); numeric Strings are Decimals
    x, y = to_decimal(a), to_decimal(b)
    if x is None or y is None:
        return UNDEFINED
    try:
        return dec_op(x, y)
    except (DivisionByZero, InvalidOperation, ZeroDivisionError):
        return UNDEFINED


def _int_div(a: int, b: int) -> Any:
    if b == 0:
        return UNDEFINED
    q = abs(a) // abs(b)  # Java-style truncation toward zero
    return q if (a >= 0) == (b >= 0) else -q


def _int_mod(a: int, b: int) -> Any:
    if b == 0:
        return UNDEFINED
    r = abs(a) % abs(b)
    return r if a >= 0 else -r


def op_sub(a: Any, b: Any) -> Any:
    if type(a) is int and type(b) is int:
        return a - b
    return _arith(a, b, operator.sub, DECIMAL_CONTEXT.subtract)


def op_mul(a: Any, b: Any) -> Any:
    if type(a) is int and type(b) is int:
        return a * b
    return _arith(a, b, operator.mul, DECIMAL_CONTEXT.multiply)


def op_div(a: Any, b: Any) -> Any:
    return _arith(a, b, _int_div, DECIMAL_CONTEXT.divide)


def op_mod(a: Any, b: Any) -> Any:
    return _arith(a, b, _int_mod, DECIMAL_CONTEXT.remainder)


def op_neg(a: Any) -> Any:
    t = type(a)
    if t is int or t is Decimal:
        return -a
    d = to_decimal(a)
    return UNDEFINED if d is None else -d


BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "AND": op_and,
    "OR": op_or,
    "=": op_eq,
    "<>": op_ne,
    "<": op_lt,
    "<=": op_le,
    ">": op_gt,
    ">=": op_ge,
    "-": op_sub,
    "*": op_mul,
    "/": op_div,
    "%": op_mod,
}
