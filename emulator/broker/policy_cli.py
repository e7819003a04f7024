"""``policy test``: explain an IoT policy decision (filled in with the policy engine)."""

from __future__ import annotations

from typing import Any


def add_parser(sub: Any) -> None:
    sub.add_parser("policy", help="explain IoT policy decisions")
