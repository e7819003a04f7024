"""Strings: concatenation, padding, search, substrings, regular expressions.

Each function follows the argument-type table of its section in iot-sql-functions.md: an
argument that is not a String is read through the standard conversion to String
(iot-sql-data-types.md: an Array or Object becomes its JSON text, a Boolean "true" or
"false"), and Null or Undefined makes the result Undefined. Numeric arguments (pad
widths, substring indexes, chr codes) are rounded down, as the tables say.

The regular expressions are Java's (the service runs on the JVM): patterns are translated
to Python's ``re`` where the two differ in spelling, ``\\d``, ``\\w``, ``\\s`` and ``\\b``
are ASCII as in Java, and replacements use Java's ``$1`` and ``${name}``. A pattern or
replacement that is not valid makes the result Undefined, as the tables say.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import ROUND_FLOOR
from functools import lru_cache
from typing import Any

from emulator.sql.context import Env
from emulator.sql.functions.registry import FunctionTable, Impl, string_arg
from emulator.sql.values import UNDEFINED, to_decimal

TABLE = FunctionTable()
register = TABLE.register
register_direct = TABLE.register_direct

# ltrim(), rtrim(): "all leading white space (tabs and spaces)"; trim() the same.
_BLANKS = " \t"


@register("concat", 0, 255)
def _concat(env: Env, args: list[Any]) -> Any:
    """Arrays join into one array (other arguments become items); otherwise the String
    forms of the arguments join. One argument goes the same way: ``concat(1)`` is "1"
    as the section's example shows (its table says "unmodified"; differences.md)."""
    if not args:
        return UNDEFINED
    # One pass for the usual case (Strings and scalars, as the chat's id is made): no
    # generator per test, no call per String argument.
    parts: list[str] = []
    has_list = has_null = False
    for a in args:
        kind = type(a)
        if kind is str:
            parts.append(a)
        elif a is UNDEFINED:
            return UNDEFINED
        elif kind is list:
            has_list = True
        elif a is None:
            has_null = True
        else:
            parts.append(string_arg(a, env) or "")  # not None: a is neither Null nor Undefined
    if has_list:
        out: list[Any] = []
        for a in args:
            if type(a) is list:
                out.extend(a)
            else:
                out.append(a)
        return out
    return UNDEFINED if has_null else "".join(parts)


def _string_function(fn: Callable[[str], Any]) -> Impl:
    """A function of one String: other values are converted, Null and Undefined give
    Undefined."""

    def impl(env: Env, args: list[Any]) -> Any:
        s = string_arg(args[0], env)
        return UNDEFINED if s is None else fn(s)

    return impl


_string_length = _string_function(len)


@register("length", 1, since="2016-03-23")
def _length(env: Env, args: list[Any]) -> Any:
    """Characters of a String or of the String form of a scalar (``length(false)`` = 5);
    an Array's items and an Object's keys, as the emulator always counted them, not the
    characters of their JSON text the page's "standard conversion" sentence would give
    (differences.md)."""
    v = args[0]
    if type(v) is list or type(v) is dict:
        return len(v)
    return _string_length(env, args)


# Java's encoder writes '?' for a lone surrogate, one byte.
register("numbytes", 1, since="2016-03-23")(
    _string_function(lambda s: len(s.encode("utf-8", "replace")))
)
register("lower", 1)(_string_function(str.lower))
register("upper", 1)(_string_function(str.upper))
register("trim", 1)(_string_function(lambda s: s.strip(_BLANKS)))
register("ltrim", 1)(_string_function(lambda s: s.lstrip(_BLANKS)))
register("rtrim", 1)(_string_function(lambda s: s.rstrip(_BLANKS)))


def _floor_int(v: Any, low: int, high: int) -> int | None:
    """An Int, Decimal or numeric String rounded down and kept within [low, high]; None
    for any other value (Boolean, Array, Object, Null, Undefined)."""
    if type(v) is int:
        return min(max(v, low), high)
    d = to_decimal(v) if type(v) is not bool else None
    if d is None:
        return None
    if d <= low:
        return low
    if d >= high:
        return high
    return int(d.to_integral_value(rounding=ROUND_FLOOR))


