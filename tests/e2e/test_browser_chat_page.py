"""The chat page as people expect a chat to be (issue 17): a list that scrolls and stays at
the newest message, own messages and own name marked, a layout that works at 375 px,
visible errors, room names decoded and checked, dates, bidi text isolated. Screenshots go
to test-artifacts/ at desktop and mobile sizes."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from typing import Any

import pytest
from playwright.async_api import Browser, Locator, Page, expect

from emulator.config import REPO_ROOT
from emulator.pytest_plugin import EmulatorHandle

from .pages import DESKTOP, MOBILE, open_page, open_room, say, screenshot

# Denies subscribing to rooms vault-* and receiving from rooms mute-*.
REFUSING_POLICY = REPO_ROOT / "tests" / "e2e" / "refusing_policy.json"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.iot_emulator(
        rules=[str(REPO_ROOT / "rules")], backend="moto", policies=[str(REFUSING_POLICY)]
    ),
]


def new_room() -> str:
    return f"room-{uuid.uuid4().hex[:6]}"


async def feed(em: EmulatorHandle, room: str, texts: list[str], name: str = "feeder") -> str:
    """Messages sent through the chat flow (chat/out, as a page sends them) by another
    client; returns that client's ID."""
    client = await em.mqtt_client()
    await asyncio.gather(
        *(
            client.publish(
                "chat/out", json.dumps({"room": f"/{room}", "message": t, "name": name}), qos=1
            )
            for t in texts
        )
    )
    return client.client_id


async def publish_as_rule(em: EmulatorHandle, room: str, **body: Any) -> None:
    """A message on chat/pub/<room> as ChatRepublish makes it (the data plane may publish
    there; a page may not), with a timestamp of our choosing."""
    iot = em.boto3_client("iot-data")
    payload = json.dumps({"room": f"/{room}", **body})
    await asyncio.to_thread(iot.publish, topic=f"chat/pub/{room}", qos=1, payload=payload)


async def scroll_top(scroller: Locator) -> float:
    return float(await scroller.evaluate("el => el.scrollTop"))


ME = '[data-testid="presence-list"] li.me'


async def fully_inside(page: Page, selector: str) -> bool:
    """The element's whole box is inside the viewport (not clipped at any edge). Measured
    in one evaluation: the presence list is redrawn whenever a list arrives."""
    return bool(
        await page.evaluate(
            """sel => { const r = document.querySelector(sel).getBoundingClientRect();
                return r.width > 0 && r.left >= 0 && r.top >= 0
                    && r.right <= innerWidth && r.bottom <= innerHeight; }""",
            selector,
        )
    )


def selector_of(name: str) -> str:
    return f'[data-testid="{name}"]'


async def test_list_scrolls_stays_at_newest_unless_scrolled_up_and_reload_starts_at_newest(
    iot_emulator: EmulatorHandle, browser: Browser
) -> None:
    room = new_room()
    page = await open_page(browser, iot_emulator, room)
    messages = page.get_by_test_id("message-list").locator("li.msg")
    scroller = page.get_by_test_id("message-scroller")
    empty = page.get_by_test_id("empty-state")
    # The backlog comes through Kinesis (a batching window of 1 s): loading until it does.
    await expect(empty).to_have_text("Loading messages…")
    await expect(empty).to_have_class("empty loading")
    await expect(empty).to_have_text("No messages in /" + room + " yet. Say hello!")

    await feed(iot_emulator, room, [f"line {i:02}" for i in range(40)])
    await expect(messages).to_have_count(40)
    assert await scroller.evaluate("el => el.scrollHeight > el.clientHeight")  # it overflows
    await expect(messages.last).to_contain_text("line 39")
    await expect(messages.last).to_be_in_viewport()
    assert await fully_inside(page, selector_of("send-button"))
    await expect(page.get_by_test_id("empty-state")).to_be_hidden()

    # Scrolled up to read: a new message does not move the view, a cue says it came.
    await scroller.evaluate("el => { el.scrollTop = 0; }")
    await expect(page.get_by_test_id("new-messages")).to_be_hidden()
    await feed(iot_emulator, room, ["arrived while reading"])
    await expect(messages).to_have_count(41)
    cue = page.get_by_test_id("new-messages")
    await expect(cue).to_be_visible()
    await expect(cue).to_contain_text("1 new message")
    assert await scroll_top(scroller) == 0
    await expect(messages.first).to_be_in_viewport()
    await expect(messages.last).not_to_be_in_viewport()
    await screenshot(page, "chat-desktop-scrolled-up.png")
    await cue.click()
    await expect(messages.last).to_be_in_viewport()
    await expect(cue).to_be_hidden()

    # After a reload the backlog opens at its newest message, not its oldest.
    await page.reload()
    await expect(page.get_by_test_id("connection-status")).to_have_text("connected")
    await expect(messages).to_have_count(41)  # none lost to a key collision in the table
    await expect(messages.last).to_contain_text("arrived while reading")
    await expect(messages.last).to_be_in_viewport()
    await expect(messages.first).not_to_be_in_viewport()
    await screenshot(page, "chat-desktop.png")


