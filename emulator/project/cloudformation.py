"""CloudFormation / SAM templates as rule sources: the same file the user deploys.

Intrinsic functions resolve to *local* names: ``!Ref`` of a function, table or stream gives
its name, ``!GetAtt X.Arn`` an ARN built from that name in the configured region and
account, so a rule's ``FunctionArn`` lands on the local function. ``!Ref`` of a parameter
gives its ``--parameter-overrides`` value, else its ``Default`` (parameters.py); one with
neither is an error at its declaration, and so is every resource that needs it, as
CloudFormation refuses such a stack. SAM's ``Globals.Function`` applies to
``AWS::Serverless::Function`` resources, merged as SAM merges it: a function's own
property wins, mappings (``Environment.Variables``) are merged key by key. A resource with
a ``Condition`` that does not hold is not created.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from emulator.actions.lambda_ import LambdaAction
from emulator.actions.registry import BY_CLOUDFORMATION_NAME
from emulator.arns import function_name_of
from emulator.project.collect import Collector, plain, source_of, supported_runtime
from emulator.project.model import (
    EventSourceMappingSpec,
    FunctionSpec,
    KeySchema,
    PolicySpec,
    StreamSpec,
    TableSpec,
)
from emulator.project.parameters import parameter_value
from emulator.project.topic_rules import add_rule
from emulator.project.yamlpos import PosStr, position_of


class Unresolved(Exception):
    pass


class Template:
    def __init__(
        self,
        file: Path,
        data: dict[str, Any],
        region: str,
        account: str,
        overrides: Mapping[str, str] | None = None,
    ) -> None:
        self.file = file
        self.data = data
        self.region = region
        self.account = account
        self.resources: dict[str, Any] = dict(data.get("Resources") or {})
        self.declared_parameters: dict[str, Any] = dict(data.get("Parameters") or {})
        values = {
            name: parameter_value(str(name), decl, overrides or {})
            for name, decl in self.declared_parameters.items()
        }
        self.parameters = {k: v.value for k, v in values.items() if v.problem is None}
        self.parameter_problems = {k: v.problem for k, v in values.items() if v.problem}
        self.pseudo = {
            "AWS::Region": region,
            "AWS::AccountId": account,
            "AWS::Partition": "aws",
            "AWS::StackName": file.stem,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": None,
        }
        self.conditions = dict(data.get("Conditions") or {})

    # -- names -----------------------------------------------------------------------
    def local_name(self, logical_id: str) -> str:
        res = self.resources.get(logical_id) or {}
        props = res.get("Properties") or {}
        kind = res.get("Type", "")
        key = {
            "AWS::Lambda::Function": "FunctionName",
            "AWS::Serverless::Function": "FunctionName",
            "AWS::DynamoDB::Table": "TableName",
            "AWS::Serverless::SimpleTable": "TableName",
            "AWS::Kinesis::Stream": "Name",
            "AWS::IoT::TopicRule": "RuleName",
            "AWS::IoT::Policy": "PolicyName",
        }.get(kind)
        if key and props.get(key):
            return str(self.resolve(props[key]))
        return logical_id

    def arn(self, logical_id: str) -> str:
        kind = (self.resources.get(logical_id) or {}).get("Type", "")
        name = self.local_name(logical_id)
        r, a = self.region, self.account
        if kind in ("AWS::Lambda::Function", "AWS::Serverless::Function"):
            return f"arn:aws:lambda:{r}:{a}:function:{name}"
        if kind in ("AWS::DynamoDB::Table", "AWS::Serverless::SimpleTable"):
            return f"arn:aws:dynamodb:{r}:{a}:table/{name}"
        if kind == "AWS::Kinesis::Stream":
            return f"arn:aws:kinesis:{r}:{a}:stream/{name}"
        if kind == "AWS::IAM::Role":
            return f"arn:aws:iam::{a}:role/{name}"
        if kind == "AWS::IoT::TopicRule":
            return f"arn:aws:iot:{r}:{a}:rule/{name}"
        return f"arn:aws:cloudformation:{r}:{a}:{logical_id}"

    # -- intrinsics ------------------------------------------------------------------
    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(str(arg))
            if key == "Fn::GetAtt":
                parts = arg if isinstance(arg, list) else str(arg).split(".", 1)
                logical, attr = str(parts[0]), str(parts[1]) if len(parts) > 1 else "Arn"
                if attr in ("Arn", "StreamArn"):
                    return self.arn(logical)
                return self.local_name(logical)
            if key == "Fn::Sub":
                return self.sub(arg)
            if key == "Fn::Join":
                sep, items = arg
                return str(sep).join(str(self.resolve(i)) for i in self.resolve(items))
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if key == "Fn::Split":
                sep, text = arg
                return str(self.resolve(text)).split(str(sep))
            if key == "Fn::If":
                cond, yes, no = arg
                return self.resolve(yes if self.condition(str(cond)) else no)
            if key == "Fn::Equals":
                a, b = arg
                return self.resolve(a) == self.resolve(b)
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(x) for x in arg)
            if key == "Fn::Or":
                return any(self.resolve(x) for x in arg)
            if key == "Fn::GetAZs":
                return [f"{self.region}a", f"{self.region}b"]
            if key == "Fn::ImportValue":
                return str(self.resolve(arg))
            if key == "Fn::FindInMap":
                name, k1, k2 = (self.resolve(x) for x in arg)
                return self.data.get("Mappings", {})[name][k1][k2]
            if key == "Condition":
                return self.condition(str(arg))
        return {k: self.resolve(v) for k, v in value.items()}

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            raise Unresolved(f"unknown condition '{name}'")
        return bool(self.resolve(self.conditions[name]))

    def ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.parameter_problems:
            line, column = position_of(self.declared_parameters[name])
            where = f"{self.file}:{line}:{column}"
            raise Unresolved(f"parameter '{name}' has no value (declared at {where})")
        if name in self.resources:
            return self.local_name(name)
        raise Unresolved(f"!Ref to unknown resource or parameter '{name}'")

    def sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, variables = str(arg[0]), {k: self.resolve(v) for k, v in dict(arg[1]).items()}
        else:
            text, variables = str(arg), {}

        def replace(match: re.Match[str]) -> str:
            expr = match.group(1)
            if expr.startswith("!"):
                return "${" + expr[1:] + "}"
            if expr in variables:
                return str(variables[expr])
            if "." in expr and expr.split(".", 1)[0] in self.resources:
                logical, attr = expr.split(".", 1)
                return str(self.resolve({"Fn::GetAtt": [logical, attr]}))
            return str(self.ref(expr))

        return re.sub(r"\$\{([^}]*)\}", replace, text)


def _text(t: Template, value: Any) -> Any:
    """A string property resolved; a string an intrinsic made (``!Sub``, ``!Join``) keeps
    the intrinsic's position, so its errors point there."""
    if not isinstance(value, dict):
        return value
    resolved = t.resolve(value)
    return PosStr.at(resolved, *position_of(value)) if isinstance(resolved, str) else resolved