_MAX_PAD = 1000  # "The Int argument must be between 0 and 1000" (else the nearest bound)


def _pad(left: bool) -> Impl:
    def impl(env: Env, args: list[Any]) -> Any:
        s = string_arg(args[0], env)
        n = _floor_int(args[1], 0, _MAX_PAD)
        if s is None or n is None:
            return UNDEFINED
        return " " * n + s if left else s + " " * n

    return impl


register("lpad", 2)(_pad(True))
register("rpad", 2)(_pad(False))


def _two_strings(fn: Callable[[str, str], Any]) -> Impl:
    def impl(env: Env, args: list[Any]) -> Any:
        a, b = string_arg(args[0], env), string_arg(args[1], env)
        return UNDEFINED if a is None or b is None else fn(a, b)

    return impl


register("startswith", 2)(_two_strings(str.startswith))
register("endswith", 2)(_two_strings(str.endswith))
register("indexof", 2, since="2016-03-23")(_two_strings(str.find))


@register("replace", 3)
def _replace(env: Env, args: list[Any]) -> Any:
    a, b, c = (string_arg(x, env) for x in args)
    if a is None or b is None or c is None:
        return UNDEFINED
    return a.replace(b, c)


@register("substring", 2, 3)
def _substring(env: Env, args: list[Any]) -> Any:
    """Indexes are 0-based; below 0 they count as 0, past the end as the length; a start
    at or past the end index gives ""."""
    s = string_arg(args[0], env)
    if s is None:
        return UNDEFINED
    size = len(s)
    start = _floor_int(args[1], 0, size)
    end = size if len(args) == 2 else _floor_int(args[2], 0, size)
    if start is None or end is None:
        return UNDEFINED
    return s[start:end]


@register("chr", 1)
def _chr(env: Env, args: list[Any]) -> Any:
    """The ASCII character of a code (an Int, or a Decimal or numeric String rounded
    down); Undefined outside 0-127."""
    code = _floor_int(args[0], -1, 128)
    return chr(code) if code is not None and 0 <= code <= 127 else UNDEFINED


# -- regular expressions (java.util.regex) ---------------------------------------------
_NAMED_GROUP = re.compile(r"\(\?<(?=[A-Za-z])")
_BACKREF = re.compile(r"\\k<([A-Za-z][A-Za-z0-9]*)>")
_COUNTED = re.compile(r"\{[0-9]+(,[0-9]*)?\}")


class _NotJava(Exception):
    """A pattern Java refuses (or one the translation cannot give Python's meaning)."""


def _translate(pattern: str) -> str:
    """A Java pattern in Python's spelling: named groups ``(?<n>...)`` and ``\\k<n>``,
    ``\\Q...\\E`` quoting, ``\\z`` (end of input) and ``\\Z`` (end, before a final line
    break).
    Java refuses a ``{`` that opens no ``{n}``/``{n,}``/``{n,m}``, which Python would
    read as a letter; a class inside a class (Java's unions and ``&&``) has no Python
    spelling."""
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            e = pattern[i + 1]
            if e == "Q":
                end = pattern.find("\\E", i + 2)
                end = n if end < 0 else end
                out.append(re.escape(pattern[i + 2 : end]))
                i = end + 2
                continue
            backref = _BACKREF.match(pattern, i) if not in_class else None
            if backref is not None:  # \k<name>
                out.append(f"(?P={backref.group(1)})")
                i = backref.end()
                continue
            out.append({"z": r"\Z", "Z": r"(?=\n?\Z)"}.get(e, c + e) if not in_class else c + e)
            i += 2
            continue
        if in_class:
            pair = pattern[i : i + 2]
            if c == "[" or pair in ("&&", "--"):  # Java's nested class, intersection
                raise _NotJava(pattern)
            if pair in ("~~", "||"):  # letters to Java; Python reserves them in a class
                out.append("\\" + c + "\\" + c)
                i += 2
                continue
            in_class = c != "]"
        elif c == "[":
            in_class = True
        elif c == "{" and not _COUNTED.match(pattern, i):
            raise _NotJava(pattern)
        elif c == "(" and _NAMED_GROUP.match(pattern, i):
            out.append("(?P<")
            i += 3
            continue
        out.append(c)
        i += 1
    return "".join(out)


