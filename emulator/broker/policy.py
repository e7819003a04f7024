"""AWS IoT policy evaluation: the broker's ``Authorizer``.

Theory of operation
-------------------
``compile_policies`` parses every document once (``iot-policies.md``): each statement
becomes a ``Statement`` holding one case-insensitive regex for its actions and one regex
for all of its resources. Statements are then indexed by the five MQTT actions the broker
asks about, so a check only looks at the statements that name its action.

``PolicySet.check(identity, action, resource)`` turns the bare resource (client ID, topic,
topic filter) into the ARN a policy names (``iot-action-resources.md``)::

    iot:Connect                              arn:aws:iot:<region>:<account>:client/<client id>
    iot:Publish, iot:Receive, RetainPublish  arn:aws:iot:<region>:<account>:topic/<topic>
    iot:Subscribe                            arn:aws:iot:<region>:<account>:topicfilter/<filter>

then applies IAM's rule: an explicit ``Deny`` wins, else any ``Allow``, else the request is
denied (implicit deny).

Matching (``pub-sub-policy.md``, and IAM's "Using wildcards in resource ARNs" it links):
``*`` matches any characters and ``?`` exactly one. MQTT's ``+`` and ``#`` are literal
characters, so ``topicfilter/a/*`` allows a subscription to ``a/#`` and
``topicfilter/some/+/topic`` allows only the filter ``some/+/topic``. Wildcards match within
the colon-separated segments of an ARN; a ``*`` that ends a segment may run past colons.
Actions are compared case-insensitively, ARNs case-sensitively.

Policy variables (``iot-policy-variables.md``, ``basic-policy-variables.md``) are replaced in
resources: ``${iot:ClientId}``, ``${aws:SourceIp}``, ``${iot:Connection.Thing.IsAttached}``
and the escapes ``${*}``, ``${?}``, ``${$}``. For a client that connected with a
certificate, ``IdentityAuthorizer`` evaluates the policies attached to that certificate
with its certificate variables (``${iot:Certificate.Subject.CommonName}``, ...) and thing
variables (``${iot:Connection.Thing.ThingName}``, ``.ThingTypeName``, ``.Attributes[name]``,
``.IsAttached``) from the registry; other clients (no certificate) get the policy files,
where those variables have no value. A substituted value is literal text (a client ID of
``a*`` is not a wildcard). A variable without a value (Cognito's, a thing variable of a
connection that is no attached thing) makes the resource entry containing it match
nothing, as IAM does. As in IAM, variables are substituted only under
``"Version": "2012-10-17"``.

Not evaluated: ``Condition``. A statement with one is skipped and reported.

Cost per call: a statement without variables is matched with its precompiled regex; one
with variables is compiled once per client and kept in a bounded cache. Decisions are cached
per (client, source IP, action, resource) in a bounded LRU, since the broker asks on every
publish and every delivery. Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from emulator.broker.auth import (
    ALLOW,
    Authorizer,
    CertificatePrincipal,
    ClientIdentity,
    Decision,
    PrincipalDirectory,
)
from emulator.project.model import PolicyError as PolicyError
from emulator.project.model import PolicySpec, SourceRef

Json = Any

RESOURCE_TYPES = {
    "iot:connect": "client",
    "iot:publish": "topic",
    "iot:receive": "topic",
    "iot:retainpublish": "topic",
    "iot:subscribe": "topicfilter",
}
"""The MQTT actions the broker checks (lower case) and the ARN resource type of each."""

IOT_ACTIONS = tuple(
    "iot:" + name
    for name in (
        "Connect Publish Receive RetainPublish Subscribe "  # the broker's, as RESOURCE_TYPES
        "GetRetainedMessage ListRetainedMessages DeleteThingShadow GetThingShadow "
        "ListNamedShadowsForThing UpdateThingShadow DescribeJobExecution "
        "GetPendingJobExecutions UpdateJobExecution StartNextPendingJobExecution "
        "AssumeRoleWithCertificate"
    ).split()
)
"""Every action of ``iot-policy-actions.md``: an ``iot:`` action matching none is a typo."""

CACHE_SIZE = 65_536
CLIENT_CACHE_SIZE = 4_096
VERSION_WITH_VARIABLES = "2012-10-17"

_STATEMENT_KEYS = {"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition"}
_DOCUMENT_KEYS = {"Version", "Id", "Statement"}
_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_ESCAPES = {"*", "?", "$"}
# Variables AWS defines that the emulator has no value for, and why (for the warning).
_UNRESOLVABLE = (
    ("iot:connection.thing.", "policy files apply to clients without a certificate"),
    ("iot:thing.", "not an AWS IoT Core policy variable"),
    ("iot:certificate.", "policy files apply to clients without a certificate"),
    ("cognito-identity.amazonaws.com:", "there are no Cognito identities"),
)


# -- patterns ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Variable:
    name: str  # lower case: context key names are case-insensitive in IAM


_Part = str | _Variable  # str: a regex fragment
# (lower-cased variable name, client) -> its value, beyond the basic variables; None: none
Resolver = Callable[[str, ClientIdentity], str | None]


def _variable_value(
    name: str, identity: ClientIdentity, resolve: Resolver | None = None
) -> str | None:
    """The value of a (lower-cased) policy variable for this client; None if it has none."""
    if name == "iot:clientid":
        return identity.client_id
    if name == "aws:sourceip":
        return identity.source_ip
    if resolve is not None:
        return resolve(name, identity)
    if name == "iot:connection.thing.isattached":
        return "false"  # a client without a certificate is no thing
    return None


def certificate_resolver(principal: CertificatePrincipal) -> Resolver:
    """The certificate and thing policy variables of one certificate's connections."""
    variables = principal.variables

    def resolve(name: str, identity: ClientIdentity) -> str | None:
        if name.startswith("iot:certificate."):
            return variables.get(name)
        if not name.startswith("iot:connection.thing."):
            return None
        thing = principal.thing_for(identity.client_id)
        field = name[len("iot:connection.thing.") :]
        if field == "isattached":
            return "true" if thing is not None else "false"
        if thing is None:
            return None
        if field == "thingname":
            return thing.name
        if field == "thingtypename":
            return thing.type_name
        if field.startswith("attributes[") and field.endswith("]"):
            wanted = field[len("attributes[") : -1]
            for key, value in thing.attributes.items():
                if key.lower() == wanted:
                    return value
        return None

    return resolve


