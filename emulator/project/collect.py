"""What the native and the CloudFormation readers share while files are read: the
``Collector`` of one project's parts and diagnostics, and the position helpers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulator.project.model import (
    Diagnostic,
    EventSourceMappingSpec,
    FunctionSpec,
    PolicySpec,
    Project,
    RuleSpec,
    SourceRef,
    StreamSpec,
    TableSpec,
)
from emulator.project.yamlpos import position_of


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


def source_of(file: Path, node: Any) -> SourceRef:
    """Where a YAML node came from (its position, if the YAML loader kept one)."""
    line, column = position_of(node)
    return SourceRef(file, line, column)


def plain(value: Any) -> Any:
    """Drop the position-carrying subclasses (for equality and JSON)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value
