"""Every action type the emulator runs, by the name AWS gives it in a TopicRulePayload.

Loaders, the dry run and the engine know action types only through this table: a new
type is a module beside this one (see base.py) and one line here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from emulator.actions.base import Action, field_value
from emulator.actions.dynamodb import DynamoDBAction
from emulator.actions.dynamodbv2 import DynamoDBv2Action
from emulator.actions.kinesis import KinesisAction
from emulator.actions.lambda_ import LambdaAction
from emulator.actions.republish import RepublishAction
from emulator.sql.templates import Template, compile_template

Json = Any
ActionType = type[Action[Any]]

_TYPES: tuple[ActionType, ...] = (  # each checked against the Action protocol
    RepublishAction,
    DynamoDBv2Action,
    DynamoDBAction,
    KinesisAction,
    LambdaAction,
)

ACTION_TYPES: Mapping[str, ActionType] = {action.type_name: action for action in _TYPES}

# AWS::IoT::TopicRule spells the types in PascalCase: Republish, DynamoDBv2, Lambda, ...
BY_CLOUDFORMATION_NAME: Mapping[str, ActionType] = {
    action.cloudformation_name: action for action in ACTION_TYPES.values()
}


def compile_action(type_name: str, params: Mapping[str, Json], sql_version: str) -> Action[Any]:
    """One action compiled outside a loader (which reports each bad field where it is);
    KeyError for an unknown type, RuleSyntaxError or ValueError for a bad field."""
    action = ACTION_TYPES[type_name]
    templates: dict[str, Template] = {}
    for path in action.template_fields:
        value = field_value(params, path)
        if isinstance(value, str):
            templates[path] = compile_template(value, sql_version)
    return action.compile(params, templates)