_PROBE = ClientIdentity("probe", "probe", "127.0.0.1")  # tells resolvable variables apart


def _glob_parts(text: str, variables: bool) -> tuple[_Part, ...]:
    """A resource pattern as regex fragments and variables.

    ``*`` and ``?`` stay within an ARN segment, except that a ``*`` ending a segment (before
    a ``:`` or at the end) may run past colons: IAM's "Using wildcards in resource ARNs".
    """
    parts: list[_Part] = []
    out: list[str] = []
    pos = 0
    while pos < len(text):
        ch = text[pos]
        if variables and text.startswith("${", pos):
            end = text.find("}", pos)
            if end != -1:
                name = text[pos + 2 : end]
                pos = end + 1
                if name in _ESCAPES:
                    out.append(re.escape(name))
                else:
                    parts.append("".join(out))
                    out = []
                    parts.append(_Variable(name.lower()))
                continue
        if ch == "*":
            ends_segment = pos + 1 == len(text) or text[pos + 1] == ":"
            out.append(".*" if ends_segment else "[^:]*")
        elif ch == "?":
            out.append("[^:]")
        else:
            out.append(re.escape(ch))
        pos += 1
    parts.append("".join(out))
    return tuple(p for p in parts if p != "")


def _resolve(
    parts: tuple[_Part, ...], identity: ClientIdentity, resolve: Resolver | None
) -> str | None:
    """The regex source of one resource for this client; None if a variable has no value."""
    out: list[str] = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
            continue
        value = _variable_value(part.name, identity, resolve)
        if value is None:
            return None
        out.append(re.escape(value))
    return "".join(out)


