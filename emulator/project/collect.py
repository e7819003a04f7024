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
from emulator.project.runtimes import (
    OLDEST_CURRENT_NODE,
    SUPPORTED_RUNTIMES,
    retired_node,
    runtime_kind,
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
    # Every function declared, loaded or not: a rule naming one that could not be loaded is
    # not also told the function is unknown.
    declared_functions: set[str] = field(default_factory=set)

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


def supported_runtime(
    file: Path, out: Collector, name: str, runtime: str, where: Any, node: Any
) -> bool:
    """Whether the emulator can run ``runtime`` (project/runtimes.py); if not, an error naming
    the function, its runtime and the supported ones, at ``where`` (the Runtime value) or
    else ``node``. A retired Node.js name loads, with a warning there."""
    out.declared_functions.add(name)
    at = where if position_of(where) != (0, 0) else node
    if runtime_kind(runtime) is None:
        out.error(
            file,
            at,
            f"function '{name}': runtime '{runtime}' cannot run in the emulator "
            f"(supported: {SUPPORTED_RUNTIMES}); the function is not loaded",
        )
        return False
    if retired_node(runtime):
        line, column = position_of(at, (1, 1))
        out.diagnostics.append(
            Diagnostic(
                file,
                line,
                column,
                f"warning: function '{name}': runtime '{runtime}' is retired on AWS; it runs "
                f"on the installed Node.js (nodejs{OLDEST_CURRENT_NODE}.x and later run as "
                "they are)",
                "warning",
            )
        )
    return True


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