def _camel(value: Any) -> Any:
    """TopicRulePayload in CloudFormation is PascalCase; the API (and our YAML) is camelCase."""
    if isinstance(value, dict):
        return {(k[:1].lower() + k[1:]): _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


def _camel_action(action: Any) -> Any:
    if not isinstance(action, dict):
        return action
    out = {}
    for kind, params in action.items():
        action_type = BY_CLOUDFORMATION_NAME.get(kind)
        name = action_type.type_name if action_type else kind[:1].lower() + kind[1:]
        out[name] = _camel(params)
    return out


def merge_globals(globals_: Any, props: Any) -> Any:
    """SAM's Globals merge: the resource's value wins; two mappings merge key by key."""
    if isinstance(globals_, dict) and isinstance(props, dict):
        merged = dict(globals_)
        for key, value in props.items():
            merged[key] = merge_globals(globals_.get(key), value) if key in globals_ else value
        return merged
    return props


def load_template(
    file: Path,
    data: dict[str, Any],
    out: Collector,
    region: str,
    account: str,
    overrides: Mapping[str, str] | None = None,
) -> set[str]:
    """Load one template's resources into ``out``; the names of its parameters."""
    t = Template(file, data, region, account, overrides)
    for name, problem in t.parameter_problems.items():
        out.error(file, t.declared_parameters[name], problem)
    globals_fn = dict((data.get("Globals") or {}).get("Function") or {})
    for logical_id, res in t.resources.items():
        if not isinstance(res, dict):
            out.error(file, res, f"resource '{logical_id}' must be a mapping")
            continue
        kind = str(res.get("Type", ""))
        props = res.get("Properties") or {}
        try:
            if "Condition" in res and not t.condition(str(res["Condition"])):
                continue  # CloudFormation creates a resource only when its condition holds
            if kind == "AWS::IoT::TopicRule":
                _rule(t, out, logical_id, res, props)
            elif kind == "AWS::Serverless::Function":
                _function(t, out, logical_id, res, merge_globals(globals_fn, props), kind)
            elif kind == "AWS::Lambda::Function":
                _function(t, out, logical_id, res, dict(props), kind)
            elif kind in ("AWS::DynamoDB::Table", "AWS::Serverless::SimpleTable"):
                _table(t, out, logical_id, res, props, kind)
            elif kind == "AWS::Kinesis::Stream":
                out.streams.append(
                    StreamSpec(
                        t.local_name(logical_id),
                        int(t.resolve(props.get("ShardCount", 1))),
                        source_of(file, res),
                    )
                )
            elif kind == "AWS::Lambda::EventSourceMapping":
                _mapping(t, out, res, props)
            elif kind == "AWS::IoT::Policy":
                out.policies.append(
                    PolicySpec(
                        t.local_name(logical_id),
                        plain(t.resolve(props.get("PolicyDocument"))),
                        source_of(file, res),
                    )
                )
        except Unresolved as exc:
            out.error(file, res, f"resource '{logical_id}': {exc}")
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            out.error(file, res, f"resource '{logical_id}': cannot read {kind}: {exc!r}")
    return {str(name) for name in t.declared_parameters}


def _rule(t: Template, out: Collector, logical_id: str, res: Any, props: dict[str, Any]) -> None:
    payload = props.get("TopicRulePayload")
    if not isinstance(payload, dict):
        out.error(t.file, res, f"rule '{logical_id}' needs TopicRulePayload")
        return
    name = t.local_name(logical_id)
    sql = _text(t, payload.get("Sql"))
    actions = [_camel_action(t.resolve(a)) for a in payload.get("Actions") or []]
    # Keep the positions of the action nodes for diagnostics.
    for raw, resolved in zip(payload.get("Actions") or [], actions, strict=False):
        if isinstance(resolved, dict) and hasattr(raw, "line"):
            resolved_pos = type(raw)(resolved)
            resolved_pos.line, resolved_pos.column = raw.line, raw.column
            resolved_pos.key_positions = {}
            actions[actions.index(resolved)] = resolved_pos
    error_action = payload.get("ErrorAction")
    add_rule(
        t.file,
        out,
        res,
        name,
        sql,
        str(payload.get("AwsIotSqlVersion", "2015-10-08")),
        actions,
        _camel_action(t.resolve(error_action)) if error_action else None,
        bool(t.resolve(payload.get("RuleDisabled", False))),
        str(payload.get("Description", "")),
    )


def _function(
    t: Template, out: Collector, logical_id: str, res: Any, props: dict[str, Any], kind: str
) -> None:
    """The function, if the emulator can run it, and its events either way: a rule that
    invokes a function that could not be loaded fails as for a missing function."""
    name = t.local_name(logical_id)
    runtime = props.get("Runtime", "python3.11")
    if supported_runtime(t.file, out, name, str(t.resolve(runtime)), runtime, res):
        _function_code(t, out, name, res, props, kind, str(t.resolve(runtime)))
    for event_id, event in dict(props.get("Events") or {}).items():
        etype = event.get("Type")
        eprops = event.get("Properties") or {}
        if etype == "Kinesis":
            out.mappings.append(_mapping_spec(t, name, eprops, res))
        elif etype == "IoTRule":
            add_rule(
                t.file,
                out,
                event,
                f"{logical_id}{event_id}",
                _text(t, eprops.get("Sql")),
                str(eprops.get("AwsIotSqlVersion", "2015-10-08")),
                [LambdaAction.invoking(name)],
                None,
                False,
                "",
            )


def _function_code(
    t: Template, out: Collector, name: str, res: Any, props: dict[str, Any], kind: str, runtime: str
) -> None:
    handler = t.resolve(props.get("Handler"))
    code = t.resolve(
        props.get("CodeUri") if kind == "AWS::Serverless::Function" else props.get("Code")
    )
    if isinstance(code, dict):
        code = None  # S3 or ZipFile code has no local folder
    if not handler or not code:
        out.error(t.file, res, f"function '{name}' needs Handler and a local CodeUri folder")
        return
    code_path = (t.file.parent / str(code)).resolve()
    if not code_path.is_dir():
        out.error(t.file, res, f"function '{name}': code folder {code_path} does not exist")
        return
    env = ((t.resolve(props.get("Environment")) or {}).get("Variables")) or {}
    if not isinstance(env, dict):
        out.error(t.file, res, f"function '{name}': Environment.Variables must be a mapping")
        return
    out.functions.append(
        FunctionSpec(
            name=name,
            handler=str(handler),
            code_path=code_path,
            runtime=runtime,
            timeout=float(t.resolve(props.get("Timeout", 3))),
            memory_mb=int(t.resolve(props.get("MemorySize", 128))),
            environment={str(k): _env_text(v) for k, v in env.items() if v is not None},
            source=source_of(t.file, res),
        )
    )


def _env_text(value: Any) -> str:
    """An environment variable's value as Lambda stores it: text (``true``, not ``True``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _stream_name(t: Template, arn: Any) -> str:
    text = str(t.resolve(arn))
    return text.rsplit("/", 1)[-1] if "/" in text else text


def _mapping_spec(
    t: Template, function: str, props: dict[str, Any], node: Any
) -> EventSourceMappingSpec:
    return EventSourceMappingSpec(
        function=function,
        stream=_stream_name(t, props.get("Stream") or props.get("EventSourceArn")),
        batch_size=int(t.resolve(props.get("BatchSize", 100))),
        batching_window_s=float(t.resolve(props.get("MaximumBatchingWindowInSeconds", 0))),
        starting_position=str(t.resolve(props.get("StartingPosition", "LATEST"))),
        maximum_retry_attempts=int(t.resolve(props.get("MaximumRetryAttempts", -1))),
        bisect_batch_on_error=bool(t.resolve(props.get("BisectBatchOnFunctionError", False))),
        enabled=bool(t.resolve(props.get("Enabled", True))),
        source=source_of(t.file, node),
    )


def _mapping(t: Template, out: Collector, res: Any, props: dict[str, Any]) -> None:
    function = function_name_of(str(t.resolve(props.get("FunctionName"))))
    out.mappings.append(_mapping_spec(t, function, props, res))


def _table(
    t: Template, out: Collector, logical_id: str, res: Any, props: dict[str, Any], kind: str
) -> None:
    name = t.local_name(logical_id)
    if kind == "AWS::Serverless::SimpleTable":
        pk = props.get("PrimaryKey") or {"Name": "id", "Type": "String"}
        types = {"String": "S", "Number": "N", "Binary": "B"}
        out.tables.append(
            TableSpec(
                name,
                KeySchema(str(pk["Name"]), types.get(str(pk.get("Type")), "S")),
                None,
                source_of(t.file, res),
            )
        )
        return
    attr_types = {
        str(a["AttributeName"]): str(a["AttributeType"])
        for a in props.get("AttributeDefinitions") or []
    }
    hash_key = range_key = None
    for key in props.get("KeySchema") or []:
        if key.get("KeyType") == "HASH":
            hash_key = str(key["AttributeName"])
        elif key.get("KeyType") == "RANGE":
            range_key = str(key["AttributeName"])
    if hash_key is None:
        out.error(t.file, res, f"table '{name}' has no HASH key")
        return
    ttl = props.get("TimeToLiveSpecification") or {}
    out.tables.append(
        TableSpec(
            name,
            KeySchema(
                hash_key,
                attr_types.get(hash_key, "S"),
                range_key,
                attr_types.get(range_key or "", "S"),
            ),
            str(ttl["AttributeName"]) if ttl.get("Enabled") and ttl.get("AttributeName") else None,
            source_of(t.file, res),
        )
    )