def _alternation(sources: Sequence[str]) -> re.Pattern[str] | None:
    if not sources:
        return None
    return re.compile("|".join(f"(?:{s})" for s in sources), re.DOTALL)


def _action_regex(pattern: str) -> str:
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)


# -- statements -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, eq=False)
class Statement:
    """One compiled policy statement; ``source`` is the statement as written."""

    policy: str
    index: int
    allow: bool
    not_action: bool
    not_resource: bool
    source: dict[str, Json]
    origin: SourceRef | None
    action_pattern: re.Pattern[str]
    static_pattern: re.Pattern[str] | None  # the resources without variables
    templates: tuple[tuple[_Part, ...], ...]  # the resources with variables

    @property
    def label(self) -> str:
        return f"policy {self.policy} statement {self.index}"

    def names_action(self, action: str) -> bool:
        return (self.action_pattern.fullmatch(action) is not None) != self.not_action

    def pattern_for(
        self, identity: ClientIdentity, resolve: Resolver | None = None
    ) -> re.Pattern[str] | None:
        """All resources as one regex, variables replaced for this client."""
        if not self.templates:
            return self.static_pattern
        resolved = (_resolve(t, identity, resolve) for t in self.templates)
        sources = [s for s in resolved if s is not None]
        if self.static_pattern is not None:
            sources.append(self.static_pattern.pattern)
        return _alternation(sources)


def _strings(item: dict[str, Json], key: str, where: str, errors: list[str]) -> list[str]:
    value = item[key]
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    errors.append(f"{where}: {key} must be a string or a list of strings, got {value!r}")
    return []


def _document(spec: PolicySpec, where: str, errors: list[str]) -> dict[str, Json] | None:
    document = spec.document
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError as exc:
            errors.append(f"{where}: the document is not JSON: {exc}")
            return None
    if not isinstance(document, dict) or "Statement" not in document:
        errors.append(f"{where}: a policy document needs a Statement")
        return None
    return document