async def test_own_messages_and_own_name_are_marked_also_after_reload(
    iot_emulator: EmulatorHandle, browser: Browser
) -> None:
    room = new_room()
    page = await open_room(browser, iot_emulator, room, "ann")
    messages = page.get_by_test_id("message-list").locator("li.msg")
    await say(page, "from me")
    await feed(iot_emulator, room, ["from someone else"], name="ann")  # same name, not me
    await expect(messages).to_have_count(2)
    await expect(messages.filter(has_text="from me")).to_have_class("msg own")
    await expect(messages.filter(has_text="from someone else")).to_have_class("msg")
    me = page.get_by_test_id("presence-list").locator("li.me")
    await expect(me).to_have_text("ann (you)")
    assert await me.get_attribute("data-client-id") == await page.evaluate("window.chatClientId")

    # A reload is a new client ID; the messages sent before are still this browser's.
    await page.reload()
    await expect(messages).to_have_count(2)
    await expect(messages.filter(has_text="from me")).to_have_class("msg own")
    await expect(messages.filter(has_text="from someone else")).to_have_class("msg")


async def test_mobile_layout_keeps_send_visible_and_the_online_list_reachable(
    iot_emulator: EmulatorHandle, browser: Browser
) -> None:
    room = new_room()
    page = await open_room(browser, iot_emulator, room, "ann", viewport=MOBILE)
    await feed(iot_emulator, room, [f"a message from the feeder, number {i}" for i in range(25)])
    messages = page.get_by_test_id("message-list").locator("li.msg")
    await expect(messages).to_have_count(25)
    await expect(messages.last).to_be_in_viewport()
    for control in ("send-button", "message-input", "name-input", "connection-status"):
        assert await fully_inside(page, selector_of(control)), control
    box = await page.get_by_test_id("message-input").bounding_box()
    assert box is not None and box["width"] >= 120  # room to type
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await screenshot(page, "chat-mobile.png")

    toggle = page.get_by_test_id("online-toggle")
    await expect(toggle).to_contain_text("1")
    await toggle.click()
    me = page.get_by_test_id("presence-list").locator("li.me")
    await expect(me).to_be_visible()
    assert await fully_inside(page, ME)
    await screenshot(page, "chat-mobile-online.png")
    await toggle.click()
    await expect(me).to_be_hidden()
    await toggle.click()
    await expect(me).to_be_visible()
    await page.get_by_test_id("message-scroller").click()  # a tap on the messages closes it
    await expect(me).to_be_hidden()


async def test_a_refused_subscription_is_shown_not_connected(
    iot_emulator: EmulatorHandle, browser: Browser
) -> None:
    page = await open_page(browser, iot_emulator, "vault-1")  # the policy denies vault-*
    await expect(page.get_by_test_id("connection-status")).to_have_text("not joined")
    banner = page.get_by_test_id("error-banner")
    await expect(banner).to_be_visible()
    await expect(banner).to_contain_text("refused the subscription to chat/pub/vault-1")
    await expect(page.get_by_test_id("send-button")).to_be_disabled()
    await expect(page.get_by_test_id("empty-state")).to_contain_text("Not subscribed")
    await screenshot(page, "chat-subscribe-refused.png")
    await page.set_viewport_size(MOBILE)  # type: ignore[arg-type]
    assert await fully_inside(page, selector_of("connection-status"))
    await screenshot(page, "chat-subscribe-refused-mobile.png")


