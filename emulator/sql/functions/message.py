"""The message and its time: ``topic()``, ``clientid()``, ``timestamp()``, ``newuuid()``,
``parse_time()``... They read the message context, never a clock or a global source."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from emulator.sql.context import Env
from emulator.sql.errors import RuleEvaluationError
from emulator.sql.functions.registry import FunctionTable
from emulator.sql.values import UNDEFINED, to_number

TABLE = FunctionTable()
register = TABLE.register
register_direct = TABLE.register_direct


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