class _Compiler:
    """Turns documents into statements, collecting every error and warning."""

    def __init__(self, region: str, account_id: str) -> None:
        self.region = region
        self.account_id = account_id
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def policy(self, spec: PolicySpec) -> list[Statement]:
        where = f"{spec.source}: policy {spec.name}" if spec.source else f"policy {spec.name}"
        document = _document(spec, where, self.errors)
        if document is None:
            return []
        for key in sorted(set(document) - _DOCUMENT_KEYS, key=str):
            self.warnings.append(f"{where}: unknown key {key!r} is ignored")
        # str(): YAML reads an unquoted 2012-10-17 as a date
        version = None if document.get("Version") is None else str(document["Version"])
        if version not in (None, VERSION_WITH_VARIABLES, "2008-10-17"):
            self.errors.append(f"{where}: Version must be 2012-10-17 or 2008-10-17, got {version}")
        variables = version == VERSION_WITH_VARIABLES
        if not variables and "${" in json.dumps(document.get("Statement")):
            self.warnings.append(
                f'{where}: without "Version": "{VERSION_WITH_VARIABLES}" policy variables '
                "are literal text (as in IAM)"
            )
        raw = document["Statement"]
        items = [raw] if isinstance(raw, dict) else raw
        if not isinstance(items, list):
            self.errors.append(f"{where}: Statement must be an object or a list of objects")
            return []
        out = []
        for index, item in enumerate(items):
            statement = self.statement(spec, index, item, f"{where} statement {index}", variables)
            if statement is not None:
                out.append(statement)
        return out

    def statement(
        self, spec: PolicySpec, index: int, item: Json, where: str, variables: bool
    ) -> Statement | None:
        errors = self.errors
        if not isinstance(item, dict):
            errors.append(f"{where}: a statement must be an object, got {item!r}")
            return None
        before = len(errors)
        effect = item.get("Effect")
        if effect not in ("Allow", "Deny"):
            errors.append(f"{where}: Effect must be Allow or Deny, got {effect!r}")
        if ("Action" in item) == ("NotAction" in item):
            errors.append(f"{where}: needs exactly one of Action and NotAction")
        if ("Resource" in item) == ("NotResource" in item):
            errors.append(f"{where}: needs exactly one of Resource and NotResource")
        if len(errors) > before:
            return None
        not_action = "NotAction" in item
        not_resource = "NotResource" in item
        actions = _strings(item, "NotAction" if not_action else "Action", where, errors)
        resources = _strings(item, "NotResource" if not_resource else "Resource", where, errors)
        if len(errors) > before:
            return None
        for key in sorted(set(item) - _STATEMENT_KEYS, key=str):
            self.warnings.append(f"{where}: unknown key {key!r} is ignored")
        if "Condition" in item:
            effect_note = (
                "a Deny skipped here may allow what AWS denies"
                if effect == "Deny"
                else "what it allows is denied here"
            )
            self.warnings.append(
                f"{where}: Condition is not evaluated; the statement is skipped ({effect_note})"
            )
            return None
        self.lint(where, actions, resources, not_action, not_resource, variables)
        action_pattern = re.compile(
            "|".join(f"(?:{_action_regex(a)})" for a in actions) or "(?!)", re.IGNORECASE
        )
        static: list[str] = []
        templates: list[tuple[_Part, ...]] = []
        for resource in resources:
            parts = _glob_parts(resource, variables)
            if all(isinstance(p, str) for p in parts):
                static.append("".join(p for p in parts if isinstance(p, str)))
            else:
                templates.append(parts)
        return Statement(
            policy=spec.name,
            index=index,
            allow=effect == "Allow",
            not_action=not_action,
            not_resource=not_resource,
            source=item,
            origin=spec.source,
            action_pattern=action_pattern,
            static_pattern=_alternation(static),
            templates=tuple(templates),
        )

    def lint(
        self,
        where: str,
        actions: list[str],
        resources: list[str],
        not_action: bool,
        not_resource: bool,
        variables: bool,
    ) -> None:
        """Warnings for what AWS accepts but that can never match: typos, other accounts."""
        warn = self.warnings.append
        known = [a.lower() for a in IOT_ACTIONS]
        for action in actions:
            regex = re.compile(_action_regex(action), re.IGNORECASE)
            if action.lower().startswith("iot:") and not any(regex.fullmatch(k) for k in known):
                warn(f"{where}: {action!r} is not an AWS IoT action; it matches nothing")
        kinds_needed = {
            RESOURCE_TYPES[a.lower()]
            for a in actions
            if a.lower() in RESOURCE_TYPES and not not_action
        }
        kinds_named: set[str | None] = set()
        for resource in resources:
            for name in _VARIABLE.findall(resource) if variables else ():
                if name not in _ESCAPES and _variable_value(name.lower(), _PROBE) is None:
                    why = next((w for p, w in _UNRESOLVABLE if name.lower().startswith(p)), None)
                    detail = (
                        f"cannot be resolved here ({why})" if why else "is not a known variable"
                    )
                    warn(f"{where}: ${{{name}}} {detail}; a resource using it matches nothing")
            if resource == "*" or resource.startswith(("*", "?")):
                kinds_named.add(None)
                continue
            fields = resource.split(":", 5)
            if len(fields) < 6 or fields[0] != "arn":
                warn(f"{where}: resource {resource!r} is not an ARN; it matches nothing")
                continue
            if fields[2] != "iot" and not any(c in fields[2] for c in "*?"):
                warn(f"{where}: resource {resource!r} is not an AWS IoT ARN")
            for label, value, ours in (
                ("region", fields[3], self.region),
                ("account", fields[4], self.account_id),
            ):
                if not any(c in value for c in "*?$") and value != ours:
                    warn(
                        f"{where}: resource {resource!r} names {label} {value!r}, the "
                        f"emulator's {label} is {ours!r}; it never matches here"
                    )
            kind = fields[5].split("/", 1)[0]
            kinds_named.add(None if any(c in kind for c in "*?$") else kind)
        if not_resource or not kinds_named or None in kinds_named:
            return
        for kind in sorted(kinds_needed - kinds_named):
            named = ", ".join(f"{k}/" for k in sorted(k for k in kinds_named if k))
            verbs = sorted(a for a in actions if RESOURCE_TYPES.get(a.lower()) == kind)
            warn(
                f"{where}: {', '.join(verbs)} is checked against {kind}/ ARNs but the "
                f"resources are {named} ARNs"
            )


