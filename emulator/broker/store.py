"""The broker's lasting state on disk: loaded before the listeners open, saved while the
emulator runs (when it changed) and once more at a clean stop.

The value and its format are ``persistence.py``'s; this module owns the file, the timer
and the expiry timers of the sessions it loads. A save writes a temporary file next to the
real one and renames it over it, so a crash mid-save leaves the previous state whole. A
file that cannot be read is moved aside (``.unreadable``), logged, and the broker starts
empty rather than not at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from pathlib import Path
from typing import IO

from emulator.broker.broker import IoTBroker
from emulator.broker.persistence import SnapshotError, from_json, restore, snapshot, to_json
from emulator.clock import now_ms
from emulator.files import write_atomically
from emulator.tasks import cancel_and_wait

log = logging.getLogger(__name__)

FILE_NAME = "broker.json"
LOCK_NAME = ".lock"


class DataDirInUse(Exception):
    """Another emulator runs on this data directory: both would overwrite each other's."""


class BrokerStore:
    """Retained messages and persistent sessions of ``broker`` in ``directory``."""

    def __init__(
        self, broker: IoTBroker, directory: Path, interval: float, max_retained: int
    ) -> None:
        self.broker = broker
        self.path = directory / FILE_NAME
        self.interval = interval
        self.max_retained = max_retained
        self._saved_revision = -1
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._lock_file: IO[str] | None = None

    def lock(self) -> None:
        """Hold the data directory for this process, until ``release`` (or its exit); the
        emulator takes it first, before any backend reads or writes the directory."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._lock_file is not None:
            return
        f = open(self.path.parent / LOCK_NAME, "a+")  # held until release()
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise DataDirInUse(
                f"data directory {self.path.parent} is in use by another emulator ({holder}): "
                "stop it, or give this one another --data-dir (or --in-memory)"
            ) from None
        f.truncate(0)
        f.write(f"pid {os.getpid()}\n")
        f.flush()
        self._lock_file = f

    async def release(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()  # releases the lock
            self._lock_file = None

    async def load(self) -> None:
        """Restore the saved state, and start the expiry timers of its sessions."""
        try:
            text = await asyncio.to_thread(self.path.read_text, "utf-8")
        except FileNotFoundError:
            return
        try:
            saved = from_json(text)
        except SnapshotError as exc:
            aside = self.path.with_suffix(".unreadable")
            log.error("%s: %s; moved to %s, starting without it", self.path, exc, aside)
            with contextlib.suppress(OSError):
                os.replace(self.path, aside)
            return
        state = self.broker.state
        left = restore(state, saved, now_ms())
        for client_id, ms in left.items():
            self.broker.start_expiry(client_id, state.sessions[client_id].absences, ms / 1000)
        self._saved_revision = state.revision
        log.info(
            "loaded %d retained messages and %d persistent sessions from %s",
            len(saved.retained),
            len(left),
            self.path,
        )

    def start(self) -> None:
        self._task = asyncio.create_task(self._save_periodically())

    async def _save_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.save()
            except OSError as exc:
                log.error("cannot save the broker's state to %s: %s", self.path, exc)

    async def save(self, force: bool = False) -> None:
        """Write the state if it changed since the last save (or ``force``)."""
        async with self._lock:
            state = self.broker.state
            revision = state.revision
            if revision == self._saved_revision and not force:
                return
            now = now_ms()
            expires = {
                cid: now + int(left * 1000) for cid, left in self.broker.expiry_left().items()
            }
            expiry_ms = int(self.broker.settings.session_expiry * 1000)
            text = to_json(snapshot(state, now, expiry_ms, expires, self.max_retained))
            await asyncio.to_thread(write_atomically, self.path, text)
            self._saved_revision = revision

    async def stop(self) -> None:
        """The last save, after the broker closed every connection."""
        await cancel_and_wait(self._task)
        await self.save(force=True)
        log.info("saved the broker's state to %s", self.path)
