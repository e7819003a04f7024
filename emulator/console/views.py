"""What the console's stream sends, as JSON: the hub's events, the clients, the rules.
Pure: values in, JSON-ready values out."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from emulator.broker.sessions import Session
from emulator.observe import Event, json_default
from emulator.project.model import Project
from emulator.rules.engine import RuleCounters

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - a dependency; the standard encoder still works
    _orjson = None  # type: ignore[assignment]

Json = Any
_ORJSON_OPTIONS = _orjson.OPT_NON_STR_KEYS if _orjson is not None else 0
BYTES_FIELDS = {"payload": "size", "result": "result_size"}  # bytes field -> its size field


def payload_json(shown: bytes, size: int) -> Json:
    """A payload for the page: ``text`` (the page pretty-prints JSON) or ``base64`` for
    binary; ``cut`` when the event kept less than its ``size``."""
    cut = size > len(shown)
    # Cut, the last character may have lost its last bytes: still text without them.
    for end in (len(shown), len(shown) - 1, len(shown) - 2, len(shown) - 3)[: 4 if cut else 1]:
        try:
            return {"text": shown[:end].decode(), "cut": cut}
        except UnicodeDecodeError:
            continue
    return {"base64": base64.b64encode(shown).decode(), "cut": cut}


# event class -> (its plain fields, its bytes fields with the name of their size)
_FIELDS: dict[type, tuple[tuple[str, ...], tuple[tuple[str, str], ...]]] = {}


def _fields_of(kind: type) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    known = _FIELDS.get(kind)
    if known is None:
        names = [f.name for f in fields(kind)]
        plain = tuple(n for n in names if n not in BYTES_FIELDS)
        raw = tuple((n, BYTES_FIELDS[n]) for n in names if n in BYTES_FIELDS)
        known = _FIELDS[kind] = (plain, raw)
    return known


def event_json(event: Event) -> dict[str, Json]:
    """An event as a JSON object; values JSON has no type for are left to ``dumps``."""
    plain, raw = _fields_of(type(event))
    body: dict[str, Json] = {name: getattr(event, name) for name in plain}
    body["kind"] = event.kind
    for name, size in raw:
        body[name] = payload_json(getattr(event, name), body[size])
    return body


def dumps(value: Json) -> str:
    """Compact JSON: orjson when it can (several times faster: with a console open this is
    most of the cost per message), else the standard encoder (integers over 64 bits)."""
    if _orjson is not None:
        try:
            return _orjson.dumps(value, default=json_default, option=_ORJSON_OPTIONS).decode()
        except TypeError:
            pass
    return json.dumps(value, separators=(",", ":"), default=json_default)


def sessions_json(sessions: Mapping[str, Session]) -> Json:
    """The broker's sessions, read only: who is connected as whom, subscribed to what."""
    out = []
    for client_id, session in sorted(sessions.items()):
        identity = session.identity
        out.append(
            {
                "client_id": client_id,
                "connected": session.link is not None,
                "principal": identity.principal if identity is not None else None,
                "source_ip": identity.source_ip if identity is not None else None,
                "clean": session.clean,
                "subscriptions": dict(session.subscriptions),
                "inflight": len(session.inflight),
                "queued": len(session.queued),
            }
        )
    return out


def rules_json(project: Project, counters: Mapping[str, RuleCounters]) -> Json:
    """Every rule the project declares, loaded or disabled, and what could not load."""
    rules = []
    for spec in project.rules:
        count = counters.get(spec.name)
        rules.append(
            {
                "name": spec.name,
                "sql": spec.sql,
                "disabled": spec.rule_disabled,
                "actions": [a.type for a in spec.actions],
                "error_action": spec.error_action.type if spec.error_action else None,
                "counters": vars(count) if count is not None else None,
            }
        )
    diagnostics = [str(d) for d in project.diagnostics]
    return {"rules": rules, "diagnostics": diagnostics}