async def test_a_message_that_never_reaches_the_room_is_reported(
    iot_emulator: EmulatorHandle, browser: Browser
) -> None:
    context = await browser.new_context(viewport=DESKTOP)  # type: ignore[arg-type]
    await context.add_init_script("window.chatEchoWaitMs = 1000")  # not 10 s
    page = await context.new_page()
    await page.goto(f"{iot_emulator.http_url}/mute-1")  # the policy denies receiving from it
    await expect(page.get_by_test_id("connection-status")).to_have_text("connected")
    # The backlog first (it comes on chat/in/<clientId>, which may be received).
    await expect(page.get_by_test_id("empty-state")).to_contain_text("No messages")
    await say(page, "hello?")
    banner = page.get_by_test_id("error-banner")
    await expect(banner).to_contain_text("“hello?” has not reached the room")
    await expect(page.get_by_test_id("message-list").locator("li.msg")).to_have_count(0)


async def test_a_dropped_connection_is_shown_until_the_page_is_back(
    iot_emulator: EmulatorHandle, browser: Browser
) -> None:
    room = new_room()
    page = await open_room(browser, iot_emulator, room, "ann")
    await say(page, "before")
    messages = page.get_by_test_id("message-list").locator("li.msg")
    await expect(messages).to_have_count(1)
    # The banner shows for as long as the page is away: watch for it on every frame.
    shown = asyncio.ensure_future(
        page.wait_for_function(
            """() => document.getElementById("status").textContent === "reconnecting"
                && !document.getElementById("error").hidden
                && document.getElementById("error").textContent.includes("Disconnected")
                && document.getElementById("send").disabled""",
            polling="raf",
        )
    )
    # A client taking over the page's client ID disconnects the page, as AWS IoT does.
    await iot_emulator.mqtt_client(await page.evaluate("window.chatClientId"))
    await shown
    await expect(page.get_by_test_id("connection-status")).to_have_text("connected")
    await expect(page.get_by_test_id("error-banner")).to_be_hidden()
    await say(page, "after")
    await expect(messages).to_have_count(2)  # the backlog sent again is not shown twice


async def test_room_names_are_decoded_and_names_topics_cannot_carry_are_explained(
    iot_emulator: EmulatorHandle, browser: Browser
) -> None:
    page = await open_room(browser, iot_emulator, "my%20room", "ann")
    await expect(page.get_by_test_id("room-name")).to_have_text("/my room")
    await say(page, "spaces are fine")
    await expect(page.get_by_test_id("message-list").locator("li.msg")).to_have_count(1)

    cases = {
        "a+b": "“+” or “#”",
        "a%23b": "“+” or “#”",
        "lobby/sub": "cannot contain “/”",
        "x" * 250: "too long",
        "%E0%A4%A": "percent-encoding",
    }
    for path, reason in cases.items():
        response = await page.goto(f"{iot_emulator.http_url}/{path}")
        assert response is not None and response.status == 200, path
        banner = page.get_by_test_id("error-banner")
        await expect(banner).to_contain_text("cannot be a chat room", timeout=5000)
        await expect(banner).to_contain_text(reason)
        await expect(page.get_by_test_id("connection-status")).to_have_text("not a room")
    # A way on: the room the path starts with, when that is a room.
    for path, way in (("lobby/sub", "/lobby"), ("my%20room/x", "/my room"), ("a+b/c", "/lobby")):
        await page.goto(f"{iot_emulator.http_url}/{path}")
        await expect(page.get_by_test_id("error-banner").locator("a")).to_have_text(f"Go to {way}")
    await page.goto(f"{iot_emulator.http_url}/lobby/sub")
    await screenshot(page, "chat-not-a-room.png")


