"""Type tests, encoding and hashing, ``cast``, and reaching into documents.

Each function follows its section of iot-sql-functions.md; ``cast`` follows the
conversion tables of that section, the implicit conversions those of
iot-sql-data-types.md (both in ``emulator.sql.values``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from emulator.sql import ast
from emulator.sql.context import Env
from emulator.sql.errors import RuleEvaluationError
from emulator.sql.functions.registry import FunctionTable, Impl, string_arg
from emulator.sql.values import (
    UNDEFINED,
    parse_json,
    to_boolean,
    to_decimal,
    to_int,
)

TABLE = FunctionTable()
register = TABLE.register
register_direct = TABLE.register_direct


# -- predicates ----------------------------------------------------------------------
# The only two type tests AWS IoT SQL has (isNumber, isString, ... are not in its
# reference, and a rule calling them does not compile).
@register("isUndefined", 1, since="2016-03-23")
def _isundefined(env: Env, args: list[Any]) -> Any:
    return args[0] is UNDEFINED


@register("isNull", 1)
def _isnull(env: Env, args: list[Any]) -> Any:
    return args[0] is None


# -- encoding and hashing --------------------------------------------------------------
def _scheme(name: str, scheme: Any) -> None:
    if scheme != "base64":
        raise RuleEvaluationError(f"{name}: unsupported encoding {scheme!r} (only 'base64')")


@register("encode", 2, since="2016-03-23")
def _encode(env: Env, args: list[Any]) -> Any:
    """``encode(*, 'base64')`` encodes the payload's own bytes, JSON or not; any other
    value is made a String first (the standard conversions). ``*`` is known by identity
    with the message's document, so only for an Object or Array: a scalar (``5``, ``"a"``)
    may be the very object a literal is, and a scalar payload is encoded as its String."""
    value, scheme = args
    _scheme("encode", scheme)
    if type(value) is bytes:
        data = value
    elif (type(value) is dict or type(value) is list) and value is env.msg.document:
        data = env.raw
    else:
        text = string_arg(value, env)
        if text is None:
            return UNDEFINED
        data = text.encode()
    return base64.b64encode(data).decode()


def _decode_arity(args: tuple[ast.Node, ...]) -> str | None:
    """``decode(value, 'base64')``, or ``decode(value, 'proto', bucket, descriptor file,
    proto file, message type)`` (binary-payloads.md, Protobuf): 2 or 6 arguments."""
    if len(args) not in (2, 6):
        return f"takes 2 arguments, or 6 for 'proto', got {len(args)}"
    return None


@register("decode", 2, 6, check=_decode_arity, since="2016-03-23")
def _decode(env: Env, args: list[Any]) -> Any:
    """The decoded bytes as a document when they are JSON, else as a String (bytes when
    not UTF-8); Null when the text is not base64. Padding may be left off, as Java's
    decoder allows. Protobuf needs its descriptor set from Amazon S3: not emulated."""
    value, scheme = args[0], args[1]
    if scheme == "proto":
        raise RuleEvaluationError(
            "decode(..., 'proto', ...) reads its descriptor set from Amazon S3, which the "
            "emulator does not have: decode Protobuf in a Lambda function instead"
        )
    if len(args) != 2:
        raise RuleEvaluationError(f"decode: {len(args)} arguments are for 'proto' only")
    _scheme("decode", scheme)
    text = string_arg(value, env)
    if text is None:
        return UNDEFINED
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    doc = parse_json(raw)
    if doc is not UNDEFINED:
        return doc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def _hash(digest: Callable[[bytes], str]) -> Impl:
    def impl(env: Env, args: list[Any]) -> Any:
        v = args[0]
        if type(v) is bytes:  # a binary payload's `*`: its bytes as they are
            return digest(v)
        s = string_arg(v, env)
        return UNDEFINED if s is None else digest(s.encode())

    return impl


def _hashlib(algorithm: str) -> Callable[[bytes], str]:
    return lambda data: hashlib.new(algorithm, data).hexdigest()


for _name in ("md5", "sha1", "sha224", "sha256", "sha384", "sha512"):
    register(_name, 1)(_hash(_hashlib(_name)))


def _md2(data: bytes) -> str:
    # hashlib has no MD2 (OpenSSL dropped it); pycryptodome has. Imported on first use:
    # its cffi loader costs ~60 ms, which every CLI start would pay otherwise.
    from Crypto.Hash import MD2

    return str(MD2.new(data).hexdigest())


register("md2", 1)(_hash(_md2))


# -- cast ------------------------------------------------------------------------------
def _to_decimal(value: Any) -> Any:
    t = type(value)
    if t is bool:
        return Decimal(1 if value else 0)  # true = 1.0, false = 0.0
    d = to_decimal(value)  # Int, Decimal, numeric String
    return UNDEFINED if d is None else d


def _to_double(value: Any) -> Any:
    d = _to_decimal(value)
    if d is UNDEFINED:
        return d
    f = float(d)
    return UNDEFINED if math.isinf(f) else Decimal(repr(f))


def _to_int(value: Any) -> Any:
    if type(value) is bool:
        return 1 if value else 0
    n = to_int(value)  # Decimal and numeric String: rounded down (toward zero)
    return UNDEFINED if n is None else n


def _to_boolean(value: Any) -> Any:
    t = type(value)
    if t is int or t is Decimal:
        return value != 0
    b = to_boolean(value)
    return UNDEFINED if b is None else b


def _to_str(env: Env, value: Any) -> Any:
    # A String is the source value (aws-iot-current.md corrects the archived table, which
    # repeats the Boolean row there).
    s = string_arg(value, env)
    return UNDEFINED if s is None else s


# The keywords after AS (iot-sql-functions.md, cast), by lower-case name. The page lists
# Decimal, Bool and Boolean for 2016-03-23 only, yet tells readers to cast to Decimal in
# 2015-10-08 to keep 10.0 a Decimal: every keyword works in both versions here.
_CASTS: dict[str, Callable[[Env, Any], Any]] = {
    "string": _to_str,
    "nvarchar": _to_str,
    "text": _to_str,
    "ntext": _to_str,
    "varchar": _to_str,
    "int": lambda env, v: _to_int(v),
    "integer": lambda env, v: _to_int(v),
    "double": lambda env, v: _to_double(v),
    "decimal": lambda env, v: _to_decimal(v),
    "bool": lambda env, v: _to_boolean(v),
    "boolean": lambda env, v: _to_boolean(v),
}


_CAST_TYPES = "String, Nvarchar, Text, Ntext, Varchar, Int, Integer, Double, Decimal, Bool, Boolean"


def _known_type(args: tuple[ast.Node, ...]) -> str | None:
    """The type after AS, checked when the rule loads (the parser makes it a literal)."""
    target = args[1] if len(args) == 2 else None
    if isinstance(target, ast.Literal) and str(target.value).lower() not in _CASTS:
        return f"unknown type {target.value!r} ({_CAST_TYPES})"
    return None


@register("cast", 2, check=_known_type)
def _cast(env: Env, args: list[Any]) -> Any:
    value, target = args[0], str(args[1])
    key = target.lower()
    convert = _CASTS.get(key)
    if convert is None:
        raise RuleEvaluationError(f"cast: unknown type {target!r} ({_CAST_TYPES})")
    if value is UNDEFINED or value is None:
        return UNDEFINED
    return convert(env, value)


# -- structure -------------------------------------------------------------------------
@register("get", 2)
def _get(env: Env, args: list[Any]) -> Any:
    """Array and String: the item at a 0-based index converted to Int (``get("abc", 0)`` is
    "a", aws-iot-current.md); Object: the member named by a String key, unconverted."""
    container, key = args
    t = type(container)
    if t is list or t is str:
        i = to_int(key)
        if i is None or not 0 <= i < len(container):
            return UNDEFINED
        return container[i]
    if t is dict and type(key) is str:
        return container.get(key, UNDEFINED)
    return UNDEFINED


@register("nanvl", 2)
def _nanvl(env: Env, args: list[Any]) -> Any:
    """The second argument for Undefined, Null and NaN (a payload's ``NaN`` is read as a
    float), else the first."""
    v = args[0]
    if v is UNDEFINED or v is None:
        return args[1]
    t = type(v)
    if (t is Decimal or t is float) and v != v:
        return args[1]
    return v


@register("transform", 3, since="2016-03-23")
def _transform(env: Env, args: list[Any]) -> Any:
    """``enrichArray`` is the one documented mode; any other gives Undefined. The Object's
    attributes are added to each object of the Array (they win over an element's own);
    elements that are not objects are kept as they are (the page does not say)."""
    mode, obj, arr = args
    if mode != "enrichArray" or type(obj) is not dict or type(arr) is not list:
        return UNDEFINED
    return [{**item, **obj} if type(item) is dict else item for item in arr]
