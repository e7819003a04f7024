"""AWS IoT SQL values and their conversions (reference/aws-iot/iot-sql-data-types.md).

Int is ``int``, Decimal is ``decimal.Decimal`` (34 significant digits), Boolean ``bool``,
String ``str``, Array ``list``, Object ``dict``, Null ``None`` and Undefined the
``UNDEFINED`` singleton: a value, not an exception. Booleans are checked before ints
everywhere because Python's ``bool`` is an ``int``.
"""

from __future__ import annotations

import json
import re
from decimal import Context, Decimal, InvalidOperation
from typing import Any, Final

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - a dependency; the standard parser still works
    _orjson = None  # type: ignore[assignment]

DECIMAL_CONTEXT = Context(prec=34)


class _Undefined:
    __slots__ = ()
    _instance: _Undefined | None = None

    def __new__(cls) -> _Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "Undefined"

    def __bool__(self) -> bool:
        return False


UNDEFINED: Final = _Undefined()

# Only these strings are numbers (iot-sql-data-types.md, Conversions:
# ^-?\d+(\.\d+)?((?i)E-?\d+)?$): no '+5', '.5', '5.', ' 5', 'inf'. ASCII digits only, as
# Java's \d: Python's \d (and Decimal()) would also take '٣'.
_NUMERIC = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE]-?[0-9]+)?\Z")


def is_number(v: Any) -> bool:
    t = type(v)
    return t is int or t is Decimal


def to_decimal(v: Any) -> Decimal | None:
    """The number a value stands for (numbers and numeric strings), else None."""
    t = type(v)
    if t is int:
        return Decimal(v)
    if t is Decimal:
        return v  # type: ignore[no-any-return]
    if t is str and _NUMERIC.match(v):
        try:
            return Decimal(v)
        except InvalidOperation:
            return None
    return None


def to_number(v: Any) -> int | Decimal | None:
    """Like ``to_decimal`` but keeps ints as ints, and integral numeric strings as ints."""
    t = type(v)
    if t is int or t is Decimal:
        return v  # type: ignore[no-any-return]
    if t is str and _NUMERIC.match(v):
        if "." in v or "e" in v or "E" in v:
            return Decimal(v)
        return int(v)
    return None


def to_int(v: Any) -> int | None:
    """A value converted to Int, or None where the conversion gives Undefined (Boolean,
    Array, Object, Null, Undefined, a non-numeric String).

    iot-sql-data-types.md's "To int" table rounds a Decimal to the nearest Int but
    truncates a String's Decimal; its own functions' pages truncate both (``substring(
    "012345", 2.745)`` = "2345"; ``cast``, the bit functions and ``trunc`` "round down"),
    so both truncate toward zero here, as Java's ``BigDecimal.intValue()`` does (see
    docs/differences.md). An Int has at most 34 digits: a larger magnitude is None too
    (``"1E999999999"`` would otherwise make a billion-digit integer).
    """
    t = type(v)
    if t is int:
        return v  # type: ignore[no-any-return]
    if t is str and _NUMERIC.match(v):
        v = Decimal(v)
    elif t is not Decimal:
        return None
    if not v.is_finite() or v.adjusted() >= 34:
        return None
    return int(v)


def to_boolean(v: Any) -> bool | None:
    """iot-sql-data-types.md, "To Boolean": a Boolean, or the Strings "true" and "false" in
    any case; anything else (numbers included: only ``cast`` turns them into Booleans) is
    None, Undefined to the caller."""
    t = type(v)
    if t is bool:
        return v  # type: ignore[no-any-return]
    if t is str:
        low = v.lower()
        if low == "true":
            return True
        if low == "false":
            return False
    return None


def type_name(v: Any) -> str:
    if v is UNDEFINED:
        return "Undefined"
    if v is None:
        return "Null"
    t = type(v)
    if t is bool:
        return "Boolean"
    if t is int:
        return "Int"
    if t is Decimal:
        return "Decimal"
    if t is str:
        return "String"
    if t is list:
        return "Array"
    if t is dict:
        return "Object"
    if t is bytes:
        return "Binary"
    return t.__name__


def format_decimal(d: Decimal, sql_version: str) -> str:
    if d == d.to_integral_value() and sql_version != "2015-10-08" and d.adjusted() < 21:
        return str(int(d))
    text = format(d.normalize(DECIMAL_CONTEXT), "f") if abs(d.adjusted()) < 21 else str(d)
    if "." not in text and "E" not in text and "e" not in text:
        text += ".0"
    return text


