"""The live console in a real browser (Debian's Chromium driven by Playwright) against a
real emulator: its stream, the message -> rules -> actions -> function click-through, the
try-it form and the policy denials."""

from __future__ import annotations

import uuid

import pytest
from playwright.async_api import Browser, Page, expect

from emulator.config import REPO_ROOT
from emulator.pytest_plugin import EmulatorHandle

from .pages import DESKTOP, TIMEOUT_MS, open_page, open_room, say, screenshot

CHAT_RULES = str(REPO_ROOT / "rules")
FAILING_RULES = str(REPO_ROOT / "tests" / "e2e" / "console_rules")
REFUSING_POLICY = str(REPO_ROOT / "tests" / "e2e" / "refusing_policy.json")

pytestmark = [pytest.mark.browser]


async def open_console(browser: Browser, em: EmulatorHandle) -> Page:
    """The console, its stream open (the hub has a viewer: events are reported from now)."""
    page = await open_page(browser, em, "console", DESKTOP)
    await expect(page.get_by_test_id("stream-status")).to_have_text("live")
    return page


def message_row(page: Page, topic: str, text: str | None = None):  # type: ignore[no-untyped-def]
    rows = page.get_by_test_id("message-row").filter(has=page.locator("td.topic", has_text=topic))
    return rows if text is None else rows.filter(has_text=text)


@pytest.mark.iot_emulator(rules=[CHAT_RULES], backend="moto")
async def test_chat_message_its_rules_dynamodb_item_and_lambda_log(
    iot_emulator: EmulatorHandle, browser: Browser
) -> None:
    console = await open_console(browser, iot_emulator)
    room = f"room-{uuid.uuid4().hex[:6]}"
    chat = await open_room(browser, iot_emulator, room, "alice")
    await say(chat, "hello console")
    await expect(chat.get_by_test_id("message-list")).to_contain_text("hello console")

    # The browser's message on chat/out: ChatRepublish passed, ChatLambda's WHERE did not.
    row = message_row(console, "chat/out").filter(has_text="mqtt-ws").last
    await expect(row).to_be_visible()
    await console.get_by_test_id("filter-topic").fill("chat/out")
    await message_row(console, "chat/out").first.click()
    detail = console.get_by_test_id("message-detail")
    await expect(detail.get_by_test_id("message-payload")).to_contain_text("hello console")
    republish = detail.locator('[data-testid="rule-evaluation"][data-rule="ChatRepublish"]')
    await expect(republish).to_contain_text("WHERE passed")
    await expect(republish.get_by_test_id("rule-output")).to_contain_text('"clientId"')
    await expect(republish.get_by_test_id("action-outcome")).to_contain_text(f"chat/pub/{room}")
    await expect(
        detail.locator('[data-testid="rule-evaluation"][data-rule="ChatLambda"]')
    ).to_contain_text("WHERE false")

    # Its republished message, then ChatStore's DynamoDB item.
    await detail.get_by_role("button", name="message #").last.click()
    await expect(detail).to_contain_text(f"chat/pub/{room}")
    store = detail.locator('[data-testid="rule-evaluation"][data-rule="ChatStore"]')
    stored = store.locator('[data-testid="action-outcome"][data-status="ok"]')
    await expect(stored).to_contain_text('"tableName": "chat"')
    await expect(stored).to_contain_text('"message": "hello console"')
    await expect(stored).to_contain_text(f'"room": "{room}"')
    await console.get_by_test_id("filter-topic").fill("")
    await screenshot(console, "console-messages.png")

    # The page's lifecycle event went to the chat function: its invocation and log line.
    await console.get_by_test_id("filter-topic").fill("$aws/events/presence/connected/+")
    await message_row(console, "$aws/events/presence/connected/").first.click()
    presence = detail.locator('[data-testid="rule-evaluation"][data-rule="ChatPresence"]')
    await expect(presence).to_contain_text("WHERE passed")
    await presence.get_by_test_id("invocation-link").first.click()
    functions = console.get_by_test_id("invocation-detail")
    await expect(functions).to_contain_text("rule ChatPresence")
    request_id = await functions.get_by_test_id("invocation-request-id").inner_text()
    logs = functions.get_by_test_id("invocation-logs")
    await expect(logs).to_contain_text("presence connected")
    await expect(logs).to_contain_text(request_id)
    # The page's request on chat/stream reached the function through the Kinesis mapping.
    invocations = console.get_by_test_id("invocation-list")
    await expect(invocations).to_contain_text("kinesis chat-stream")
    await screenshot(console, "console-functions.png")
    # ... and back to the message.
    await functions.get_by_role("button", name="message #").click()
    await expect(console.get_by_test_id("panel-messages")).to_be_visible()
    await expect(detail).to_contain_text("$aws/events/presence/connected/")


