"""The chat in a real browser: Debian's Chromium driven by Playwright, against the emulator
running the project's own rules, function and page."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from emulator.config import REPO_ROOT
from emulator.pytest_plugin import EmulatorHandle

from .pages import open_room, say, screenshot

pytestmark = [
    pytest.mark.browser,
    pytest.mark.iot_emulator(rules=[str(REPO_ROOT / "rules")], backend="moto"),
]


async def test_two_pages_chat_and_other_rooms_see_nothing(
    iot_emulator: EmulatorHandle, browser: Browser
) -> None:
    room = f"room-{uuid.uuid4().hex[:6]}"
    alice = await open_room(browser, iot_emulator, room, "alice")
    bob = await open_room(browser, iot_emulator, room, "bob")
    other = await open_room(browser, iot_emulator, room + "-b", "carol")

    await say(alice, "hello bob")
    await expect(bob.get_by_test_id("message-list")).to_contain_text("hello bob")
    await say(bob, "hi alice")
    await expect(alice.get_by_test_id("message-list")).to_contain_text("hi alice")
    await expect(alice.get_by_test_id("message-list").locator("li.msg")).to_have_count(2)

    # Room B: a message of its own arrives, none of room A's.
    await say(other, "anyone in b?")
    await expect(other.get_by_test_id("message-list").locator("li.msg")).to_have_count(1)
    await expect(other.get_by_test_id("message-list")).not_to_contain_text("hello bob")

    # Both names online in room A; closing a page updates the list.
    await expect(alice.get_by_test_id("presence-list")).to_contain_text("bob")
    # Alice saw bob arrive (under his first name, then renamed) and sees him leave.
    notices = alice.get_by_test_id("message-list").locator("li.event")
    await expect(notices.filter(has_text="joined")).to_have_count(1)
    await expect(notices.filter(has_text="is now bob")).to_have_count(1)
    await screenshot(alice, "chat.png")
    await bob.context.close()
    await expect(alice.get_by_test_id("presence-list")).not_to_contain_text("bob")
    await expect(notices.filter(has_text="bob left")).to_have_count(1)
    await expect(other.get_by_test_id("message-list").locator("li.event")).to_have_count(0)


async def test_reload_shows_backlog_and_script_is_text(
    iot_emulator: EmulatorHandle, browser: Browser
) -> None:
    room = f"room-{uuid.uuid4().hex[:6]}"
    page = await open_room(browser, iot_emulator, room, "mallory")
    evil = "<script>window.pwned = true</script><b>bold?</b>"
    await say(page, evil)
    await say(page, "second")
    messages = page.get_by_test_id("message-list")
    await expect(messages.locator("li.msg")).to_have_count(2)
    await expect(messages).to_contain_text(evil)  # shown literally, as text
    assert await page.evaluate("window.pwned === undefined")
    assert await messages.locator("script, b").count() == 0

    await page.reload()
    await expect(page.get_by_test_id("connection-status")).to_have_text("connected")
    await expect(messages.locator("li.msg")).to_have_count(2)
    await expect(messages.locator("li.msg").first).to_contain_text(evil)
    await expect(page.get_by_test_id("name-input")).to_have_value("mallory")  # remembered per room


def test_screenshot_artifact_path_is_ignored_by_git() -> None:
    assert "test-artifacts/" in Path(REPO_ROOT / ".gitignore").read_text()
