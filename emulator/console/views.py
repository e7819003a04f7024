"""What the console's stream sends, as JSON: the hub's events, the clients, the rules.
Pure: values in, JSON-ready values out."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from emulator.broker.sessions import Session
from emulator.observe import Event, Invocation, MessageSeen, printable
from emulator.project.model import Project
from emulator.rules.engine import RuleCounters

Json = Any
MAX_SHOWN = 16 * 1024  # payload bytes sent to the page (the size says how many there were)


def payload_json(payload: bytes) -> Json:
    """A payload for the page: ``json`` (parsed), ``text``, or ``base64`` for binary; cut to
    ``MAX_SHOWN`` bytes."""
    shown = payload[:MAX_SHOWN]
    cut = len(payload) > MAX_SHOWN
    if not cut:
        try:
            return {"json": json.loads(payload)}
        except ValueError:
            pass
    try:
        return {"text": shown.decode(), "cut": cut}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(shown).decode(), "cut": cut}


def event_json(event: Event) -> Json:
    body: dict[str, Json] = {"kind": event.kind}
    for f in fields(event):
        value = getattr(event, f.name)
        if f.name in ("payload", "result") and isinstance(value, bytes):
            body["size" if f.name == "payload" else "result_size"] = len(value)
            body[f.name] = payload_json(value)
        else:
            body[f.name] = printable(value)
    if isinstance(event, MessageSeen | Invocation):
        return body
    return body


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
