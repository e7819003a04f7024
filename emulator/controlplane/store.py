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

from emulator.controlplane.models import Registry
from emulator.controlplane.topic_rules import TopicRules
from emulator.files import write_atomically

log = logging.getLogger(__name__)

FILE_NAME = "iot.json"
VERSION = 1


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
            self.registry.load_json(data.get("registry") or {})
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
            "registry": self.registry.to_json(),
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
