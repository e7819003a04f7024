"""Chromium for the browser tests (Debian's, driven by Playwright)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, async_playwright

from emulator.pytest_plugin import EmulatorHandle

from .pages import CHROMIUM


@pytest.fixture
async def browser(iot_emulator: EmulatorHandle) -> AsyncIterator[Browser]:
    """Chromium, closed before the emulator stops: an emulator stopped while pages are
    still connected waits about 4 s for their WebSockets."""
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            yield browser
        finally:
            await browser.close()