# -- the policy set ---------------------------------------------------------------------
class PolicySet:
    """Every policy that applies to the broker's clients; implements ``Authorizer``.

    Every policy in the set applies to every client it is asked about: the policy files'
    set to clients without a certificate, a certificate's set (``IdentityAuthorizer``) to
    that certificate's connections, with ``variables`` resolving its certificate and thing
    variables. Raises ``PolicyError`` listing every invalid statement.
    """

    def __init__(
        self,
        policies: Sequence[PolicySpec],
        region: str = "us-east-1",
        account_id: str = "123456789012",
        cache_size: int = CACHE_SIZE,
        variables: Resolver | None = None,
    ) -> None:
        self._resolve = variables
        self.region = region
        self.account_id = account_id
        self.names = [p.name for p in policies]
        compiler = _Compiler(region, account_id)
        statements = [s for spec in policies for s in compiler.policy(spec)]
        if compiler.errors:
            raise PolicyError(compiler.errors)
        self.statements = tuple(statements)
        self.warnings = tuple(compiler.warnings)
        templated = [s for s in statements if s.templates]
        slots = {id(s): i for i, s in enumerate(templated)}
        self._templated = tuple(templated)
        # action (lower case) -> (statement, slot in the per-client patterns or -1)
        self._by_action: dict[str, tuple[tuple[Statement, int], ...]] = {
            action: tuple((s, slots.get(id(s), -1)) for s in statements if s.names_action(action))
            for action in RESOURCE_TYPES
        }
        self._arn_prefix = {
            action: f"arn:aws:iot:{region}:{account_id}:{kind}/"
            for action, kind in RESOURCE_TYPES.items()
        }
        self._cache_size = cache_size
        self._decisions: OrderedDict[tuple[str, str, str, str], Decision] = OrderedDict()
        self._client_patterns: OrderedDict[tuple[str, str], tuple[re.Pattern[str] | None, ...]] = (
            OrderedDict()
        )

    def arn(self, action: str, resource: str) -> str:
        """The ARN a policy must name for ``action`` on the bare ``resource``."""
        prefix = self._arn_prefix.get(action.lower())
        if prefix is None:
            known = ", ".join(IOT_ACTIONS[:5])
            raise PolicyError(f"unsupported action {action!r} (the broker checks {known})")
        return prefix + resource

    def check(self, identity: ClientIdentity, action: str, resource: str) -> Decision:
        key = (identity.client_id, identity.source_ip, action, resource)
        cache = self._decisions
        decision = cache.get(key)
        if decision is not None:
            cache.move_to_end(key)
            return decision
        decision = self.explain(identity, action, resource)[0]
        cache[key] = decision
        if len(cache) > self._cache_size:
            cache.popitem(last=False)
        return decision

    def explain(
        self, identity: ClientIdentity, action: str, resource: str
    ) -> tuple[Decision, Statement | None]:
        """The decision and the statement that made it (None for an implicit deny)."""
        return self.explain_arn(identity, action, self.arn(action, resource))

    def explain_arn(
        self, identity: ClientIdentity, action: str, arn: str
    ) -> tuple[Decision, Statement | None]:
        """``explain`` for a resource given as its ARN (``TestAuthorization``'s form)."""
        patterns: tuple[re.Pattern[str] | None, ...] = ()
        allowed_by: Statement | None = None
        for statement, slot in self._by_action[action.lower()]:
            if slot < 0:
                pattern = statement.static_pattern
            else:
                patterns = patterns or self._patterns_for(identity)
                pattern = patterns[slot]
            hit = pattern is not None and pattern.fullmatch(arn) is not None
            if hit == statement.not_resource:
                continue
            if not statement.allow:
                return Decision(False, f"denied by {statement.label} (explicit Deny)"), statement
            if allowed_by is None:
                allowed_by = statement
        if allowed_by is not None:
            return Decision(True, f"allowed by {allowed_by.label}"), allowed_by
        return Decision(False, f"no statement allows {action} on {arn} (implicit deny)"), None

    def _patterns_for(self, identity: ClientIdentity) -> tuple[re.Pattern[str] | None, ...]:
        """The statements with variables, compiled for one client (kept for the next call)."""
        key = (identity.client_id, identity.source_ip)
        cache = self._client_patterns
        patterns = cache.get(key)
        if patterns is not None:
            cache.move_to_end(key)
            return patterns
        patterns = tuple(s.pattern_for(identity, self._resolve) for s in self._templated)
        cache[key] = patterns
        if len(cache) > CLIENT_CACHE_SIZE:
            cache.popitem(last=False)
        return patterns


