"""Rule sources -> ``Project``: native YAML files and CloudFormation/SAM templates.

Every problem becomes a ``Diagnostic`` naming file, line and column; loading goes on past
errors so that all of them are reported at once. A file with a top-level ``Resources`` key
is a template (``cloudformation.py``); any other YAML/JSON file is the native format of
docs/formats.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from emulator.actions.registry import ACTION_TYPES
from emulator.project.cloudformation import load_template
from emulator.project.collect import Collector, plain, source_of, supported_runtime
from emulator.project.model import (
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
from emulator.project.parameters import OverrideError, parse_overrides
from emulator.project.topic_rules import add_rule
from emulator.project.yamlpos import load_yaml

RULE_FILE_SUFFIXES = (".yaml", ".yml", ".json")
OVERRIDES = Path("--parameter-overrides")  # where diagnostics about the overrides point


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
    parameter_overrides: Sequence[str] = (),
) -> Project:
    """Every rule source in ``paths``, with the templates' parameters given by
    ``parameter_overrides`` (``Name=Value`` tokens, as ``sam --parameter-overrides``)."""
    out = Collector()
    try:
        overrides = parse_overrides(parameter_overrides)
    except OverrideError as exc:
        out.diagnostics.append(Diagnostic(OVERRIDES, 0, 0, str(exc)))
        overrides = {}
    declared: set[str] = set()
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
            declared |= load_template(file, data, out, region, account_id, overrides)
        else:
            load_native(file, data, out, region, account_id)
    for name in sorted(set(overrides) - declared):
        out.diagnostics.append(
            Diagnostic(
                OVERRIDES,
                0,
                0,
                f"warning: no template loaded declares parameter '{name}'",
                "warning",
            )
        )
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


def _required(file: Path, item: dict[str, Any], key: str, out: Collector, what: str) -> Any:
    value = item.get(key)
    if value is None or value == "":
        out.error(file, item, f"{what} needs '{key}'")
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
    if name:
        out.declared_functions.add(str(name))
    if not (name and handler and code):
        return
    runtime = item.get("runtime", "python3.11")
    if not supported_runtime(file, out, str(name), str(runtime), runtime, item):
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
            runtime=str(runtime),
            timeout=float(item.get("timeout", 3)),
            memory_mb=int(item.get("memorySize", 128)),
            environment={str(k): str(v) for k, v in dict(env).items()},
            source=source_of(file, item),
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
            source=source_of(file, item),
        )
    )


def _native_stream(file: Path, item: dict[str, Any], out: Collector) -> None:
    name = _required(file, item, "streamName", out, "a stream")
    if name:
        out.streams.append(
            StreamSpec(str(name), int(item.get("shardCount", 1)), source_of(file, item))
        )


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
            source=source_of(file, item),
        )
    )


def _native_policy(file: Path, item: dict[str, Any], out: Collector) -> None:
    name = _required(file, item, "policyName", out, "a policy")
    document = _required(file, item, "document", out, "a policy")
    if name and document:
        out.policies.append(PolicySpec(str(name), plain(document), source_of(file, item)))


# -- cross-file checks -----------------------------------------------------------------
def check_references(out: Collector) -> None:
    """Resources named by actions and event source mappings exist; rule names are unique."""
    functions = {f.name for f in out.functions} | out.declared_functions
    streams = {s.name for s in out.streams}
    known = {"function": functions, "table": {t.name for t in out.tables}, "stream": streams}
    for rule in out.rules:
        for action in (*rule.actions, *([rule.error_action] if rule.error_action else [])):
            src = action.source or rule.source
            assert src is not None
            for ref in ACTION_TYPES[action.type].references(action.params):
                if "${" not in ref.name and ref.name not in known[ref.kind]:
                    message = f"{action.type} action points at unknown {ref.kind} '{ref.name}'"
                    out.diagnostics.append(
                        Diagnostic(src.file, src.line, src.column, f"rule '{rule.name}': {message}")
                    )
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
    check_unique(out)


def check_unique(out: Collector) -> None:
    """Names are unique in one deployment, as in an AWS account and region: a second
    declaration is an error naming both places (e.g. a rule in rules/ and in a template
    loaded together), and is dropped, as AWS refuses to create it (the first one stays)."""
    out.rules = _first_of_each(out, "rule", out.rules)
    out.functions = _first_of_each(out, "function", out.functions)
    out.tables = _first_of_each(out, "table", out.tables)
    out.streams = _first_of_each(out, "stream", out.streams)
    out.policies = _first_of_each(out, "policy", out.policies)


_Named = TypeVar("_Named", RuleSpec, FunctionSpec, TableSpec, StreamSpec, PolicySpec)


def _first_of_each(out: Collector, kind: str, specs: list[_Named]) -> list[_Named]:
    first: dict[str, _Named] = {}
    for spec in specs:
        earlier = first.setdefault(spec.name, spec)
        if earlier is spec:
            continue
        src = spec.source or SourceRef(Path())
        where = f" (first at {earlier.source})" if earlier.source is not None else ""
        out.diagnostics.append(
            Diagnostic(
                src.file, src.line, src.column, f"{kind} '{spec.name}' is defined twice{where}"
            )
        )
    return list(first.values())
