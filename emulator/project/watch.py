"""Hot reload of rule files: one task polls modification times once a second; a change
reloads the project, and a project with errors is reported and *not* applied, so the
previous good rules stay active."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from emulator.project.loader import rule_files
from emulator.project.model import Project
from emulator.tasks import cancel_and_wait

log = logging.getLogger(__name__)


def snapshot(paths: tuple[Path, ...]) -> dict[Path, float]:
    stamps: dict[Path, float] = {}
    for file in rule_files(paths):
        try:
            stamps[file] = file.stat().st_mtime_ns
        except OSError:
            continue
    for path in paths:  # a new file in a watched folder counts as a change too
        if path.is_dir():
            stamps[path] = float(len(list(path.iterdir())))
    return stamps


class RuleWatcher:
    def __init__(
        self,
        paths: tuple[Path, ...],
        load: Callable[[], Project],
        apply: Callable[[Project], None],
        interval: float = 1.0,
    ) -> None:
        self.paths = paths
        self.load = load
        self.apply = apply
        self.interval = interval
        self.reloads = 0
        self.rejected = 0
        self.changed = asyncio.Event()  # set after every reload attempt (tests wait on it)
        self._task: asyncio.Task[None] | None = None
        self._stamps = snapshot(paths)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="rules-watcher")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            stamps = await asyncio.to_thread(snapshot, self.paths)
            if stamps == self._stamps:
                continue
            self._stamps = stamps
            project = await asyncio.to_thread(self.load)
            if project.errors:
                self.rejected += 1
                for diagnostic in project.errors:
                    log.error("%s", diagnostic)
                log.error("rule files have errors; keeping the previous rules active")
            else:
                self.apply(project)
                self.reloads += 1
                log.info("rules reloaded: %d rules", len(project.rules))
            self.changed.set()
            self.changed.clear()

    async def wait_change(self) -> None:
        """Wait for the next reload attempt (applied or rejected)."""
        event = self.changed
        waiter = asyncio.ensure_future(event.wait())
        try:
            await waiter
        finally:
            waiter.cancel()