def compile_policies(
    policies: Sequence[PolicySpec], region: str = "us-east-1", account: str = "123456789012"
) -> PolicySet:
    """Parse and compile policy documents once; ``PolicyError`` lists every invalid one."""
    return PolicySet(policies, region, account)


# -- certificates ------------------------------------------------------------------------
class IdentityAuthorizer:
    """The broker's authorizer once certificates exist: a client that connected with a
    certificate gets the policies attached to that certificate (none attached: every
    request is denied, as on AWS); any other client gets ``fallback`` (the policy files,
    or None: allowed).

    A certificate principal is one the transport set (``link.principal``): a client that
    names a certificate ID as its MQTT username on a plain port is not one (its principal
    then equals its username). Each certificate's ``PolicySet`` is compiled on first use
    and dropped when the registry's ``generation`` changes (attachments, new policy
    versions, things).
    """

    def __init__(
        self,
        directory: PrincipalDirectory,
        fallback: Authorizer | None,
        region: str = "us-east-1",
        account_id: str = "123456789012",
    ) -> None:
        self.directory = directory
        self.fallback = fallback
        self.region = region
        self.account_id = account_id
        self._generation = -1
        self._sets: dict[str, PolicySet | None] = {}

    def policies_for(self, principal: str) -> PolicySet | None:
        """The compiled policies of a certificate principal; None if it is none."""
        generation = self.directory.generation
        if generation != self._generation:
            self._sets.clear()
            self._generation = generation
        if principal in self._sets:
            return self._sets[principal]
        record = self.directory.certificate_principal(principal)
        policies = None
        if record is not None:
            policies = PolicySet(
                record.policies,
                self.region,
                self.account_id,
                cache_size=CLIENT_CACHE_SIZE,
                variables=certificate_resolver(record),
            )
        if len(self._sets) >= CLIENT_CACHE_SIZE:
            self._sets.clear()
        self._sets[principal] = policies
        return policies

    def check(self, identity: ClientIdentity, action: str, resource: str) -> Decision:
        if identity.principal != identity.username:
            policies = self.policies_for(identity.principal)
            if policies is not None:
                return policies.check(identity, action, resource)
        if self.fallback is None:
            return ALLOW
        return self.fallback.check(identity, action, resource)
