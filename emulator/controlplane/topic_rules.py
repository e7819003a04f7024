"""Topic rules made through the API (``CreateTopicRule`` and the rest), beside the rules
of the project's files (moto's ``models.py`` for the rule operations).

A payload is compiled by the rule files' own compiler (``project/topic_rules.add_rule``):
the same statement compiler, the same action checks, the same messages. An invalid
statement answers ``SqlParseException`` as AWS does, any other problem
``InvalidRequestException``. The emulator's engine runs ``merged(project)``: the file rules,
then the API rules whose names no file rule takes.

**Name clash: the file wins.** A rule declared in a file is the project's: the API lists it
and reads it, but ``CreateTopicRule`` on its name answers ResourceAlreadyExists and
replacing, deleting, enabling or disabling it answers InvalidRequest (edit the file). An
API rule that a file later declares too (hot reload) is shadowed while the file declares it.

The clock comes in as a callable; no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from emulator.controlplane.exceptions import (
    InvalidRequest,
    ResourceAlreadyExists,
    SqlParse,
    Unauthorized,
)
from emulator.controlplane.models import Page, page_of
from emulator.project.collect import Collector
from emulator.project.model import Project, RuleSpec
from emulator.project.topic_rules import add_rule
from emulator.sql.errors import RuleSyntaxError
from emulator.sql.statement import compile_statement

Json = Any
RULE_NAME = re.compile(r"[a-zA-Z0-9_]{1,128}\Z")
DEFAULT_SQL_VERSION = "2015-10-08"
API_SOURCE = Path("<iot api>")
MAX_RULES_PAGE = 10_000


@dataclass(frozen=True, slots=True)
class ApiRule:
    """A rule made through the API: its payload as given, and its compiled spec."""

    name: str
    payload: Json
    created_ms: int
    spec: RuleSpec


@dataclass(frozen=True, slots=True)
class RuleView:
    """A rule as ``GetTopicRule`` and ``ListTopicRules`` show it, whichever its origin."""

    name: str
    arn: str
    payload: Json
    created_ms: int
    topic_pattern: str | None
    from_file: bool


def compile_rule(name: str, payload: Json) -> RuleSpec:
    """One ``TopicRulePayload`` -> its compiled spec, or the AWS error AWS would answer."""
    if not RULE_NAME.match(name):
        raise InvalidRequest(f"ruleName {name!r} must match [a-zA-Z0-9_]+ (1 to 128 characters)")
    if not isinstance(payload, dict):
        raise InvalidRequest("topicRulePayload is required")
    sql = payload.get("sql")
    if not isinstance(sql, str) or not sql:
        raise InvalidRequest("topicRulePayload.sql is required")
    version = str(payload.get("awsIotSqlVersion") or DEFAULT_SQL_VERSION)
    try:
        compile_statement(sql, version)
    except RuleSyntaxError as exc:
        raise SqlParse(f"{exc.message} (line {exc.line}, column {exc.column})") from exc
    actions = payload.get("actions")
    if actions is None:
        raise InvalidRequest("topicRulePayload.actions is required")
    out = Collector()
    add_rule(
        API_SOURCE,
        out,
        payload,
        name,
        sql,
        version,
        actions,
        payload.get("errorAction"),
        bool(payload.get("ruleDisabled", False)),
        str(payload.get("description") or ""),
    )
    problems = [d.message for d in out.diagnostics if not d.message.endswith("has no actions")]
    if problems or not out.rules:
        raise InvalidRequest("; ".join(problems) or f"rule '{name}' could not be compiled")
    return out.rules[0]


def payload_of(spec: RuleSpec) -> Json:
    """A file rule's ``TopicRulePayload``, as the API shows it."""
    payload: Json = {
        "sql": spec.sql,
        "description": spec.description,
        "actions": [{a.type: a.params} for a in spec.actions],
        "ruleDisabled": spec.rule_disabled,
        "awsIotSqlVersion": spec.aws_iot_sql_version,
    }
    if spec.error_action is not None:
        payload["errorAction"] = {spec.error_action.type: spec.error_action.params}
    return payload


def _topic_pattern(spec: RuleSpec) -> str | None:
    return spec.compiled.statement.topic_filter if spec.compiled is not None else None


