"""Strings: concatenation, padding, search, substrings, regular expressions."""

from __future__ import annotations

import re
from typing import Any

from emulator.sql.context import Env
from emulator.sql.errors import RuleEvaluationError
from emulator.sql.functions.registry import FunctionTable, Impl, integer_args, string_arg
from emulator.sql.values import UNDEFINED, to_number, to_string

TABLE = FunctionTable()
register = TABLE.register
register_direct = TABLE.register_direct


@register("concat", 1, 255)
def _concat(env: Env, args: list[Any]) -> Any:
    if any(a is UNDEFINED for a in args):
        return UNDEFINED
    if all(type(a) is list for a in args) or (type(args[0]) is list):
        out: list[Any] = []
        for a in args:
            if type(a) is list:
                out.extend(a)
            else:
                out.append(a)
        return out
    return "".join(to_string(a, env.sql_version) for a in args)


@register("length", 1)
def _length(env: Env, args: list[Any]) -> Any:
    v = args[0]
    if type(v) in (list, dict):
        return len(v)
    s = string_arg(v, env)
    return UNDEFINED if s is None else len(s)


@register("numbytes", 1)
def _numbytes(env: Env, args: list[Any]) -> Any:
    s = string_arg(args[0], env)
    return UNDEFINED if s is None else len(s.encode("utf-8"))


@register("lower", 1)
def _lower(env: Env, args: list[Any]) -> Any:
    s = string_arg(args[0], env)
    return UNDEFINED if s is None else s.lower()


@register("upper", 1)
def _upper(env: Env, args: list[Any]) -> Any:
    s = string_arg(args[0], env)
    return UNDEFINED if s is None else s.upper()


@register("trim", 1)
def _trim(env: Env, args: list[Any]) -> Any:
    s = string_arg(args[0], env)
    return UNDEFINED if s is None else s.strip()


@register("ltrim", 1)
def _ltrim(env: Env, args: list[Any]) -> Any:
    s = string_arg(args[0], env)
    return UNDEFINED if s is None else s.lstrip()


@register("rtrim", 1)
def _rtrim(env: Env, args: list[Any]) -> Any:
    s = string_arg(args[0], env)
    return UNDEFINED if s is None else s.rstrip()


def _pad(left: bool) -> Impl:
    def impl(env: Env, args: list[Any]) -> Any:
        s = string_arg(args[0], env)
        n = to_number(args[1]) if type(args[1]) is not bool else None
        if s is None or n is None:
            return UNDEFINED
        pad = " " * max(int(n), 0)
        return pad + s if left else s + pad

    return impl


register("lpad", 2)(_pad(True))
register("rpad", 2)(_pad(False))


@register("startswith", 2)
def _startswith(env: Env, args: list[Any]) -> Any:
    a, b = string_arg(args[0], env), string_arg(args[1], env)
    return UNDEFINED if a is None or b is None else a.startswith(b)


@register("endswith", 2)
def _endswith(env: Env, args: list[Any]) -> Any:
    a, b = string_arg(args[0], env), string_arg(args[1], env)
    return UNDEFINED if a is None or b is None else a.endswith(b)


@register("indexof", 2)
def _indexof(env: Env, args: list[Any]) -> Any:
    a, b = string_arg(args[0], env), string_arg(args[1], env)
    return UNDEFINED if a is None or b is None else a.find(b)


@register("replace", 3)
def _replace(env: Env, args: list[Any]) -> Any:
    a, b, c = (string_arg(x, env) for x in args)
    if a is None or b is None or c is None:
        return UNDEFINED
    return a.replace(b, c)


@register("substring", 2, 3)
def _substring(env: Env, args: list[Any]) -> Any:
    s = string_arg(args[0], env)
    nums = integer_args(args[1:])
    if s is None or nums is None:
        return UNDEFINED
    start = max(0, min(nums[0], len(s)))
    end = len(s) if len(nums) == 1 else max(start, min(nums[1], len(s)))
    return s[start:end]


@register("chr", 1)
def _chr(env: Env, args: list[Any]) -> Any:
    n = integer_args(args)
    if n is None:
        return UNDEFINED
    try:
        return chr(n[0])
    except (ValueError, OverflowError):
        return UNDEFINED


def _java_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@register("regexp_matches", 2)
def _regexp_matches(env: Env, args: list[Any]) -> Any:
    s, p = string_arg(args[0], env), string_arg(args[1], env)
    if s is None or p is None:
        return UNDEFINED
    try:
        return _java_regex(p).search(s) is not None
    except re.error as exc:
        raise RuleEvaluationError(f"regexp_matches: invalid pattern {p!r}: {exc}") from exc


@register("regexp_replace", 3)
def _regexp_replace(env: Env, args: list[Any]) -> Any:
    s, p, r = (string_arg(x, env) for x in args)
    if s is None or p is None or r is None:
        return UNDEFINED
    try:
        return _java_regex(p).sub(re.sub(r"\$(\d)", r"\\\1", r), s)
    except re.error as exc:
        raise RuleEvaluationError(f"regexp_replace: invalid pattern {p!r}: {exc}") from exc


@register("regexp_substr", 2)
def _regexp_substr(env: Env, args: list[Any]) -> Any:
    s, p = string_arg(args[0], env), string_arg(args[1], env)
    if s is None or p is None:
        return UNDEFINED
    try:
        m = _java_regex(p).search(s)
    except re.error as exc:
        raise RuleEvaluationError(f"regexp_substr: invalid pattern {p!r}: {exc}") from exc
    return "" if m is None else m.group(0)
