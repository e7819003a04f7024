"""Amazon Resource Names: the names inside them. Pure."""

from __future__ import annotations


def function_name_of(arn_or_name: str) -> str:
    """``arn:aws:lambda:r:a:function:NAME[:qualifier]`` or a bare name -> NAME."""
    if arn_or_name.startswith("arn:"):
        parts = arn_or_name.split(":")
        return parts[6] if len(parts) > 6 else arn_or_name
    return arn_or_name
