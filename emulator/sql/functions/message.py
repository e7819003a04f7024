"""The message and its time: ``topic()``, ``clientid()``, ``timestamp()``, ``newuuid()``,
``parse_time()``... They read the message context, never a clock or a global source."""

from __future__ import annotations

from typing import Any

from emulator.sql.context import Env
from emulator.sql.errors import RuleEvaluationError
from emulator.sql.functions.registry import FunctionTable
from emulator.sql.functions.timeformats import format_joda, parse_java
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
    """The MQTT client's ID, or "n/a" for a message that did not come over MQTT (a
    data-plane publish, a republished message, ``rules eval`` without a client): then a
    ``clientId`` field of the payload cannot pass for the sender (iot-sql-functions.md,
    clientid())."""
    client_id = env.msg.client_id
    return "n/a" if client_id is None else client_id


@register_direct("sourceip", since="2016-03-23")
def _sourceip(env: Env) -> Any:
    """The publishing client's IP address, Undefined when the emulator does not know it
    (aws-iot-current.md section 4; republish does not pass the original address on)."""
    source_ip = env.msg.source_ip
    return UNDEFINED if source_ip is None else source_ip


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


@register_direct("newuuid")
def _newuuid(env: Env) -> Any:
    """Direct (no argument list, no guard frame): the chat's republish rule calls it on
    every message; its only failure is a RuleEvaluationError, which needs no guard."""
    return _new_uuid(env, "newuuid")


@register("traceid", 0)
def _traceid(env: Env, args: list[Any]) -> Any:
    """The MQTT message's trace ID, Undefined if the message did not come over MQTT
    (iot-sql-functions.md, traceid()). A message without one gets a UUID on first use,
    kept in its context so every call and every rule on that message sees the same."""
    msg = env.msg
    if msg.trace_id:
        return msg.trace_id
    if msg.client_id is None:
        return UNDEFINED
    msg.trace_id = _new_uuid(env, "traceid")
    return msg.trace_id


def _new_uuid(env: Env, name: str) -> str:
    source = env.msg.newuuid
    if source is None:
        raise RuleEvaluationError(f"{name}(): no UUID source in this message context")
    return source()


@register_direct("sql_version")
def _sql_version(env: Env) -> Any:
    return env.sql_version


# -- time ----------------------------------------------------------------------------
@register("parse_time", 2, 3, since="2016-03-23")
def _parse_time(env: Env, args: list[Any]) -> Any:
    """A time in milliseconds written with a Joda-Time pattern, in UTC or the given Joda
    zone; Undefined for arguments it cannot use (see ``timeformats``)."""
    pattern, ts = args[0], to_number(args[1]) if type(args[1]) is not bool else None
    zone_id = args[2] if len(args) == 3 else "UTC"
    if type(pattern) is not str or ts is None or type(zone_id) is not str:
        return UNDEFINED
    text = format_joda(pattern, int(ts), zone_id)
    return UNDEFINED if text is None else text


@register("time_to_epoch", 2, since="2016-03-23")
def _time_to_epoch(env: Env, args: list[Any]) -> Any:
    """A time written with a JDK 11 pattern, in milliseconds; UTC unless the text names a
    zone or an offset."""
    text, pattern = args
    if type(text) is not str or type(pattern) is not str:
        return UNDEFINED
    ms = parse_java(text, pattern)
    return UNDEFINED if ms is None else ms
