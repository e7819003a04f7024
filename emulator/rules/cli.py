"""``rules eval|test|check``: debugging tools for topic rules (filled in by the rules engine)."""

from __future__ import annotations

from typing import Any


def add_parser(sub: Any) -> None:
    sub.add_parser("rules", help="evaluate, dry-run and check topic rules")
