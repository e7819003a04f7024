"""The dry run behind ``rules test``: which rules a message would trigger, their output
and the requests their actions would send. Pure.

It runs the compiled rules the loader made and the actions' own ``render``, which the
engine runs too, so what a dry run shows is what the engine does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from emulator.project.model import RuleSpec
from emulator.sql.context import Env, MessageContext
from emulator.sql.statement import NO_MATCH
from emulator.topics import basic_ingest

Json = Any


def dry_run(rules: Iterable[RuleSpec], ctx: MessageContext) -> list[dict[str, Json]]:
    """Every enabled rule matching the message, its output and rendered actions. A Basic
    Ingest topic (``$aws/rules/<rule>/...``) runs that one rule, whatever its FROM, on the
    topic after the prefix, as the engine does."""
    ingest = basic_ingest(ctx.topic)
    if ingest is not None:
        ctx = replace(ctx, topic=ingest.topic)
    results = []
    for rule in rules:
        compiled = rule.compiled
        if rule.rule_disabled or compiled is None:
            continue
        statement = compiled.statement
        if ingest is not None:
            if rule.name != ingest.rule:
                continue
        elif not statement.matches_topic(ctx.topic):
            continue
        # one Env for the statement and the templates, as in the engine: both see the
        # original message and the statement's SET variables
        env = Env(ctx.document, ctx, rule.aws_iot_sql_version, ctx.payload)
        output = statement.evaluate_env(env)
        if output is NO_MATCH:
            continue
        results.append(
            {
                "rule": rule.name,
                "output": _printable(output),
                "actions": [
                    {
                        "type": action.type_name,
                        **{
                            k: _printable(v)
                            for k, v in action.render(env, output).describe().items()
                        },
                    }
                    for action in compiled.actions
                ],
            }
        )
    return results


def _printable(value: Json) -> Json:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
