"""What the console's stream sends, as JSON: the hub's events (dataclasses, which orjson
writes as they are; payloads as text, or base64 when binary), the clients, the rules.
Pure: values in, JSON out."""

from __future__ import annotations

import json
from collections.abc import Mapping
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


def event_json(event: Event) -> Json:
    """What the page receives for one event (tests; the stream dumps whole batches)."""
    return json.loads(dumps(event))


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
                # filter -> granted QoS (the value also holds MQTT 5's option bits)
                "subscriptions": {f: o & 3 for f, o in session.subscriptions.items()},
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
