"""Rule sources -> ``Project``: native YAML files and CloudFormation/SAM templates.

Every problem becomes a ``Diagnostic`` naming file, line and column; loading goes on past
errors so that all of them are reported at once. A file with a top-level ``Resources`` key
is a template (``cloudformation.py``); any other YAML/JSON file is the native format of
docs/formats.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from emulator.project.model import (
    ActionSpec,
    Diagnostic,
    EventSourceMappingSpec,
    FunctionSpec,
    KeySchema,
    PolicySpec,
    Project,
    RuleSpec,
    SourceRef,
    StreamSpec,
    TableSpec,
)
from emulator.project.yamlpos import PosStr, load_yaml, position_of
from emulator.sql.errors import RuleSyntaxError
from emulator.sql.statement import compile_statement
from emulator.sql.templates import compile_template

RULE_FILE_SUFFIXES = (".yaml", ".yml", ".json")
ACTION_TYPES = ("republish", "dynamoDBv2", "dynamoDB", "kinesis", "lambda")
# Action fields that accept substitution templates (per each *-rule-action.md page).
TEMPLATE_FIELDS = {
    "republish": ("topic",),
    "dynamoDBv2": ("putItem.tableName",),
    "dynamoDB": ("tableName", "hashKeyValue", "rangeKeyValue", "hashKeyField", "rangeKeyField"),
    "kinesis": ("streamName", "partitionKey"),
    "lambda": ("functionArn",),
}


@dataclass
class Collector:
    """Accumulates one project's parts and diagnostics while files are read."""

    rules: list[RuleSpec] = field(default_factory=list)
    functions: list[FunctionSpec] = field(default_factory=list)
    tables: list[TableSpec] = field(default_factory=list)
    streams: list[StreamSpec] = field(default_factory=list)
    mappings: list[EventSourceMappingSpec] = field(default_factory=list)
    policies: list[PolicySpec] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def error(
        self, file: Path, where: Any, message: str, default: tuple[int, int] = (1, 1)
    ) -> None:
        line, column = position_of(where, default)
        self.diagnostics.append(Diagnostic(file, line, column, message))

    def project(self) -> Project:
        return Project(
            rules=tuple(self.rules),
            functions=tuple(self.functions),
            tables=tuple(self.tables),
            streams=tuple(self.streams),
            event_source_mappings=tuple(self.mappings),
            policies=tuple(self.policies),
            diagnostics=tuple(self.diagnostics),
            files=tuple(self.files),
        )


