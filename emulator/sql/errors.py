"""Errors of the rules language: where in the statement, and what."""

from __future__ import annotations


class RuleSyntaxError(Exception):
    """A statement that does not parse; ``line``/``column`` are 1-based within the SQL."""

    def __init__(self, message: str, sql: str, line: int, column: int) -> None:
        super().__init__(f"{message} (line {line}, column {column})")
        self.message = message
        self.sql = sql
        self.line = line
        self.column = column

    def caret(self) -> str:
        """The offending line with a ``^`` under the column."""
        lines = self.sql.splitlines() or [""]
        text = lines[min(self.line, len(lines)) - 1]
        return f"{text}\n{' ' * (self.column - 1)}^"


class RuleEvaluationError(Exception):
    """A function failed on a message (or needs real AWS); names the function."""
