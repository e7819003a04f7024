"""AWS IoT policy evaluation (iot-policies.md, iot-action-resources.md, pub-sub-policy.md).

Pure: documents are compiled once into ``PolicySet``; ``check`` answers the broker's
questions (``Authorizer``) from the client's identity, the action and the bare resource
(client ID, topic or topic filter), which it turns into the ARN a policy names.

Rules followed: explicit Deny beats Allow, no matching Allow is an implicit deny; ``*``
matches any characters and ``?`` one, in actions (case-insensitive) and resources;
MQTT's ``+`` and ``#`` are literal characters in a policy; ``${iot:ClientId}``,
``${aws:SourceIp}`` and the escapes ``${*}``, ``${?}``, ``${$}`` are substituted. A
variable the emulator cannot resolve (thing and certificate variables: there is no
registry here) makes that resource match nothing. ``Condition`` blocks are not evaluated:
statements with one are skipped and reported when the policy is compiled.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from emulator.broker.auth import ClientIdentity, Decision
from emulator.resources import PolicySpec

RESOURCE_TYPES = {
    "iot:connect": "client",
    "iot:publish": "topic",
    "iot:receive": "topic",
    "iot:retainpublish": "topic",
    "iot:subscribe": "topicfilter",
}
_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_ESCAPES = {"*": "*", "?": "?", "$": "$"}
CACHE_SIZE = 65_536


class PolicyError(ValueError):
    """A policy document that cannot be evaluated; the message names policy and statement."""


def _wildcard_regex(pattern: str, ignore_case: bool = False) -> re.Pattern[str]:
    out = []
    for ch in pattern:
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "\0":  # a literal '*' or '?' from ${*} / ${?}: see _Resource
            continue
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


@dataclass(frozen=True, slots=True)
class _Resource:
    """One ``Resource`` entry. Without variables it is compiled once; with them, per client."""

    text: str
    static: re.Pattern[str] | None

    @classmethod
    def of(cls, text: str) -> _Resource:
        return cls(text, None if "${" in text else _wildcard_regex(text))

    def matches(self, arn: str, identity: ClientIdentity) -> bool:
        if self.static is not None:
            return self.static.fullmatch(arn) is not None
        resolved = substitute(self.text, identity)
        if resolved is None:
            return False
        return _literal_aware_regex(resolved).fullmatch(arn) is not None


def substitute(text: str, identity: ClientIdentity) -> str | None:
    """The resource with its policy variables replaced; None if one cannot be resolved.
    Escaped ``*``/``?`` are marked with a NUL prefix so they stay literal."""
    unresolved = False

    def value(m: re.Match[str]) -> str:
        nonlocal unresolved
        name = m.group(1)
        if name in _ESCAPES:
            return "\0" + _ESCAPES[name] if name in "*?" else "$"
        if name == "iot:ClientId":
            return _protect(identity.client_id)
        if name == "aws:SourceIp":
            return _protect(identity.source_ip)
        unresolved = True
        return ""

    out = _VARIABLE.sub(value, text)
    return None if unresolved else out


def _protect(value: str) -> str:
    """A substituted value is literal text: its own '*' or '?' must not act as wildcards."""
    return value.replace("*", "\0*").replace("?", "\0?")


def _literal_aware_regex(text: str) -> re.Pattern[str]:
    out = []
    literal_next = False
    for ch in text:
        if ch == "\0":
            literal_next = True
            continue
        if literal_next:
            out.append(re.escape(ch))
            literal_next = False
        elif ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


@dataclass(frozen=True, slots=True)
class Statement:
    policy: str
    index: int
    allow: bool
    actions: tuple[re.Pattern[str], ...]
    not_action: bool
    resources: tuple[_Resource, ...]
    not_resource: bool
    source: dict[str, Any]

    def applies(self, action: str, arn: str, identity: ClientIdentity) -> bool:
        action_hit = any(p.fullmatch(action) for p in self.actions)
        if action_hit == self.not_action:
            return False
        resource_hit = any(r.matches(arn, identity) for r in self.resources)
        return resource_hit != self.not_resource

    @property
    def label(self) -> str:
        return f"policy {self.policy} statement {self.index}"


def _strings(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise PolicyError(f"{where}: expected a string or a list of strings, got {value!r}")


def compile_statements(spec: PolicySpec) -> tuple[list[Statement], list[str]]:
    """The policy's statements, and warnings about what is not evaluated."""
    document = spec.document
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError as exc:
            raise PolicyError(f"policy {spec.name}: the document is not JSON: {exc}") from exc
    if not isinstance(document, dict) or "Statement" not in document:
        raise PolicyError(f"policy {spec.name}: a policy document needs a Statement")
    raw = document["Statement"]
    items = [raw] if isinstance(raw, dict) else raw
    if not isinstance(items, list):
        raise PolicyError(f"policy {spec.name}: Statement must be an object or a list")
    statements: list[Statement] = []
    warnings: list[str] = []
    for index, item in enumerate(items):
        where = f"policy {spec.name} statement {index}"
        if not isinstance(item, dict):
            raise PolicyError(f"{where}: a statement must be an object")
        effect = item.get("Effect")
        if effect not in ("Allow", "Deny"):
            raise PolicyError(f"{where}: Effect must be Allow or Deny, got {effect!r}")
        if ("Action" in item) == ("NotAction" in item):
            raise PolicyError(f"{where}: needs exactly one of Action and NotAction")
        if ("Resource" in item) == ("NotResource" in item):
            raise PolicyError(f"{where}: needs exactly one of Resource and NotResource")
        if "Condition" in item:
            warnings.append(f"{where}: Condition is not evaluated here; the statement is skipped")
            continue
        not_action = "NotAction" in item
        not_resource = "NotResource" in item
        actions = _strings(item["NotAction" if not_action else "Action"], where)
        resources = _strings(item["NotResource" if not_resource else "Resource"], where)
        statements.append(
            Statement(
                spec.name,
                index,
                effect == "Allow",
                tuple(_wildcard_regex(a, ignore_case=True) for a in actions),
                not_action,
                tuple(_Resource.of(r) for r in resources),
                not_resource,
                item,
            )
        )
    return statements, warnings


