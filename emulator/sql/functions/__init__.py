"""Every function of iot-sql-functions.md, in one registry: name -> (arity, implementation).

Implementations take the evaluation environment and the evaluated arguments and return a
value (UNDEFINED when the documented table says so). Pure: the few that need a source of
their own (``newuuid()``, ``traceid()``, ``rand()``, the external calls) take it from the
message context, which the caller supplies (see ``emulator.sql.context``).

A new function goes in the module of its kind, with ``@register(name, min_args,
max_args)``; a new module of functions joins ``REGISTRY`` below.
"""

from __future__ import annotations

from typing import Final

from emulator.sql.functions import aws, conditional, data, message, numbers, strings
from emulator.sql.functions.registry import Function


def _merge(*tables: dict[str, Function]) -> dict[str, Function]:
    merged: dict[str, Function] = {}
    for table in tables:
        for name, function in table.items():
            assert name not in merged, f"SQL function {name} is defined twice"
            merged[name] = function
    return merged


REGISTRY: Final = _merge(
    numbers.TABLE.functions,
    strings.TABLE.functions,
    data.TABLE.functions,
    message.TABLE.functions,
    aws.TABLE.functions,
    conditional.TABLE.functions,
)
