"""One topic rule as written -> a ``RuleSpec`` with its statement and actions compiled,
once: the engine and the dry run run the compiled form, so what loads is what runs.

Shared by the native and the CloudFormation readers. Every problem is a ``Diagnostic``
at the file position of the SQL or template text that caused it (a block scalar's lines
included), and reading goes on so that all of them are reported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emulator.actions.base import Action, field_value
from emulator.actions.registry import ACTION_TYPES
from emulator.project.collect import Collector, plain, source_of
from emulator.project.model import ActionSpec, CompiledRule, Diagnostic, RuleSpec, SourceRef
from emulator.project.yamlpos import PosStr, position_of, sql_offset
from emulator.sql.errors import RuleSyntaxError
from emulator.sql.statement import compile_statement
from emulator.sql.templates import Template, compile_template


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
    """Validate, compile and record one rule (shared by the native and template readers)."""
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
    parsed_actions: list[tuple[ActionSpec, Action[Any]]] = []
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
            actions=tuple(spec for spec, _ in parsed_actions),
            error_action=parsed_error[0] if parsed_error else None,
            rule_disabled=disabled,
            description=description,
            source=source_of(file, node),
            sql_source=SourceRef(file, line, column),
            compiled=CompiledRule(
                statement,
                tuple(action for _, action in parsed_actions),
                parsed_error[1] if parsed_error else None,
            ),
        )
    )


def _sql_position(sql: Any, exc: RuleSyntaxError | None) -> tuple[int, int]:
    """The file position of the SQL's first character, or of the error's place in it,
    through the scalar's own map (folding, indentation and escapes undone)."""
    if isinstance(sql, PosStr):
        return sql.position_at(0 if exc is None else sql_offset(sql, exc.line, exc.column))
    return position_of(sql, (1, 1))


def parse_action(
    file: Path, raw: Any, out: Collector, rule: str, version: str
) -> tuple[ActionSpec, Action[Any]] | None:
    """One ``{type: params}`` entry: the action as written and compiled, or None (the
    problems are in ``out``)."""
    if not isinstance(raw, dict) or len(raw) != 1:
        out.error(
            file, raw, f"rule '{rule}': each action is a mapping with exactly one action type"
        )
        return None
    ((kind, params),) = raw.items()
    action_type = ACTION_TYPES.get(kind)
    if action_type is None:
        pos = getattr(raw, "key_positions", {}).get(kind) or position_of(raw)
        out.diagnostics.append(
            Diagnostic(
                file,
                pos[0],
                pos[1],
                f"rule '{rule}': unknown action type '{kind}' "
                f"(supported: {', '.join(ACTION_TYPES)})",
            )
        )
        return None
    if not isinstance(params, dict):
        out.error(file, raw, f"rule '{rule}': action '{kind}' needs a mapping of parameters")
        return None
    # Parameters from a template are rebuilt by intrinsics and case changes: no position.
    where = params if position_of(params) != (0, 0) else raw
    ok = True
    templates: dict[str, Template] = {}
    for path in action_type.template_fields:
        value = field_value(params, path)
        if isinstance(value, str):
            try:
                templates[path] = compile_template(str(value), version)
            except RuleSyntaxError as exc:
                if isinstance(value, PosStr):
                    line, column = value.position_at(sql_offset(value, exc.line, exc.column))
                else:
                    line, column = position_of(where)
                out.diagnostics.append(
                    Diagnostic(file, line, column, f"rule '{rule}': {kind}.{path}: {exc.message}")
                )
                ok = False
    required = action_type.required_field
    if field_value(params, required) in (None, ""):
        out.error(file, where, f"rule '{rule}': action '{kind}' needs '{required}'")
        ok = False
    if not ok:
        return None
    written = plain(params)
    try:
        compiled = action_type.compile(written, templates)
    except ValueError as exc:
        out.error(file, where, f"rule '{rule}': {kind}: {exc}")
        return None
    return ActionSpec(kind, written, source_of(file, raw)), compiled
