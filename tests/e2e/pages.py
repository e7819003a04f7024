"""The steps every chat test takes: open a room, say something, take a screenshot into
test-artifacts/ (git-ignored; CI keeps it)."""

from __future__ import annotations

from playwright.async_api import Browser, Page, expect

from emulator.config import REPO_ROOT
from emulator.pytest_plugin import EmulatorHandle

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO_ROOT / "test-artifacts"
TIMEOUT_MS = 20_000
DESKTOP = {"width": 1280, "height": 800}
MOBILE = {"width": 375, "height": 667}


async def open_page(
    browser: Browser, em: EmulatorHandle, path: str, viewport: dict[str, int] | None = None
) -> Page:
    """A page in its own context (its own localStorage), not yet waited on."""
    context = await browser.new_context(viewport=viewport or DESKTOP)  # type: ignore[arg-type]
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    await page.goto(f"{em.http_url}/{path}")
    return page


async def open_room(
    browser: Browser,
    em: EmulatorHandle,
    room: str,
    name: str,
    viewport: dict[str, int] | None = None,
) -> Page:
    """A page in ``room``, connected, its backlog loaded and ``name`` shown online."""
    page = await open_page(browser, em, room, viewport)
    await expect(page.get_by_test_id("connection-status")).to_have_text("connected")
    await expect(page.get_by_test_id("empty-state")).not_to_have_text("Loading messages…")
    name_input = page.get_by_test_id("name-input")
    await name_input.fill(name)
    await name_input.dispatch_event("change")
    await expect(page.get_by_test_id("presence-list")).to_contain_text(name)
    return page


async def say(page: Page, text: str) -> None:
    await page.get_by_test_id("message-input").fill(text)
    await page.get_by_test_id("send-button").click()


async def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / name))