def to_string(v: Any, sql_version: str = "2016-03-23") -> str:
    """How a value reads when made into a String (concatenation, cast)."""
    t = type(v)
    if t is str:
        return v  # type: ignore[no-any-return]
    if t is bool:
        return "true" if v else "false"
    if t is int:
        return str(v)
    if t is Decimal:
        return format_decimal(v, sql_version)
    if v is None:
        return "null"
    if t is list or t is dict:
        return _json_text(v, sql_version)
    if t is bytes:
        return v.decode("utf-8", "replace")  # type: ignore[no-any-return]
    return str(v)


def _json_text(v: Any, sql_version: str) -> str:
    """An Array or Object "serialized to JSON" (iot-sql-data-types.md, To string) as
    Jackson writes it: compact, non-ASCII text as it is, and each Decimal with all its
    digits (``to_json`` would make it a double)."""
    t = type(v)
    if t is str:
        return json.dumps(v, ensure_ascii=False)
    if t is list:
        return "[" + ",".join([_json_text(x, sql_version) for x in v if x is not UNDEFINED]) + "]"
    if t is dict:
        items = [
            json.dumps(k, ensure_ascii=False) + ":" + _json_text(x, sql_version)
            for k, x in v.items()
            if x is not UNDEFINED
        ]
        return "{" + ",".join(items) + "}"
    if t is float:  # NaN or Infinity of a payload that had them
        return json.dumps(v)
    return to_string(v, sql_version)  # numbers, Booleans, null


def to_json(v: Any, sql_version: str = "2016-03-23") -> Any:
    """A JSON-serializable copy; Undefined members and items are left out."""
    t = type(v)
    if t is Decimal:
        if v == v.to_integral_value() and sql_version != "2015-10-08" and v.adjusted() < 21:
            return int(v)
        return float(v)
    if t is dict:
        return {k: to_json(x, sql_version) for k, x in v.items() if x is not UNDEFINED}
    if t is list:
        return [to_json(x, sql_version) for x in v if x is not UNDEFINED]
    if v is UNDEFINED:
        return None
    return v


def equal(a: Any, b: Any) -> bool:
    """``=`` on two defined values: no type conversion, Int/Decimal compare as numbers."""
    ta, tb = type(a), type(b)
    if ta is bool or tb is bool:
        return ta is tb and a == b
    if (ta is int or ta is Decimal) and (tb is int or tb is Decimal):
        return bool(a == b)
    if ta is not tb:
        return False
    if ta is list:
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    if ta is dict:
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    return bool(a == b)


# A digit followed by '.', 'e' or 'E' (a Decimal), or 19 digits in a row (an integer that
# may not fit 64 bits): orjson would read either as a binary double. Inside strings these
# only cost the slower, exact path.
_MAYBE_DECIMAL = re.compile(rb"[0-9](?:[.eE]|[0-9]{18})")

# Value types orjson returns exactly as the standard parser does. orjson reads every
# number with a fraction or an exponent, and every integer past 64 bits, as a ``float``;
# so a document that is one of these, or a flat object or array of them, held no number
# the exact parser would read otherwise.
_EXACT = frozenset({str, int, bool, type(None)})


def parse_json(payload: bytes) -> Any:
    """The payload as a document, or UNDEFINED when it is not JSON (binary payloads).

    Fast path: orjson, for payloads without decimal numbers (34-digit Decimals need the
    standard parser with ``parse_float=Decimal``). Anything orjson refuses (NaN, integers
    over 64 bits, lone surrogates, deep nesting) takes the standard path, so results do
    not depend on which parser ran.
    """
    return parse_document(payload)[0]


def parse_document(payload: bytes) -> tuple[Any, bool]:
    """``parse_json``, and whether the document is *flat*: a scalar, or an object or array
    of scalars, none of them a Decimal (a SELECT's copy of it then needs no ``to_json``).

    orjson parses first: a flat document (the usual message) is then known exact from the
    types of its values, one C-level pass, cheaper than scanning the bytes with
    ``_MAYBE_DECIMAL``; only a nested one is scanned.
    """
    if _orjson is not None:
        try:
            doc = _orjson.loads(payload)
        except _orjson.JSONDecodeError:
            pass
        else:
            kind = type(doc)
            if kind is dict:
                if _EXACT.issuperset(map(type, doc.values())):
                    return doc, True
            elif kind is list:
                if _EXACT.issuperset(map(type, doc)):
                    return doc, True
            elif kind in _EXACT:
                return doc, True
            if not _MAYBE_DECIMAL.search(payload):
                return doc, False
    try:
        return json.loads(payload, parse_float=Decimal), False
    except (ValueError, UnicodeDecodeError):
        return UNDEFINED, False
    except RecursionError:
        return UNDEFINED, False
