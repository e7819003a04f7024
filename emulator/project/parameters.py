"""Template parameters: ``--parameter-overrides`` as ``sam`` spells them, and each
parameter's value (the override, else its ``Default``) as CloudFormation gives it to
``!Ref``.

``sam deploy --parameter-overrides`` takes ``Name=Value`` pairs separated by spaces (one
argument or several, quoted values kept whole), or CloudFormation's own
``ParameterKey=Name,ParameterValue=Value``. A ``List<...>`` or ``CommaDelimitedList``
parameter is a list to ``!Ref``; every other type is its text (a ``Number`` too: AWS
passes parameters as strings). Pure: no I/O.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

_LONG_FORM = re.compile(r"ParameterKey=(?P<key>[^,]+),ParameterValue=(?P<value>.*)\Z", re.S)
_NAME = re.compile(r"[A-Za-z0-9]+\Z")  # CloudFormation: parameter names are alphanumeric


class OverrideError(ValueError):
    """An override that is neither ``Name=Value`` nor ``ParameterKey=..,ParameterValue=..``."""


def parse_overrides(tokens: Iterable[str]) -> dict[str, str]:
    """``["A=1 B='two words'", "ParameterKey=C,ParameterValue=3"]`` -> {A: 1, B: two words,
    C: 3}; a later value of a name replaces an earlier one, as in ``sam``."""
    out: dict[str, str] = {}
    for token in tokens:
        try:
            words = shlex.split(token)
        except ValueError as exc:
            raise OverrideError(f"cannot read {token!r}: {exc}") from exc
        for word in words:
            long_form = _LONG_FORM.match(word)
            if long_form:
                key, value = long_form["key"], long_form["value"]
            else:
                key, sep, value = word.partition("=")
                if not sep:
                    raise OverrideError(f"{word!r} is not Name=Value")
            if not _NAME.match(key):
                raise OverrideError(f"{key!r} is not a parameter name (letters and digits)")
            out[key] = value
    return out


@dataclass(frozen=True, slots=True)
class ParameterValue:
    """A parameter's value for ``!Ref``, or the problem that leaves it without one."""

    value: Any = None
    problem: str | None = None


def parameter_value(name: str, declaration: Any, overrides: Mapping[str, str]) -> ParameterValue:
    """The value of parameter ``name`` declared as ``declaration`` (its mapping in the
    template's ``Parameters``), given the overrides."""
    decl = declaration if isinstance(declaration, dict) else {}
    kind = str(decl.get("Type", "String"))
    if name in overrides:
        raw: Any = overrides[name]
    elif "Default" in decl and decl["Default"] is not None:
        raw = decl["Default"]
    else:
        return ParameterValue(
            problem=f"parameter '{name}' has no Default: give it a value with "
            f"--parameter-overrides {name}=VALUE"
        )
    if kind.startswith("List<") or kind == "CommaDelimitedList":
        items = raw if isinstance(raw, list) else str(raw).split(",")
        return ParameterValue([_text(item).strip() for item in items])
    text = _text(raw)
    allowed = decl.get("AllowedValues")
    if isinstance(allowed, list) and text not in [_text(a) for a in allowed]:
        return ParameterValue(
            problem=f"parameter '{name}': value '{text}' is not one of its AllowedValues "
            f"({', '.join(_text(a) for a in allowed)})"
        )
    pattern = decl.get("AllowedPattern")
    if isinstance(pattern, str) and re.fullmatch(pattern, text) is None:
        return ParameterValue(
            problem=f"parameter '{name}': value '{text}' does not match its AllowedPattern"
        )
    return ParameterValue(text)


def _text(value: Any) -> str:
    """A YAML scalar as CloudFormation reads it: ``true`` stays ``true``, 10 is ``10``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