def rule_files(paths: tuple[Path, ...] | list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(
                sorted(p for p in path.iterdir() if p.suffix in RULE_FILE_SUFFIXES and p.is_file())
            )
        else:
            files.append(path)
    return files


def load_project(
    paths: tuple[Path, ...] | list[Path],
    region: str = "us-east-1",
    account_id: str = "123456789012",
) -> Project:
    from emulator.project.cloudformation import load_template

    out = Collector()
    for file in rule_files(paths):
        out.files.append(file)
        try:
            text = file.read_text()
        except OSError as exc:
            out.diagnostics.append(Diagnostic(file, 0, 0, f"cannot read: {exc.strerror}"))
            continue
        try:
            data = load_yaml(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            problem = getattr(exc, "problem", None) or str(exc)
            out.diagnostics.append(Diagnostic(file, line, column, f"YAML: {problem}"))
            continue
        if data is None:
            continue
        if not isinstance(data, dict):
            out.error(file, data, "expected a mapping at the top of the file")
            continue
        if "Resources" in data:
            load_template(file, data, out, region, account_id)
        else:
            load_native(file, data, out, region, account_id)
    check_references(out)
    return out.project()


# -- native YAML ---------------------------------------------------------------------
def load_native(
    file: Path, data: dict[str, Any], out: Collector, region: str, account_id: str
) -> None:
    sections = {
        "rules": _native_rule,
        "functions": _native_function,
        "tables": _native_table,
        "streams": _native_stream,
        "eventSourceMappings": _native_mapping,
        "policies": _native_policy,
    }
    for key, value in data.items():
        reader = sections.get(key)
        if reader is None:
            pos = getattr(data, "key_positions", {}).get(key, (1, 1))
            out.diagnostics.append(
                Diagnostic(
                    file,
                    pos[0],
                    pos[1],
                    f"unknown section '{key}' (expected one of: {', '.join(sections)})",
                )
            )
            continue
        if value is None:
            continue
        if not isinstance(value, list):
            out.error(file, value, f"'{key}' must be a list")
            continue
        for item in value:
            if not isinstance(item, dict):
                out.error(file, item, f"each entry of '{key}' must be a mapping")
                continue
            reader(file, item, out)


def _src(file: Path, node: Any) -> SourceRef:
    line, column = position_of(node)
    return SourceRef(file, line, column)


def _required(file: Path, item: dict[str, Any], key: str, out: Collector, what: str) -> Any:
    value = item.get(key)
    if value is None or value == "":
        out.error(file, item, f"{what} needs '{key}'")
    return value


def add_rule(
    file: Path,
    out: Collector,
    node: Any,
    name: str,
    sql: Any,
    version: str,
    actions: Any,
    error_action: Any,
    disabled: bool,
    description: str,
) -> None:
    """Validate and record one rule (shared by the native and template readers)."""
    ok = True
    if not isinstance(sql, str):
        out.error(file, node, f"rule '{name}' needs 'sql'")
        return
    try:
        statement = compile_statement(sql, version)
    except RuleSyntaxError as exc:
        line, column = _sql_position(sql, exc)
        out.diagnostics.append(Diagnostic(file, line, column, f"rule '{name}': {exc.message}"))
        ok = False
        statement = None
    parsed_actions: list[ActionSpec] = []
    for raw in actions or []:
        action = parse_action(file, raw, out, name, version)
        if action is None:
            ok = False
        else:
            parsed_actions.append(action)
    parsed_error = None
    if error_action is not None:
        parsed_error = parse_action(file, error_action, out, name, version)
        if parsed_error is None:
            ok = False
    if not ok or statement is None:
        return
    if not parsed_actions:
        out.error(file, node, f"rule '{name}' has no actions")
    line, column = _sql_position(sql, None)
    out.rules.append(
        RuleSpec(
            name=name,
            sql=sql,
            aws_iot_sql_version=version,
            actions=tuple(parsed_actions),
            error_action=parsed_error,
            rule_disabled=disabled,
            description=description,
            source=_src(file, node),
            sql_source=SourceRef(file, line, column),
        )
    )


def _sql_position(sql: Any, exc: RuleSyntaxError | None) -> tuple[int, int]:
    """Map a position inside the SQL text to the file, through the scalar's start."""
    line = getattr(sql, "text_line", getattr(sql, "line", 1))
    column = getattr(sql, "text_column", getattr(sql, "column", 1))
    if exc is None:
        return line, column
    if exc.line == 1:
        return line, column + exc.column - 1
    if getattr(sql, "text_line", None) is not None and getattr(sql, "text_line", 0) > getattr(
        sql, "line", 0
    ):
        return line + exc.line - 1, column + exc.column - 1  # block scalar: same indent each line
    return line + exc.line - 1, exc.column


def parse_action(
    file: Path, raw: Any, out: Collector, rule: str, version: str
) -> ActionSpec | None:
    if not isinstance(raw, dict) or len(raw) != 1:
        out.error(
            file, raw, f"rule '{rule}': each action is a mapping with exactly one action type"
        )
        return None
    ((kind, params),) = raw.items()
    if kind not in ACTION_TYPES:
        pos = getattr(raw, "key_positions", {}).get(kind) or position_of(raw)
        out.diagnostics.append(
            Diagnostic(
                file,
                pos[0],
                pos[1],
                f"rule '{rule}': unknown action type '{kind}' (supported: {', '.join(ACTION_TYPES)})",
            )
        )
        return None
    if not isinstance(params, dict):
        out.error(file, raw, f"rule '{rule}': action '{kind}' needs a mapping of parameters")
        return None
    ok = True
    for path in TEMPLATE_FIELDS[kind]:
        value = _get_path(params, path)
        if isinstance(value, str):
            try:
                compile_template(value, version)
            except RuleSyntaxError as exc:
                line, column = position_of(value, position_of(params))
                if isinstance(value, PosStr):
                    column = value.text_column + exc.column - 1
                out.diagnostics.append(
                    Diagnostic(file, line, column, f"rule '{rule}': {kind}.{path}: {exc.message}")
                )
                ok = False
    required = {
        "republish": "topic",
        "kinesis": "streamName",
        "lambda": "functionArn",
        "dynamoDB": "tableName",
        "dynamoDBv2": "putItem.tableName",
    }[kind]
    if _get_path(params, required) in (None, ""):
        out.error(file, params, f"rule '{rule}': action '{kind}' needs '{required}'")
        ok = False
    return ActionSpec(kind, _plain(params), _src(file, raw)) if ok else None


def _get_path(d: dict[str, Any], path: str) -> Any:
    value: Any = d
    for key in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _plain(value: Any) -> Any:
    """Drop the position-carrying subclasses (for equality and JSON)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def _native_rule(file: Path, item: dict[str, Any], out: Collector) -> None:
    name = _required(file, item, "ruleName", out, "a rule")
    if not name:
        return
    add_rule(
        file,
        out,
        item,
        str(name),
        item.get("sql"),
        str(item.get("awsIotSqlVersion", "2015-10-08")),
        item.get("actions"),
        item.get("errorAction"),
        bool(item.get("ruleDisabled", False)),
        str(item.get("description", "")),
    )


def _native_function(file: Path, item: dict[str, Any], out: Collector) -> None:
    name = _required(file, item, "functionName", out, "a function")
    handler = _required(file, item, "handler", out, "a function")
    code = _required(file, item, "codeUri", out, "a function")
    if not (name and handler and code):
        return
    code_path = (file.parent / str(code)).resolve()
    if not code_path.is_dir():
        out.error(file, code, f"function '{name}': codeUri {code_path} is not a folder")
        return
    env = item.get("environment") or {}
    out.functions.append(
        FunctionSpec(
            name=str(name),
            handler=str(handler),
            code_path=code_path,
            runtime=str(item.get("runtime", "python3.11")),
            timeout=float(item.get("timeout", 3)),
            memory_mb=int(item.get("memorySize", 128)),
            environment={str(k): str(v) for k, v in dict(env).items()},
            source=_src(file, item),
        )
    )


def _native_table(file: Path, item: dict[str, Any], out: Collector) -> None:
    name = _required(file, item, "tableName", out, "a table")
    key = item.get("keySchema") or {}
    if not name or not isinstance(key, dict) or not key.get("hashKey"):
        out.error(file, item, "a table needs 'tableName' and 'keySchema.hashKey'")
        return
    out.tables.append(
        TableSpec(
            name=str(name),
            key=KeySchema(
                str(key["hashKey"]),
                str(key.get("hashType", "S")),
                str(key["rangeKey"]) if key.get("rangeKey") else None,
                str(key.get("rangeType", "S")),
            ),
            ttl_attribute=str(item["ttlAttribute"]) if item.get("ttlAttribute") else None,
            source=_src(file, item),
        )
    )


def _native_stream(file: Path, item: dict[str, Any], out: Collector) -> None:
    name = _required(file, item, "streamName", out, "a stream")
    if name:
        out.streams.append(StreamSpec(str(name), int(item.get("shardCount", 1)), _src(file, item)))


def _native_mapping(file: Path, item: dict[str, Any], out: Collector) -> None:
    function = _required(file, item, "functionName", out, "an event source mapping")
    stream = _required(file, item, "streamName", out, "an event source mapping")
    if not (function and stream):
        return
    out.mappings.append(
        EventSourceMappingSpec(
            function=str(function),
            stream=str(stream),
            batch_size=int(item.get("batchSize", 100)),
            batching_window_s=float(item.get("maximumBatchingWindowInSeconds", 0)),
            starting_position=str(item.get("startingPosition", "LATEST")),
            maximum_retry_attempts=int(item.get("maximumRetryAttempts", -1)),
            bisect_batch_on_error=bool(item.get("bisectBatchOnFunctionError", False)),
            enabled=bool(item.get("enabled", True)),
            source=_src(file, item),
        )
    )


def _native_policy(file: Path, item: dict[str, Any], out: Collector) -> None:
    name = _required(file, item, "policyName", out, "a policy")
    document = _required(file, item, "document", out, "a policy")
    if name and document:
        out.policies.append(PolicySpec(str(name), _plain(document), _src(file, item)))


# -- cross-file checks -----------------------------------------------------------------
def function_name_of(arn_or_name: str) -> str:
    """``arn:aws:lambda:r:a:function:NAME[:qualifier]`` or a bare name -> NAME."""
    if arn_or_name.startswith("arn:"):
        parts = arn_or_name.split(":")
        return parts[6] if len(parts) > 6 else arn_or_name
    return arn_or_name


def check_references(out: Collector) -> None:
    functions = {f.name for f in out.functions}
    tables = {t.name for t in out.tables}
    streams = {s.name for s in out.streams}
    for rule in out.rules:
        for action in (*rule.actions, *([rule.error_action] if rule.error_action else [])):
            src = action.source or rule.source
            assert src is not None
            where = (src.file, src.line, src.column)

            def problem(
                message: str, where: tuple[Path, int, int] = where, name: str = rule.name
            ) -> None:
                out.diagnostics.append(Diagnostic(*where, f"rule '{name}': {message}"))

            p = action.params
            if action.type == "lambda":
                name = function_name_of(str(p.get("functionArn", "")))
                if "${" not in name and name not in functions:
                    problem(f"lambda action points at unknown function '{name}'")
            elif action.type == "dynamoDBv2":
                table = str(p.get("putItem", {}).get("tableName", ""))
                if "${" not in table and table not in tables:
                    problem(f"dynamoDBv2 action points at unknown table '{table}'")
            elif action.type == "dynamoDB":
                table = str(p.get("tableName", ""))
                if "${" not in table and table not in tables:
                    problem(f"dynamoDB action points at unknown table '{table}'")
            elif action.type == "kinesis":
                stream = str(p.get("streamName", ""))
                if "${" not in stream and stream not in streams:
                    problem(f"kinesis action points at unknown stream '{stream}'")
    for mapping in out.mappings:
        src = mapping.source
        if mapping.function not in functions and src is not None:
            out.diagnostics.append(
                Diagnostic(
                    src.file,
                    src.line,
                    src.column,
                    f"event source mapping: unknown function '{mapping.function}'",
                )
            )
        if mapping.stream not in streams and src is not None:
            out.diagnostics.append(
                Diagnostic(
                    src.file,
                    src.line,
                    src.column,
                    f"event source mapping: unknown stream '{mapping.stream}'",
                )
            )
    seen: set[str] = set()
    for rule in list(out.rules):
        if rule.name in seen and rule.source is not None:
            out.diagnostics.append(
                Diagnostic(
                    rule.source.file,
                    rule.source.line,
                    rule.source.column,
                    f"rule '{rule.name}' is defined twice",
                )
            )
        seen.add(rule.name)


__all__ = ["load_project", "function_name_of", "rule_files", "replace"]
