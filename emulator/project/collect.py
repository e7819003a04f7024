"""What the native and the CloudFormation readers share while files are read: the
``Collector`` of one project's parts and diagnostics, and the position helpers."""

from __future__ import annotations

import re
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


# The runtimes whose code the emulator can run: its workers start the Python runtime interface
# client (functions/workers.py). Node.js, Java, Go, .NET, Ruby and custom runtimes are not.
SUPPORTED_RUNTIMES = "python3.x (e.g. python3.12)"
_PYTHON_RUNTIME = re.compile(r"python3\.\d+\Z")


def supported_runtime(
    file: Path, out: Collector, name: str, runtime: str, where: Any, node: Any
) -> bool:
    """Whether the emulator can run ``runtime``; if not, an error naming the function, its
    runtime and the supported ones, at ``where`` (the Runtime value) or else ``node``."""
    out.declared_functions.add(name)
    if _PYTHON_RUNTIME.match(runtime):
        return True
    out.error(
        file,
        where if position_of(where) != (0, 0) else node,
        f"function '{name}': runtime '{runtime}' cannot run in the emulator "
        f"(supported: {SUPPORTED_RUNTIMES}); the function is not loaded",
    )
    return False


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
