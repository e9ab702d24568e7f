"""
The sidebar on a live call (issue 11, items 1 and 2) in headless Chromium at
350 x 800 against the real service, the sandbox and the seed stories: what to
say and its Copy, the status said once, codes behind a details toggle, Copy
for every number an agent reads out, the return parcel apart, the action in
view without scrolling, and carrier failures in words.
Screenshots go to test-artifacts/ (CI keeps them).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.conftest import AGENT
from tests.tracksvc.test_browser import base_url, shot, watch_errors
from tests.tracksvc.test_browser import browser as browser  # the fixture, shared
from tests.tracksvc.test_browser import stories as stories  # the fixture, shared
from tracksvc.dev.seed import Story

pytestmark = pytest.mark.browser

#: The sidebar as a helpdesk embeds it.
VIEWPORT = {"width": 350, "height": 800}


@pytest.fixture
async def context(browser: Browser, service: Any) -> AsyncIterator[BrowserContext]:
    """A 350 x 800 browser context that may read the clipboard (to check what Copy copied)."""
    made = await browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    await made.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url(service))
    yield made
    await made.close()


async def open_sidebar(context: BrowserContext, service: Any, reference: str) -> tuple[Page, list[str]]:
    """The sidebar with ``reference`` looked up (handed over in the fragment, as a helpdesk does)."""
    page = await context.new_page()
    errors = watch_errors(page)
    await page.goto(f"{base_url(service)}/ui/sidebar#key=agent-key&ref={reference}")
    await expect(page.locator(".status-card")).to_be_visible()
    return page, errors


async def agent_view(service: Any, reference: str) -> Any:
    response = await service.get(f"/v1/track/{reference}", headers=AGENT)
    assert response.status == 200
    return await response.json()


async def visible_text(page: Page) -> str:
    """The result's text as shown: closed toggles' contents left out."""
    text: str = await page.locator("#result").inner_text()
    return text


async def clipboard(page: Page) -> str:
    text: str = await page.evaluate("navigator.clipboard.readText()")
    return text


async def test_what_to_say_is_under_what_to_do_and_copies(
    context: BrowserContext, service: Any, stories: dict[str, Story]
) -> None:
    """W2001002: the customer message under the advice; Copy puts exactly it on the clipboard."""
    view = await agent_view(service, "W2001002")
    page, errors = await open_sidebar(context, service, "W2001002")
    advice, say = page.locator(".advice"), page.locator(".say")
    await expect(say.locator("h2")).to_have_text("What to say")
    await expect(say.locator(".say-text")).to_have_text(view["customer_message"])
    advice_box, say_box = await advice.bounding_box(), await say.bounding_box()
    assert advice_box is not None
    assert say_box is not None
    assert say_box["y"] >= advice_box["y"] + advice_box["height"], "What to say comes right under What to do"
    button = say.locator("button.copy")
    await expect(button).to_have_attribute("aria-label", "Copy what to say")
    await button.click()
    await expect(button).to_have_text("Copied")
    assert await clipboard(page) == view["customer_message"]
    await expect(page.locator("#announce")).to_have_text("What to say copied.")
    await page.screenshot(path=shot("sidebar-what-to-say"))
    assert errors == []


async def test_status_once_in_words_and_codes_behind_the_details_toggle(
    context: BrowserContext, service: Any, stories: dict[str, Story]
) -> None:
    """The status words appear once; not_tendered, shp-... and carrier codes only once the toggle opens."""
    page, errors = await open_sidebar(context, service, "W2001002")
    shown = await visible_text(page)
    assert shown.count("Never handed to the carrier") == 1, shown
    assert "Never scanned by the carrier" not in shown, "the flag that repeats the status is not shown"
    for code in ("not_tendered", "shp-2001002-1", "order_number"):
        assert code not in shown, code
    details = page.locator("details.support")
    await expect(details).not_to_have_attribute("open", "")
    await expect(details.locator("dl")).to_be_hidden()
    await details.locator("summary").click()
    await expect(details).to_have_attribute("open", "")
    await expect(details.locator("dl")).to_contain_text("not_tendered")
    await expect(details.locator("dl")).to_contain_text("shp-2001002-1")
    assert "null" not in await visible_text(page)
    await page.screenshot(path=shot("sidebar-details-open"), full_page=True)
    assert errors == []


async def test_every_number_to_read_out_has_copy_and_the_return_is_apart(
    context: BrowserContext, service: Any, stories: dict[str, Story]
) -> None:
    """W2001003: Copy for the new order, both tracking numbers and the RMA; the return in its own section."""
    story = stories["replaced-order"]
    outbound, ret = story.shipments
    page, errors = await open_sidebar(context, service, story.reference)
    await expect(page.locator(".status-card")).to_have_attribute("data-status", "in_transit")
    copies = {
        "S-4477-0192": "Copy new order number S-4477-0192",
        outbound.tracking_number: f"Copy tracking number {outbound.tracking_number}",
        ret.tracking_number: f"Copy return tracking number {ret.tracking_number}",
        "RMA-88123": "Copy RMA number RMA-88123",
    }
    for number, label in copies.items():
        button = page.locator(f'button.copy[data-copy="{number}"]')
        await expect(button).to_have_count(1)
        await expect(button).to_have_attribute("aria-label", label)
    await page.locator('button.copy[data-copy="RMA-88123"]').click()
    assert await clipboard(page) == "RMA-88123"
    await page.locator('button.copy[data-copy="S-4477-0192"]').click()
    assert await clipboard(page) == "S-4477-0192"

    going, coming = page.locator(".parcels-outbound"), page.locator(".parcels-return")
    await expect(going.locator(".shipment")).to_have_count(1)
    await expect(coming.locator(".shipment")).to_have_count(1)
    await expect(going).to_contain_text(outbound.tracking_number)
    await expect(coming).to_contain_text(ret.tracking_number)
    await expect(coming).to_contain_text("RMA-88123")
    await expect(coming.locator("h2")).to_contain_text("Return parcel: coming back to us")
    await expect(going).not_to_contain_text(ret.tracking_number)
    going_box, coming_box = await going.bounding_box(), await coming.bounding_box()
    assert going_box is not None
    assert coming_box is not None
    assert coming_box["y"] >= going_box["y"] + going_box["height"], "return after outbound"
    style = await coming.evaluate("el => getComputedStyle(el).borderTopStyle")
    assert style == "dashed", "the return section is marked apart"
    await page.screenshot(path=shot("sidebar-replaced-return"), full_page=True)
    assert errors == []


@pytest.mark.parametrize(
    ("key", "status"),
    [("ups-17-days", "not_tendered"), ("replaced-order", "in_transit"), ("brooklyn-park", "not_tendered")],
)
async def test_the_action_fits_in_350_by_800_without_scrolling(
    context: BrowserContext, service: Any, stories: dict[str, Story], key: str, status: str
) -> None:
    """Not-tendered, re-placed, internal-mismatch stories: What to do and What to say in the first screen."""
    page, errors = await open_sidebar(context, service, stories[key].reference)
    await expect(page.locator(".status-card")).to_have_attribute("data-status", status)
    assert await page.evaluate("window.scrollY") == 0
    for block in (".advice", ".say"):
        box = await page.locator(block).bounding_box()
        assert box is not None
        assert box["y"] >= 0
        assert box["y"] + box["height"] <= VIEWPORT["height"], (block, box)
    await page.screenshot(path=shot(f"sidebar-fit-{key}"))
    assert errors == []


async def test_a_carrier_failure_reads_as_words_with_the_raw_reason_for_support(
    context: BrowserContext, service: Any, stories: dict[str, Story]
) -> None:
    """W3000012 (broken JSON): a sentence in What to do, no parser text on the page until support opens it."""
    page, errors = await open_sidebar(context, service, stories["status-usps-malformed"].reference)
    await expect(page.locator(".status-card")).to_have_attribute("data-status", "unknown")
    await expect(page.locator(".advice")).to_contain_text(
        "USPS's tracking service sent an answer tracksvc could not read; asked at"
    )
    shown = await visible_text(page)
    for raw in ("JSON", "char ", "line 1", "HTTP", "Last event", "(live)"):
        assert raw not in shown, raw
    assert shown.count("asked at") == 1, "the failure is said once"
    details = page.locator("details.support")
    await details.locator("summary").click()
    await expect(details.locator("dl")).to_contain_text("malformed JSON")
    await expect(details.locator("dl")).to_contain_text("malformed at")
    await page.screenshot(path=shot("sidebar-carrier-failure"), full_page=True)
    assert errors == []


async def test_a_carrier_notice_that_is_no_event_is_said_once(
    context: BrowserContext, service: Any, stories: dict[str, Story]
) -> None:
    """W2001006: USPS's "not yet available" is its notice, once; no 'Last event', no 'no events' beside it."""
    page, errors = await open_sidebar(context, service, stories["usps-not-yet-available-old"].reference)
    await expect(page.locator(".status-card")).to_have_attribute("data-status", "not_tendered")
    notice = page.locator(".carrier-notice")
    await expect(notice).to_have_text(
        "No scans yet. USPS says: “A status update is not yet available on your package.”"
    )
    shown = await visible_text(page)
    assert shown.count("not yet available") == 1, shown
    for noise in ("Last event", "No carrier events yet", "Informed Delivery", "12:"):
        assert noise not in shown, noise
    await page.screenshot(path=shot("sidebar-carrier-notice"))
    assert errors == []