async def test_dates_bidi_values_and_long_names(
    iot_emulator: EmulatorHandle, browser: Browser
) -> None:
    room = new_room()
    long_name = "N" * 64
    page = await open_room(browser, iot_emulator, room, long_name)
    messages = page.get_by_test_id("message-list")
    today = dt.datetime.now().replace(hour=0, minute=0, second=0, microsecond=0)
    yesterday_ms = int(today.timestamp() * 1000) - 60_000  # 23:59 yesterday, local time
    now_ms = int(dt.datetime.now().timestamp() * 1000)
    bodies: list[dict[str, Any]] = [
        {"message": "late last night", "name": "owl", "clientId": "x", "timestamp": yesterday_ms},
        {
            "message": "abc\u202edef\u2067 ghi",
            "name": "\u202eevil",
            "clientId": "y",
            "timestamp": now_ms,
        },
        {"message": {"text": "x", "n": 1.5}, "name": 7, "clientId": "z", "timestamp": now_ms + 1},
    ]
    for body in bodies:
        await publish_as_rule(iot_emulator, room, **body)
    rows = messages.locator("li")
    await expect(messages.locator("li.msg")).to_have_count(3)
    await expect(messages.locator("li.day")).to_have_text(["Yesterday", "Today"])
    await expect(rows.nth(0)).to_have_text("Yesterday")
    await expect(rows.nth(1)).to_contain_text("late last night")
    # Bidi controls are dropped and text is isolated, so nothing after it is reordered.
    bidi = messages.locator("li.msg", has_text="ghi")
    assert await bidi.locator(".text").text_content() == "abcdef ghi"
    assert await bidi.locator(".who").text_content() == "evil"
    assert await bidi.locator("bdi").count() == 2
    odd = messages.locator("li.msg", has_text="1.5")
    assert await odd.locator(".text").text_content() == '{"text":"x","n":1.5}'
    assert await odd.locator(".who").text_content() == "7"

    # A 64-character name without spaces stays inside the sidebar and the message list.
    panel = page.get_by_test_id("online-panel")
    await expect(panel.locator("li.me")).to_have_text(f"{long_name} (you)")
    assert await panel.evaluate("el => el.scrollWidth <= el.clientWidth")  # cut, with "…"
    await say(page, "a long name")
    own = messages.locator("li.msg.own")
    await expect(own).to_have_count(1)
    assert await own.evaluate("el => el.scrollWidth <= el.clientWidth")
    await screenshot(page, "chat-dates-bidi.png")


async def test_backlog_of_200_messages_of_2000_characters_opens_at_the_newest(
    iot_emulator: EmulatorHandle, browser: Browser
) -> None:
    room = new_room()
    filler = "聊" * 1990  # 2,000 characters, 6 KB of UTF-8
    dynamodb = iot_emulator.boto3_client("dynamodb")

    def stored() -> int:
        """Items in the room's partition, page by page (a Query reads 1 MB at a time)."""
        paginator = dynamodb.get_paginator("query")
        pages = paginator.paginate(
            TableName="chat",
            KeyConditionExpression="room = :r",
            ExpressionAttributeValues={":r": {"S": room}},
            Select="COUNT",
        )
        return sum(int(page["Count"]) for page in pages)

    async def until_stored(total: int) -> None:
        """The backlog is read from the table: wait until the store rule has written."""
        count = 0
        try:
            async with asyncio.timeout(20):
                while count < total:
                    count = await asyncio.to_thread(stored)
        except TimeoutError:
            pytest.fail(f"{count} of {total} messages stored")

    await feed(iot_emulator, room, [f"m{i:03} {filler}" for i in range(199)])
    await until_stored(199)
    # The last one alone, so that its timestamp is the newest (many above share a millisecond).
    await feed(iot_emulator, room, [f"m199 {filler}"])
    await until_stored(200)

    page = await open_page(browser, iot_emulator, room)
    messages = page.get_by_test_id("message-list").locator("li.msg")
    await expect(messages.last).to_contain_text("m199")
    await expect(messages.last).to_be_in_viewport()
    await expect(page.get_by_test_id("empty-state")).to_be_hidden()
    assert await page.get_by_test_id("error-banner").is_hidden()
    # The reply keeps the newest that fit in 128 KB; the page says the rest are not shown.
    omitted = page.get_by_test_id("message-list").locator("li.omitted")
    await expect(omitted).to_contain_text("earlier messages are not shown")
    assert await messages.count() < 200
    await expect(messages.first).not_to_be_in_viewport()
    await screenshot(page, "chat-backlog-200.png")
