"""Every function of iot-sql-functions.md, in one registry: name -> (arity, implementation).

Implementations take the evaluation environment and the evaluated arguments and return a
value (UNDEFINED when the documented table says so). Pure: the few that need a source of
their own (``newuuid()``, ``traceid()``, ``rand()``, the external calls) take it from the
message context, which the caller supplies (see ``emulator.sql.context``).
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

from emulator.sql.context import Env
from emulator.sql.errors import RuleEvaluationError
from emulator.sql.values import (
    DECIMAL_CONTEXT,
    UNDEFINED,
    to_decimal,
    to_json,
    to_number,
    to_string,
    type_name,
)

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
    direct: Callable[[Env], Any] | None = None


REGISTRY: dict[str, Function] = {}


def register(
    name: str, min_args: int, max_args: int | None = None, external: bool = False
) -> Callable[[Impl], Impl]:
    def wrap(fn: Impl) -> Impl:
        REGISTRY[name.lower()] = Function(
            name, min_args, min_args if max_args is None else max_args, fn, external
        )
        return fn

    return wrap


def register_direct(name: str) -> Callable[[Callable[[Env], Any]], Callable[[Env], Any]]:
    """A zero-argument function of the message alone (see ``Function.direct``)."""

    def wrap(fn: Callable[[Env], Any]) -> Callable[[Env], Any]:
        REGISTRY[name.lower()] = Function(name, 0, 0, lambda env, args: fn(env), False, fn)
        return fn

    return wrap


# -- helpers -------------------------------------------------------------------------
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
def _ints(args: list[Any]) -> list[int] | None:
    out = []
    for v in args:
        n = to_number(v) if type(v) is not bool else None
        if n is None:
            return None
        out.append(int(n))
    return out


@register("bitand", 2)
def _bitand(env: Env, args: list[Any]) -> Any:
    ints = _ints(args)
    return UNDEFINED if ints is None else ints[0] & ints[1]


@register("bitor", 2)
def _bitor(env: Env, args: list[Any]) -> Any:
    ints = _ints(args)
    return UNDEFINED if ints is None else ints[0] | ints[1]


@register("bitxor", 2)
def _bitxor(env: Env, args: list[Any]) -> Any:
    ints = _ints(args)
    return UNDEFINED if ints is None else ints[0] ^ ints[1]


@register("bitnot", 1)
def _bitnot(env: Env, args: list[Any]) -> Any:
    # Two's complement NOT (the page's example '2' assumes 4 bits; see docs/differences.md).
    ints = _ints(args)
    return UNDEFINED if ints is None else ~ints[0]


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


# -- strings -------------------------------------------------------------------------
def _str(v: Any, env: Env) -> str | None:
    if v is UNDEFINED or v is None:
        return None
    return to_string(v, env.sql_version)


@register("concat", 1, 255)
def _concat(env: Env, args: list[Any]) -> Any:
    if any(a is UNDEFINED for a in args):
        return UNDEFINED
    if all(type(a) is list for a in args) or (type(args[0]) is list):
        out: list[Any] = []
        for a in args:
            if type(a) is list:
                out.extend(a)
            else:
                out.append(a)
        return out
    return "".join(to_string(a, env.sql_version) for a in args)


@register("length", 1)
def _length(env: Env, args: list[Any]) -> Any:
    v = args[0]
    if type(v) in (list, dict):
        return len(v)
    s = _str(v, env)
    return UNDEFINED if s is None else len(s)


@register("numbytes", 1)
def _numbytes(env: Env, args: list[Any]) -> Any:
    s = _str(args[0], env)
    return UNDEFINED if s is None else len(s.encode("utf-8"))


@register("lower", 1)
def _lower(env: Env, args: list[Any]) -> Any:
    s = _str(args[0], env)
    return UNDEFINED if s is None else s.lower()


@register("upper", 1)
def _upper(env: Env, args: list[Any]) -> Any:
    s = _str(args[0], env)
    return UNDEFINED if s is None else s.upper()


@register("trim", 1)
def _trim(env: Env, args: list[Any]) -> Any:
    s = _str(args[0], env)
    return UNDEFINED if s is None else s.strip()


@register("ltrim", 1)
def _ltrim(env: Env, args: list[Any]) -> Any:
    s = _str(args[0], env)
    return UNDEFINED if s is None else s.lstrip()


@register("rtrim", 1)
def _rtrim(env: Env, args: list[Any]) -> Any:
    s = _str(args[0], env)
    return UNDEFINED if s is None else s.rstrip()


def _pad(left: bool) -> Impl:
    def impl(env: Env, args: list[Any]) -> Any:
        s = _str(args[0], env)
        n = to_number(args[1]) if type(args[1]) is not bool else None
        if s is None or n is None:
            return UNDEFINED
        pad = " " * max(int(n), 0)
        return pad + s if left else s + pad

    return impl


register("lpad", 2)(_pad(True))
register("rpad", 2)(_pad(False))


@register("startswith", 2)
def _startswith(env: Env, args: list[Any]) -> Any:
    a, b = _str(args[0], env), _str(args[1], env)
    return UNDEFINED if a is None or b is None else a.startswith(b)


@register("endswith", 2)
def _endswith(env: Env, args: list[Any]) -> Any:
    a, b = _str(args[0], env), _str(args[1], env)
    return UNDEFINED if a is None or b is None else a.endswith(b)


@register("indexof", 2)
def _indexof(env: Env, args: list[Any]) -> Any:
    a, b = _str(args[0], env), _str(args[1], env)
    return UNDEFINED if a is None or b is None else a.find(b)


@register("replace", 3)
def _replace(env: Env, args: list[Any]) -> Any:
    a, b, c = (_str(x, env) for x in args)
    if a is None or b is None or c is None:
        return UNDEFINED
    return a.replace(b, c)


@register("substring", 2, 3)
def _substring(env: Env, args: list[Any]) -> Any:
    s = _str(args[0], env)
    nums = _ints(args[1:])
    if s is None or nums is None:
        return UNDEFINED
    start = max(0, min(nums[0], len(s)))
    end = len(s) if len(nums) == 1 else max(start, min(nums[1], len(s)))
    return s[start:end]


@register("chr", 1)
def _chr(env: Env, args: list[Any]) -> Any:
    n = _ints(args)
    if n is None:
        return UNDEFINED
    try:
        return chr(n[0])
    except (ValueError, OverflowError):
        return UNDEFINED


def _java_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@register("regexp_matches", 2)
def _regexp_matches(env: Env, args: list[Any]) -> Any:
    s, p = _str(args[0], env), _str(args[1], env)
    if s is None or p is None:
        return UNDEFINED
    try:
        return _java_regex(p).search(s) is not None
    except re.error as exc:
        raise RuleEvaluationError(f"regexp_matches: invalid pattern {p!r}: {exc}") from exc


@register("regexp_replace", 3)
def _regexp_replace(env: Env, args: list[Any]) -> Any:
    s, p, r = (_str(x, env) for x in args)
    if s is None or p is None or r is None:
        return UNDEFINED
    try:
        return _java_regex(p).sub(re.sub(r"\$(\d)", r"\\\1", r), s)
    except re.error as exc:
        raise RuleEvaluationError(f"regexp_replace: invalid pattern {p!r}: {exc}") from exc


@register("regexp_substr", 2)
def _regexp_substr(env: Env, args: list[Any]) -> Any:
    s, p = _str(args[0], env), _str(args[1], env)
    if s is None or p is None:
        return UNDEFINED
    try:
        m = _java_regex(p).search(s)
    except re.error as exc:
        raise RuleEvaluationError(f"regexp_substr: invalid pattern {p!r}: {exc}") from exc
    return "" if m is None else m.group(0)


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
            s = _str(args[0], env)
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


# -- message context -----------------------------------------------------------------
@register("topic", 0, 1)
def _topic(env: Env, args: list[Any]) -> Any:
    topic = env.msg.topic
    if not args:
        return topic
    n = to_number(args[0])
    if n is None:
        return UNDEFINED
    levels = topic.split("/")
    i = int(n)
    return levels[i - 1] if 1 <= i <= len(levels) else UNDEFINED


@register_direct("clientid")
def _clientid(env: Env) -> Any:
    client_id = env.msg.client_id
    return client_id if client_id is not None else UNDEFINED


@register_direct("principal")
def _principal(env: Env) -> Any:
    principal = env.msg.principal
    return principal if principal is not None else UNDEFINED


@register_direct("accountid")
def _accountid(env: Env) -> Any:
    return env.msg.account_id


@register_direct("timestamp")
def _timestamp(env: Env) -> Any:
    return env.msg.timestamp_ms


@register("newuuid", 0)
def _newuuid(env: Env, args: list[Any]) -> Any:
    return _new_uuid(env, "newuuid")


@register("traceid", 0)
def _traceid(env: Env, args: list[Any]) -> Any:
    # A message without a trace ID gets a fresh one, as before the sources were injected.
    return env.msg.trace_id if env.msg.trace_id else _new_uuid(env, "traceid")


def _new_uuid(env: Env, name: str) -> str:
    source = env.msg.newuuid
    if source is None:
        raise RuleEvaluationError(f"{name}(): no UUID source in this message context")
    return source()


@register_direct("sql_version")
def _sql_version(env: Env) -> Any:
    return env.sql_version


# -- time ----------------------------------------------------------------------------
_JODA = [
    ("yyyy", "%Y"),
    ("yy", "%y"),
    ("MMMM", "%B"),
    ("MMM", "%b"),
    ("MM", "%m"),
    ("dd", "%d"),
    ("HH", "%H"),
    ("hh", "%I"),
    ("mm", "%M"),
    ("ss", "%S"),
    ("SSS", "%f"),
    ("a", "%p"),
    ("EEEE", "%A"),
    ("EEE", "%a"),
    ("Z", "%z"),
    ("z", "%Z"),
]


def _joda_to_strftime(pattern: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "'":
            j = pattern.find("'", i + 1)
            j = len(pattern) if j < 0 else j
            out.append(pattern[i + 1 : j].replace("%", "%%"))
            i = j + 1
            continue
        for joda, py in _JODA:
            if pattern.startswith(joda, i):
                out.append(py)
                i += len(joda)
                break
        else:
            out.append(pattern[i].replace("%", "%%"))
            i += 1
    return "".join(out)


@register("parse_time", 2, 3)
def _parse_time(env: Env, args: list[Any]) -> Any:
    pattern, ts = args[0], to_number(args[1])
    if type(pattern) is not str or ts is None:
        return UNDEFINED
    when = datetime.fromtimestamp(int(ts) / 1000, tz=UTC)
    if len(args) == 3 and type(args[2]) is str and args[2] not in ("UTC", "Z"):
        try:
            from zoneinfo import ZoneInfo

            when = when.astimezone(ZoneInfo(args[2]))
        except (ImportError, KeyError, ValueError) as exc:
            raise RuleEvaluationError(f"parse_time: unknown time zone {args[2]!r}") from exc
    text = when.strftime(_joda_to_strftime(pattern))
    if "SSS" in pattern:
        text = text.replace(when.strftime("%f"), f"{when.microsecond // 1000:03d}")
    return text


@register("time_to_epoch", 2)
def _time_to_epoch(env: Env, args: list[Any]) -> Any:
    text, pattern = args
    if type(text) is not str or type(pattern) is not str:
        return UNDEFINED
    try:
        parsed = datetime.strptime(text, _joda_to_strftime(pattern))
    except ValueError:
        return UNDEFINED
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


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


def describe_type(v: Any) -> str:
    return type_name(v)