class PolicySet:
    """Every policy that applies to the broker's clients; implements ``Authorizer``."""

    def __init__(
        self,
        policies: Sequence[PolicySpec],
        region: str = "us-east-1",
        account_id: str = "123456789012",
    ) -> None:
        self.region = region
        self.account_id = account_id
        self.names = [p.name for p in policies]
        self.statements: list[Statement] = []
        self.warnings: list[str] = []
        for spec in policies:
            statements, warnings = compile_statements(spec)
            self.statements.extend(statements)
            self.warnings.extend(warnings)
        self._cache: dict[tuple[str, str, str, str], Decision] = {}

    def arn(self, action: str, resource: str) -> str:
        kind = RESOURCE_TYPES.get(action.lower())
        if kind is None:
            raise PolicyError(f"unsupported action {action!r} (use {', '.join(RESOURCE_TYPES)})")
        return f"arn:aws:iot:{self.region}:{self.account_id}:{kind}/{resource}"

    def check(self, identity: ClientIdentity, action: str, resource: str) -> Decision:
        key = (identity.client_id, identity.source_ip, action, resource)
        decision = self._cache.get(key)
        if decision is None:
            decision = self.explain(identity, action, resource)[0]
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = decision
        return decision

    def explain(
        self, identity: ClientIdentity, action: str, resource: str
    ) -> tuple[Decision, Statement | None]:
        """The decision and the statement that made it (None for an implicit deny)."""
        arn = self.arn(action, resource)
        allowed_by: Statement | None = None
        for statement in self.statements:
            if not statement.applies(action, arn, identity):
                continue
            if not statement.allow:
                return Decision(False, f"denied by {statement.label} (explicit Deny)"), statement
            if allowed_by is None:
                allowed_by = statement
        if allowed_by is not None:
            return Decision(True, f"allowed by {allowed_by.label}"), allowed_by
        return Decision(False, f"no statement allows {action} on {arn} (implicit deny)"), None
