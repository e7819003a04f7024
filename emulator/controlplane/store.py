"""What the control plane keeps in the data directory: ``iot.json`` (certificates without
their private keys, as AWS keeps none; policies and their versions; things; attachments;
the API's topic rules). Written whole after every request that changed something
(``files.write_atomically``), read before the listeners open. A file that cannot be read
is moved aside (``iot.json.unreadable``), logged, and the control plane starts empty.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from emulator.controlplane.models import (
    Certificate,
    Policy,
    PolicyVersion,
    Registry,
    Thing,
)
from emulator.controlplane.topic_rules import TopicRules
from emulator.files import write_atomically
from emulator.identity.x509 import load_certificate

log = logging.getLogger(__name__)

FILE_NAME = "iot.json"
VERSION = 1
Json = Any


def registry_json(registry: Registry) -> Json:
    """The registry as the file keeps it."""
    return {
        "certificates": [
            {
                "id": c.certificate_id,
                "pem": c.pem,
                "status": c.status,
                "created": c.created_ms,
                "modified": c.modified_ms,
                "ca": c.ca_certificate_id,
            }
            for c in registry.certificates.values()
        ],
        "policies": [
            {
                "name": p.name,
                "default": p.default_version,
                "next": p.next_version,
                "created": p.created_ms,
                "modified": p.modified_ms,
                "versions": [
                    {"id": v.version_id, "document": v.document, "created": v.created_ms}
                    for v in p.versions.values()
                ],
            }
            for p in registry.policies.values()
        ],
        "things": [
            {
                "name": t.name,
                "id": t.thing_id,
                "type": t.type_name,
                "attributes": dict(t.attributes),
                "version": t.version,
                "billingGroup": t.billing_group,
            }
            for t in registry.things.values()
        ],
        "targets": {name: sorted(t) for name, t in registry.targets.items() if t},
        "thingPrincipals": {n: dict(p) for n, p in registry.thing_principals.items() if p},
    }


def load_registry(registry: Registry, data: Json) -> None:
    """Replace the registry's records with saved ones (``registry_json``'s shape)."""
    registry.certificates.clear()
    for c in data.get("certificates", []):
        cert = load_certificate(c["pem"])
        registry.certificates[c["id"]] = Certificate(
            c["id"],
            registry.arn("cert", c["id"]),
            c["pem"],
            c["status"],
            c["created"],
            c["modified"],
            c.get("ca"),
            int(cert.not_valid_before_utc.timestamp() * 1000),
            int(cert.not_valid_after_utc.timestamp() * 1000),
        )
    registry.policies.clear()
    for p in data.get("policies", []):
        versions = {
            v["id"]: PolicyVersion(v["id"], v["document"], v["created"]) for v in p["versions"]
        }
        registry.policies[p["name"]] = Policy(
            p["name"],
            registry.arn("policy", p["name"]),
            versions,
            p["default"],
            p["created"],
            p["modified"],
            p["next"],
        )
    registry.things.clear()
    for t in data.get("things", []):
        registry.things[t["name"]] = Thing(
            t["name"],
            t["id"],
            registry.arn("thing", t["name"]),
            t.get("type"),
            dict(t.get("attributes") or {}),
            int(t.get("version", 1)),
            t.get("billingGroup"),
        )
    registry.targets = {n: set(t) for n, t in data.get("targets", {}).items()}
    registry.thing_principals = {n: dict(p) for n, p in data.get("thingPrincipals", {}).items()}
    registry.reloaded()


class ControlPlaneStore:
    """The registry and the API's rules in ``directory`` (None: kept in memory only)."""

    def __init__(self, registry: Registry, rules: TopicRules, directory: Path | None) -> None:
        self.registry = registry
        self.rules = rules
        self.path = directory / FILE_NAME if directory is not None else None
        self.dirty = False

    def mark(self) -> None:
        self.dirty = True

    def load(self) -> None:
        path = self.path
        if path is None or not path.is_file():
            return
        try:
            data = json.loads(path.read_text())
            load_registry(self.registry, data.get("registry") or {})
            problems = self.rules.load_json(data.get("rules") or [])
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            aside = path.with_name(path.name + ".unreadable")
            log.error("%s cannot be read (%s); moved to %s, starting empty", path, exc, aside)
            path.replace(aside)
            return
        for problem in problems:
            log.error("%s: %s", path, problem)
        log.info(
            "control plane loaded from %s: %d certificates, %d policies, %d things, %d rules",
            path,
            len(self.registry.certificates),
            len(self.registry.policies),
            len(self.registry.things),
            len(self.rules.rules),
        )

    def text(self) -> str:
        data = {
            "version": VERSION,
            "registry": registry_json(self.registry),
            "rules": self.rules.to_json(),
        }
        return json.dumps(data, indent=1, sort_keys=True)

    async def save_if_dirty(self) -> None:
        """Write the file now if a request changed something (off the event loop)."""
        if not self.dirty or self.path is None:
            self.dirty = False
            return
        self.dirty = False
        await asyncio.to_thread(write_atomically, self.path, self.text())
