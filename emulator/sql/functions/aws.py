"""Functions that call AWS: ``get_dynamodb()`` and ``aws_lambda()`` through the context's
external calls; those whose service the emulator lacks fail with an error naming them;
and the MQTT 5 property readers, ``get_mqtt_property()`` and ``get_user_properties()``."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any, Final

from emulator.messages import FORMAT_NAMES, PublishProperties
from emulator.sql import ast
from emulator.sql.context import Env
from emulator.sql.errors import RuleEvaluationError
from emulator.sql.functions.registry import FunctionTable, Impl
from emulator.sql.values import UNDEFINED, to_json, to_string

TABLE = FunctionTable()
register = TABLE.register
register_direct = TABLE.register_direct


# -- AWS-only ------------------------------------------------------------------------
def _sort_key_with_value(args: tuple[ast.Node, ...]) -> str | None:
    """A sort key name needs its value: 4 or 6 arguments, never 5."""
    return "takes 4 or 6 arguments, got 5" if len(args) == 5 else None


@register("get_dynamodb", 4, 6, external=True, check=_sort_key_with_value, since="2016-03-23")
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


def _aws_only(name: str, service: str) -> Impl:
    def impl(env: Env, args: list[Any]) -> Any:
        raise RuleEvaluationError(f"{name}() needs {service}, which the emulator does not have")

    return impl


# Arities as iot-sql-functions.md and aws-iot-current.md give them (optional arguments
# included): get_secret's key and get_thing_shadow's shadowName may be left out.
for _name, _min, _max, _since, _service in (
    ("machinelearning_predict", 3, 3, "2015-10-08", "Amazon Machine Learning"),
    ("get_secret", 3, 4, "2015-10-08", "AWS Secrets Manager"),
    ("get_thing_shadow", 2, 3, "2016-03-23", "the Device Shadow service"),
):
    register(_name, _min, _max, since=_since)(_aws_only(_name, _service))


@register("get_registry_data", 3, 3, external=True, since="2016-03-23")
def _get_registry_data(env: Env, args: list[Any]) -> Any:
    """The answer of DescribeThing or ListThingGroupsForThing for a thing of the
    emulator's registry (the iot control plane)."""
    ext = env.msg.external
    if ext is None:
        raise RuleEvaluationError("get_registry_data: no thing registry is connected")
    api, thing, role = (to_json(a) for a in args)
    return _from_json(ext.get_registry_data(str(api), str(thing), str(role)))


# -- MQTT 5 properties ---------------------------------------------------------------
def _properties(env: Env) -> PublishProperties:
    """The message's MQTT 5 properties (aws-iot-current.md, section 4); a message without
    any reads as one with none set."""
    return env.msg.properties or NO_PROPERTIES


NO_PROPERTIES: Final = PublishProperties()


def mqtt_property(props: PublishProperties, name: Any) -> Any:
    """``get_mqtt_property(name)``: an absent payload format indicator reads as
    "UNSPECIFIED_BYTES" (the MQTT 5 default); correlation data is base64; other absent
    properties and unknown names are Undefined."""
    if name == "format_indicator":
        return FORMAT_NAMES[props.payload_format]
    if name == "content_type":
        value: Any = props.content_type
    elif name == "response_topic":
        value = props.response_topic
    elif name == "correlation_data":
        data = props.correlation_data
        value = None if data is None else base64.b64encode(data).decode()
    else:
        return UNDEFINED
    return UNDEFINED if value is None else value


def user_properties(props: PublishProperties, *key: Any) -> Any:
    """``get_user_properties([key])``: with a key, every value of that key in order;
    without, every pair as a one-pair object. No match (or no user properties at all) is
    Undefined, like a missing key (differences.md)."""
    if key:
        values = [v for k, v in props.user_properties if k == key[0]]
        return values or UNDEFINED
    return [{k: v} for k, v in props.user_properties] or UNDEFINED


@register("get_mqtt_property", 1)
def _get_mqtt_property(env: Env, args: list[Any]) -> Any:
    return mqtt_property(_properties(env), args[0])


@register("get_user_properties", 0, 1)
def _get_user_properties(env: Env, args: list[Any]) -> Any:
    return user_properties(_properties(env), *args)
