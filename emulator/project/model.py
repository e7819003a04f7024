"""What a deployment declares, independent of the file it came from.

The rule sources (native YAML in ``rules/``, CloudFormation/SAM templates) are loaded into
one ``Project``: topic rules, Lambda functions, DynamoDB tables, Kinesis streams, event
source mappings and IoT policies. The services, functions and rules engine consume it.
Pure data: no I/O here.

A loaded rule also carries its compiled form (``RuleSpec.compiled``: the statement and the
actions, compiled once by the loader), which the engine and the dry run both run. It takes
no part in equality: two projects declaring the same rules are equal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emulator.actions.base import Action
    from emulator.sql.statement import Statement

Json = Any


@dataclass(frozen=True, slots=True)
class SourceRef:
    """Where a declaration came from, for diagnostics: ``file:line:col``."""

    file: Path
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found while loading; loaders collect all of them, then report."""

    file: Path
    line: int
    column: int
    message: str
    severity: str = "error"  # error | warning

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """One rule action as written (AWS ``Action`` shape): ``type`` is the AWS key (one of
    emulator/actions/registry.py) and ``params`` its body with intrinsic functions
    already resolved to local names."""

    type: str
    params: dict[str, Json]
    source: SourceRef | None = None


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule's statement and actions, compiled once when the rule is loaded."""

    statement: Statement
    actions: tuple[Action[Any], ...]
    error_action: Action[Any] | None


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """A topic rule, mirroring AWS ``TopicRulePayload``."""

    name: str
    sql: str
    aws_iot_sql_version: str = "2015-10-08"  # AWS's default when the field is absent
    actions: tuple[ActionSpec, ...] = ()
    error_action: ActionSpec | None = None
    rule_disabled: bool = False
    description: str = ""
    source: SourceRef | None = None
    sql_source: SourceRef | None = None  # position of the first character of the SQL text
    compiled: CompiledRule | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """A Lambda function: the code folder and handler, as deployed."""

    name: str
    handler: str  # "module.function"
    code_path: Path
    runtime: str = "python3.11"
    timeout: float = 3.0  # seconds (AWS default)
    memory_mb: int = 128  # AWS default
    environment: dict[str, str] = field(default_factory=dict)
    source: SourceRef | None = None


@dataclass(frozen=True, slots=True)
class KeySchema:
    hash_key: str
    hash_type: str = "S"
    range_key: str | None = None
    range_type: str = "S"


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A DynamoDB table (``AWS::DynamoDB::Table``), with its TTL attribute if any."""

    name: str
    key: KeySchema
    ttl_attribute: str | None = None
    source: SourceRef | None = None


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """A Kinesis stream (``AWS::Kinesis::Stream``)."""

    name: str
    shard_count: int = 1
    source: SourceRef | None = None


@dataclass(frozen=True, slots=True)
class EventSourceMappingSpec:
    """A Kinesis -> Lambda event source mapping."""

    function: str
    stream: str
    batch_size: int = 100
    batching_window_s: float = 0.0
    starting_position: str = "LATEST"  # LATEST | TRIM_HORIZON
    maximum_retry_attempts: int = -1  # -1 = until the record expires (AWS default)
    bisect_batch_on_error: bool = False
    enabled: bool = True
    source: SourceRef | None = None


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """An IoT policy document (AWS JSON format, already parsed)."""

    name: str
    document: Json
    source: SourceRef | None = None


class PolicyError(ValueError):
    """Policies that cannot be evaluated. Every problem found is in ``errors``, each naming
    the policy and the statement index; the message lists them all."""

    def __init__(self, errors: str | Sequence[str]) -> None:
        self.errors = (errors,) if isinstance(errors, str) else tuple(errors)
        super().__init__("\n".join(self.errors))


@dataclass(frozen=True, slots=True)
class Project:
    """Everything loaded from the rule sources; replaced whole on hot reload."""

    rules: tuple[RuleSpec, ...] = ()
    functions: tuple[FunctionSpec, ...] = ()
    tables: tuple[TableSpec, ...] = ()
    streams: tuple[StreamSpec, ...] = ()
    event_source_mappings: tuple[EventSourceMappingSpec, ...] = ()
    policies: tuple[PolicySpec, ...] = ()
    diagnostics: tuple[Diagnostic, ...] = ()
    files: tuple[Path, ...] = ()

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == "error")
