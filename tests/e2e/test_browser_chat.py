"""The chat in a real browser: Debian's Chromium driven by Playwright, against the emulator
running the project's own rules, function and page."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from emulator.config import REPO_ROOT
from emulator.pytest_plugin import EmulatorHandle

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO_ROOT / "test-artifacts"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.iot_emulator(rules=[str(REPO_ROOT / "rules")], backend="moto"),
]
TIMEOUT_MS = 20_000


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
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


async def open_room(browser: Browser, em: EmulatorHandle, room: str, name: str) -> Page:
    context = await browser.new_context()
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    await page.goto(f"{em.http_url}/{room}")
    await expect(page.get_by_test_id("connection-status")).to_have_text(
        "connected", timeout=TIMEOUT_MS
    )
    name_input = page.get_by_test_id("name-input")
    await name_input.fill(name)
    await name_input.dispatch_event("change")
    await expect(page.get_by_test_id("presence-list")).to_contain_text(name, timeout=TIMEOUT_MS)
    return page


async def say(page: Page, text: str) -> None:
    await page.get_by_test_id("message-input").fill(text)
    await page.get_by_test_id("send-button").click()


async def test_two_pages_chat_and_other_rooms_see_nothing(
    browser: Browser, iot_emulator: EmulatorHandle
) -> None:
    room = f"room-{uuid.uuid4().hex[:6]}"
    alice = await open_room(browser, iot_emulator, room, "alice")
    bob = await open_room(browser, iot_emulator, room, "bob")
    other = await open_room(browser, iot_emulator, room + "-b", "carol")

    await say(alice, "hello bob")
    await expect(bob.get_by_test_id("message-list")).to_contain_text("hello bob")
    await say(bob, "hi alice")
    await expect(alice.get_by_test_id("message-list")).to_contain_text("hi alice")
    await expect(alice.get_by_test_id("message-list").locator("li")).to_have_count(2)

    # Room B: a message of its own arrives, none of room A's.
    await say(other, "anyone in b?")
    await expect(other.get_by_test_id("message-list").locator("li")).to_have_count(1)
    await expect(other.get_by_test_id("message-list")).not_to_contain_text("hello bob")

    # Both names online in room A; closing a page updates the list.
    await expect(alice.get_by_test_id("presence-list")).to_contain_text("bob")
    ARTIFACTS.mkdir(exist_ok=True)
    await alice.screenshot(path=str(ARTIFACTS / "chat.png"), full_page=True)
    await bob.context.close()
    await expect(alice.get_by_test_id("presence-list")).not_to_contain_text(
        "bob", timeout=TIMEOUT_MS
    )


async def test_reload_shows_backlog_and_script_is_text(
    browser: Browser, iot_emulator: EmulatorHandle
) -> None:
    room = f"room-{uuid.uuid4().hex[:6]}"
    page = await open_room(browser, iot_emulator, room, "mallory")
    evil = "<script>window.pwned = true</script><b>bold?</b>"
    await say(page, evil)
    await say(page, "second")
    messages = page.get_by_test_id("message-list")
    await expect(messages.locator("li")).to_have_count(2)
    await expect(messages).to_contain_text(evil)  # shown literally, as text
    assert await page.evaluate("window.pwned === undefined")
    assert await messages.locator("script, b").count() == 0

    await page.reload()
    await expect(page.get_by_test_id("connection-status")).to_have_text("connected")
    await expect(messages.locator("li")).to_have_count(2)
    await expect(messages.locator("li").first).to_contain_text(evil)
    await expect(page.get_by_test_id("name-input")).to_have_value("mallory")  # remembered per room


def test_screenshot_artifact_path_is_ignored_by_git() -> None:
    assert "test-artifacts/" in Path(REPO_ROOT / ".gitignore").read_text()