@lru_cache(maxsize=512)
def _java_regex(pattern: str) -> re.Pattern[str] | None:
    """The compiled pattern, or None if Java's rules or Python's refuse it."""
    try:
        return re.compile(_translate(pattern), re.ASCII)
    except (_NotJava, re.error, ValueError, OverflowError, RecursionError):
        return None


Replacement = Callable[["re.Match[str]"], str]


@lru_cache(maxsize=512)
def _java_replacement(template: str, regex: re.Pattern[str]) -> Replacement | None:
    """Java's ``Matcher.appendReplacement`` rules: ``\\x`` is x, ``$n`` a group (digits
    taken while the number is still a group), ``${name}`` a named group; a reference to
    a missing group, a lone ``$`` or a trailing ``\\`` make it invalid (None)."""
    parts: list[str | int] = []
    literal: list[str] = []
    i, n = 0, len(template)
    while i < n:
        c = template[i]
        if c == "\\":
            if i + 1 >= n:
                return None
            literal.append(template[i + 1])
            i += 2
        elif c == "$":
            i += 1
            if i < n and template[i] == "{":
                end = template.find("}", i)
                name = template[i + 1 : end] if end > 0 else ""
                if name not in regex.groupindex:
                    return None
                ref: int = regex.groupindex[name]
                i = end + 1
            elif i < n and template[i].isdigit():
                ref = int(template[i])
                if ref > regex.groups:
                    return None
                i += 1
                while (
                    i < n and template[i].isdigit() and ref * 10 + int(template[i]) <= regex.groups
                ):
                    ref = ref * 10 + int(template[i])
                    i += 1
            else:
                return None
            parts.append("".join(literal))
            literal.clear()
            parts.append(ref)
        else:
            literal.append(c)
            i += 1
    parts.append("".join(literal))

    def replace(m: re.Match[str]) -> str:
        return "".join(p if type(p) is str else (m.group(p) or "") for p in parts)

    return replace


def _regex_args(env: Env, args: list[Any]) -> tuple[str, re.Pattern[str]] | None:
    s, p = args[0], args[1]
    if type(s) is not str or type(p) is not str:  # Strings, the usual case, as they are
        s, p = string_arg(s, env), string_arg(p, env)
    if s is None or p is None:
        return None
    regex = _java_regex(p)
    return None if regex is None else (s, regex)


@register("regexp_matches", 2)
def _regexp_matches(env: Env, args: list[Any]) -> Any:
    """Whether the string *contains* a match (Java's ``find()``, not ``matches()``)."""
    got = _regex_args(env, args)
    return UNDEFINED if got is None else got[1].search(got[0]) is not None


@register("regexp_replace", 3)
def _regexp_replace(env: Env, args: list[Any]) -> Any:
    got = _regex_args(env, args)
    r = string_arg(args[2], env)
    if got is None or r is None:
        return UNDEFINED
    s, regex = got
    replacement = _java_replacement(r, regex)
    return UNDEFINED if replacement is None else regex.sub(replacement, s)


@register("regexp_substr", 2)
def _regexp_substr(env: Env, args: list[Any]) -> Any:
    """The first match; "" when there is none (the page does not say; differences.md)."""
    got = _regex_args(env, args)
    if got is None:
        return UNDEFINED
    m = got[1].search(got[0])
    return "" if m is None else m.group(0)