class TopicRules:
    """The API's rules; ``file_rules`` gives the project's current ones (for clashes)."""

    def __init__(
        self,
        region: str,
        account_id: str,
        now_ms: Callable[[], int],
        file_rules: Callable[[], Sequence[RuleSpec]],
    ) -> None:
        self.region = region
        self.account_id = account_id
        self.now_ms = now_ms
        self.file_rules = file_rules
        self.rules: dict[str, ApiRule] = {}
        self.on_change: Callable[[], None] | None = None
        self.started_ms = now_ms()

    def arn(self, name: str) -> str:
        return f"arn:aws:iot:{self.region}:{self.account_id}:rule/{name}"

    def _file_rule(self, name: str) -> RuleSpec | None:
        return next((r for r in self.file_rules() if r.name == name), None)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def _own(self, name: str) -> ApiRule:
        """An API rule to change; a file rule or a missing one is refused."""
        spec = self._file_rule(name)
        if spec is not None:
            where = f" in {spec.source.file}" if spec.source is not None else ""
            raise InvalidRequest(
                f"rule {name} is declared{where}: edit the file (the API changes the rules "
                "it created)"
            )
        rule = self.rules.get(name)
        if rule is None:
            raise Unauthorized(f"Rule {name} does not exist")
        return rule

    # -- operations ------------------------------------------------------------------
    def create(self, name: str, payload: Json) -> None:
        if name in self.rules or self._file_rule(name) is not None:
            raise ResourceAlreadyExists(
                f"Rule with name {name} already exists", name, self.arn(name)
            )
        spec = compile_rule(name, payload)
        self.rules[name] = ApiRule(name, dict(payload), self.now_ms(), spec)
        self._changed()

    def replace(self, name: str, payload: Json) -> None:
        rule = self._own(name)
        spec = compile_rule(name, payload)
        self.rules[name] = replace(rule, payload=dict(payload), spec=spec)
        self._changed()

    def delete(self, name: str) -> None:
        self._own(name)
        del self.rules[name]
        self._changed()

    def set_disabled(self, name: str, disabled: bool) -> None:
        rule = self._own(name)
        payload = {**rule.payload, "ruleDisabled": disabled}
        self.rules[name] = replace(
            rule, payload=payload, spec=replace(rule.spec, rule_disabled=disabled)
        )
        self._changed()

    def get(self, name: str) -> RuleView:
        spec = self._file_rule(name)
        if spec is not None:
            return RuleView(
                name, self.arn(name), payload_of(spec), self.started_ms, _topic_pattern(spec), True
            )
        rule = self.rules.get(name)
        if rule is None:
            raise Unauthorized(f"Rule {name} does not exist")
        payload = {
            "awsIotSqlVersion": DEFAULT_SQL_VERSION,
            "ruleDisabled": False,
            "description": "",
            **rule.payload,
        }
        return RuleView(
            name, self.arn(name), payload, rule.created_ms, _topic_pattern(rule.spec), False
        )

    def list_rules(
        self, topic: str | None, max_results: int, token: str | None, disabled: bool | None
    ) -> Page:
        names = {r.name for r in self.file_rules()} | set(self.rules)
        views = [self.get(name) for name in names]
        if topic is not None:
            views = [v for v in views if v.topic_pattern == topic]
        if disabled is not None:
            views = [v for v in views if bool(v.payload.get("ruleDisabled")) == disabled]
        return page_of(views, lambda v: v.name, max_results, token, MAX_RULES_PAGE)

    def merged(self, project: Project) -> Project:
        """The project with the API rules whose names no file rule takes."""
        taken = {r.name for r in project.rules}
        extra = tuple(r.spec for name, r in sorted(self.rules.items()) if name not in taken)
        if not extra:
            return project
        return replace(project, rules=project.rules + extra)

    # -- persistence -------------------------------------------------------------------
    def to_json(self) -> Json:
        return [
            {"name": r.name, "payload": r.payload, "created": r.created_ms}
            for r in self.rules.values()
        ]

    def load_json(self, data: Json) -> list[str]:
        """The saved rules, compiled again; returns a problem line per rule that no longer
        compiles (it is dropped)."""
        self.rules.clear()
        problems = []
        for item in data or []:
            try:
                spec = compile_rule(item["name"], item["payload"])
            except (InvalidRequest, SqlParse) as exc:
                problems.append(f"saved rule {item.get('name')}: {exc.message}")
                continue
            self.rules[item["name"]] = ApiRule(
                item["name"], item["payload"], int(item.get("created", 0)), spec
            )
        return problems