@pytest.mark.iot_emulator(rules=[FAILING_RULES], backend="moto")
async def test_action_error_and_error_action(
    iot_emulator: EmulatorHandle, browser: Browser
) -> None:
    console = await open_console(browser, iot_emulator)
    # Published from the console's own form, as client "sensor-7".
    await console.get_by_test_id("tab-try").click()
    await console.get_by_test_id("try-topic").fill("readings/sensor-7")
    await console.get_by_test_id("try-client").fill("sensor-7")
    await console.get_by_test_id("try-payload").fill('{"celsius": 21.5}')
    await console.get_by_test_id("try-publish").click()
    await expect(console.get_by_test_id("publish-result")).to_contain_text("Published")

    await console.get_by_test_id("tab-messages").click()
    await message_row(console, "readings/sensor-7").first.click()
    detail = console.get_by_test_id("message-detail")
    rule = detail.locator('[data-testid="rule-evaluation"][data-rule="StoreReadings"]')
    await expect(rule).to_contain_text("WHERE passed")
    failed = rule.locator('[data-testid="action-outcome"][data-status="failed"]')
    await expect(failed).to_contain_text("DynamoDBv2Action")
    await expect(failed.locator(".error")).to_contain_text("id")  # the missing key
    error_action = rule.get_by_test_id("error-action")
    await expect(error_action).to_contain_text("error action republish")
    await expect(error_action).to_contain_text('"failedAction": "DynamoDBv2Action"')
    await expect(rule).to_contain_text("errors/readings")  # the error action's republish
    await expect(message_row(console, "errors/readings")).to_have_count(1)
    await screenshot(console, "console-error-action.png")

    # The Rules tab: the disabled rule, and the one that did not compile with its diagnostic.
    await console.get_by_test_id("tab-rules").click()
    cards = console.get_by_test_id("rule-card")
    await expect(cards.filter(has_text="Paused")).to_contain_text("disabled")
    await expect(cards.filter(has_text="StoreReadings")).to_contain_text("failed 1")
    await expect(console.get_by_test_id("rule-diagnostics")).to_contain_text(
        "rule 'Broken': unknown function 'nosuchfunction'"
    )
    await expect(console.get_by_test_id("evaluation-list")).to_contain_text("StoreReadings")
    await screenshot(console, "console-rules.png")


@pytest.mark.iot_emulator(rules=[CHAT_RULES], backend="moto")
async def test_try_it_shows_a_rules_output_for_a_pasted_payload(
    iot_emulator: EmulatorHandle, browser: Browser
) -> None:
    console = await open_console(browser, iot_emulator)
    await console.get_by_test_id("tab-try").click()
    await console.get_by_test_id("try-mode-rule").check()
    await console.get_by_test_id("try-rule").fill(
        "ruleName: Shout\n"
        "sql: \"SELECT upper(message) AS shout, clientid() AS who FROM 'chat/out'"
        " WHERE room = '/lobby'\"\n"
        'awsIotSqlVersion: "2016-03-23"\n'
        "actions:\n"
        '  - republish: {topic: "shouts/${clientid()}"}\n'
    )
    await console.get_by_test_id("try-topic").fill("chat/out")
    await console.get_by_test_id("try-client").fill("tester")
    await console.get_by_test_id("try-payload").fill('{"room": "/lobby", "message": "psst"}')
    await console.get_by_test_id("try-run").click()
    result = console.get_by_test_id("try-rule-result")
    await expect(result).to_contain_text("Shout")
    await expect(result.get_by_test_id("try-output")).to_contain_text('"shout": "PSST"')
    await expect(result.get_by_test_id("try-output")).to_contain_text('"who": "tester"')
    await expect(result).to_contain_text('"topic": "shouts/tester"')
    await screenshot(console, "console-try-it.png")

    # The loaded rules, as `rules test` runs them; WHERE false: no match.
    await console.get_by_test_id("try-mode-loaded").check()
    await console.get_by_test_id("try-run").click()
    await expect(result.filter(has_text="ChatRepublish")).to_have_count(1)
    await console.get_by_test_id("try-payload").fill('{"room": "/a/b", "message": "x"}')
    await console.get_by_test_id("try-run").click()
    await expect(console.get_by_test_id("try-no-match")).to_be_visible()
    # Nothing was published by the dry runs.
    await console.get_by_test_id("tab-messages").click()
    await expect(message_row(console, "chat/out")).to_have_count(0)

    # Paused, the view holds what arrives; resumed, it shows it.
    await console.get_by_test_id("pause-button").click()
    await console.get_by_test_id("tab-try").click()
    await console.get_by_test_id("try-payload").fill('{"room": "/lobby", "message": "later"}')
    await console.get_by_test_id("try-publish").click()
    await expect(console.get_by_test_id("publish-result")).to_contain_text("Published")
    await console.get_by_test_id("tab-messages").click()
    await expect(console.get_by_test_id("paused-note")).to_contain_text("events held")
    await expect(message_row(console, "chat/out")).to_have_count(0)
    await console.get_by_test_id("pause-button").click()
    await expect(message_row(console, "chat/out")).to_have_count(1)
    await expect(message_row(console, "chat/pub/lobby")).to_have_count(1)
    await expect(console.get_by_test_id("paused-note")).to_be_hidden()


@pytest.mark.iot_emulator(rules=[CHAT_RULES], backend="moto", policies=[REFUSING_POLICY])
async def test_denied_subscribe_shows_the_deciding_statement(
    iot_emulator: EmulatorHandle, browser: Browser
) -> None:
    console = await open_console(browser, iot_emulator)
    client = await iot_emulator.mqtt_client("vault-peeker")
    granted = await client.subscribe("chat/pub/vault-1", 1)
    assert granted == [0x80]
    await console.get_by_test_id("tab-clients").click()
    denial = console.get_by_test_id("denial")
    await expect(denial).to_contain_text("iot:Subscribe")
    await expect(denial).to_contain_text("chat/pub/vault-1")
    await expect(denial).to_contain_text("vault-peeker")
    await expect(denial.get_by_test_id("denial-statement-label")).to_contain_text("statement")
    statement = denial.get_by_test_id("denial-statement")
    await expect(statement).to_contain_text('"Effect": "Deny"')
    await expect(statement).to_contain_text("topicfilter/chat/pub/vault-*")
    await expect(
        console.get_by_test_id("client-row").filter(has_text="vault-peeker")
    ).to_be_visible(timeout=TIMEOUT_MS)
    await screenshot(console, "console-clients.png")
