"""
The pages in headless Chromium (Debian's, driven by Playwright) against the
real service on a loopback port, with the sandbox and the seed stories.
Screenshots go to test-artifacts/ (CI keeps them).
"""

from __future__ import annotations

import asyncio
import csv
import io
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect

from carriers.sandbox.scenarios import by_name
from tests.conftest import Sandbox
from tracksvc.core.models import Carrier
from tracksvc.dev.seed import Story, seed
from tracksvc.domain.records import ShipmentRecord
from tracksvc.registry.store import Registry

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SIDEBAR = {"width": 350, "height": 900}


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """A headless Chromium, closed after the test."""
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@pytest.fixture
async def stories(redis_client: aioredis.Redis) -> dict[str, Story]:
    """The seed stories in the registry, by key."""
    return {story.key: story for story in await seed(Registry(redis_client))}


def base_url(client: Any) -> str:
    """Where the test service listens (a real TCP port on 127.0.0.1)."""
    return str(client.make_url("")).rstrip("/")


def shot(name: str) -> str:
    """Path of a screenshot artifact."""
    ARTIFACTS.mkdir(exist_ok=True)
    return str(ARTIFACTS / f"{name}.png")


async def download_csv(page: Page, button: str) -> tuple[str, list[list[str]]]:
    """Click ``button`` and read the file it downloads as CSV: its suggested name and its rows."""
    async with page.expect_download() as info:
        await page.click(button)
    download = await info.value
    text = await asyncio.to_thread(Path(await download.path()).read_text)
    return download.suggested_filename, list(csv.reader(io.StringIO(text)))


def watch_errors(page: Page) -> list[str]:
    """Collect script errors and console errors of a page."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(f"console: {message.text}")

    page.on("console", console)
    return errors


async def focused(page: Page) -> dict[str, Any]:
    """What has keyboard focus, and whether its focus ring shows."""
    result: dict[str, Any] = await page.evaluate(
        """() => {
            const el = document.activeElement;
            const style = getComputedStyle(el);
            return {tag: el.tagName, id: el.id, label: el.getAttribute("aria-label") || "",
                    text: el.textContent.trim(), href: el.getAttribute("href") || "",
                    outline: style.outlineStyle + " " + style.outlineWidth};
        }"""
    )
    return result


async def test_sidebar_shows_a_pasted_order_not_tendered_with_advice(
    browser: Browser, service: Any, stories: dict[str, Story]
) -> None:
    """Paste the UPS order from 17 days ago: not_tendered in words and colour, the advice, the parcel."""
    shipment = stories["ups-17-days"].shipments[0]
    page = await browser.new_page(viewport=SIDEBAR)
    errors = watch_errors(page)
    await page.goto(f"{base_url(service)}/ui/sidebar#key=agent-key")
    assert "#" not in page.url
    assert "agent-key" not in page.url
    assert await page.evaluate("sessionStorage.getItem('tracksvc.key.agent')") == "agent-key"
    await expect(page.locator("#key-form")).to_be_hidden()

    await page.fill("#reference", " w2001002 ")
    await page.press("#reference", "Enter")
    card = page.locator(".status-card")
    await expect(card).to_have_attribute("data-status", "not_tendered")
    await expect(card).to_contain_text("Never handed to the carrier")
    await expect(card).not_to_contain_text("not_tendered")  # the code is behind "Details for support"
    await expect(card).to_have_class("status-card tone-bad")
    await expect(page.locator(".advice")).to_contain_text("UPS never received this package")
    await expect(card.locator(".summary")).to_contain_text("17 days ago")
    parcel = page.locator(".shipment")
    await expect(parcel.locator(".number")).to_have_text(shipment.tracking_number)
    ups_page = f"https://www.ups.com/track?tracknum={shipment.tracking_number}"
    await expect(parcel.locator(".track-link")).to_have_attribute("href", ups_page)
    await expect(parcel.locator(".last-event")).to_contain_text("ago")
    await expect(parcel.locator(".freshness")).to_contain_text("as of just now")
    await expect(page.locator("#announce")).to_contain_text("Never handed to the carrier")
    assert "null" not in await page.locator("#result").inner_text()
    await page.locator(".timeline summary").click()
    await expect(page.locator(".timeline li")).to_have_count(1)
    await page.screenshot(path=shot("sidebar-not-tendered"), full_page=True)
    assert errors == []


async def test_sidebar_is_usable_with_the_keyboard_alone(
    browser: Browser, service: Any, stories: dict[str, Story]
) -> None:
    """Tab to the input, type, Enter; Tab to Copy, Enter copies; Tab to the carrier link and the timeline."""
    number = stories["brooklyn-park"].reference
    base = base_url(service)
    context = await browser.new_context(viewport=SIDEBAR)
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page = await context.new_page()
    errors = watch_errors(page)
    await page.goto(f"{base}/ui/sidebar#key=agent-key")

    await page.keyboard.press("Tab")
    assert (await focused(page))["id"] == "reference"
    await page.keyboard.type(number)
    await page.keyboard.press("Enter")
    await expect(page.locator(".status-card")).to_have_attribute("data-status", "not_tendered")
    await expect(page.locator(".flags")).to_contain_text("Our system says shipped")

    await page.keyboard.press("Tab")
    assert (await focused(page))["id"] == "lookup-button"
    await page.keyboard.press("Tab")
    assert (await focused(page))["label"] == "Copy order number W2001001"
    await page.keyboard.press("Tab")
    assert (await focused(page))["label"] == "Copy what to say"
    await page.keyboard.press("Tab")
    copy = await focused(page)
    assert copy["label"] == f"Copy tracking number {number}"
    assert copy["outline"] == "solid 3px", "the focus ring must show"
    await page.keyboard.press("Enter")
    await expect(page.locator(f'button.copy[data-copy="{number}"]')).to_have_text("Copied")
    assert await page.evaluate("navigator.clipboard.readText()") == number

    await page.keyboard.press("Tab")
    link = await focused(page)
    assert link["tag"] == "A"
    assert link["href"].startswith("https://tools.usps.com/")
    await page.keyboard.press("Tab")
    assert (await focused(page))["tag"] == "SUMMARY"
    await page.keyboard.press("Enter")
    await expect(page.locator("details.timeline")).to_have_attribute("open", "")
    await page.screenshot(path=shot("sidebar-keyboard"), full_page=True)
    assert errors == []
    await context.close()


async def test_sidebar_without_a_key_asks_for_one_and_goes_on(
    browser: Browser, service: Any, stories: dict[str, Story]
) -> None:
    """No handover: the key form takes the key (keyboard only) and the pending lookup runs."""
    page = await browser.new_page(viewport=SIDEBAR)
    await page.goto(f"{base_url(service)}/ui/sidebar")
    await expect(page.locator("#key-form")).to_be_visible()
    await page.keyboard.press("Tab")
    await page.keyboard.type("M-7781-2211")
    await page.keyboard.press("Enter")
    assert (await focused(page))["id"] == "api-key"
    await page.keyboard.type("portal-key")  # a key of the wrong role first
    await page.keyboard.press("Enter")
    await expect(page.locator(".error-box")).to_contain_text("may not look orders up")
    await page.locator("#forget-key").focus()
    await page.keyboard.press("Enter")
    assert (await focused(page))["id"] == "api-key"
    await page.keyboard.type("agent-key")
    await page.keyboard.press("Enter")
    assert (await focused(page))["id"] == "reference", "focus returns to the input when the form closes"
    await page.keyboard.press("Enter")
    await expect(page.locator(".status-card")).to_have_attribute("data-status", "awaiting_shipment")
    await expect(page.locator(".flags")).to_contain_text("Ship-by date missed")


async def test_sidebar_shows_a_stale_answer_clearly_with_its_reason(
    browser: Browser, service_with: Any, sandbox: Sandbox
) -> None:
    """Carrier down past the TTL: the last answer is shown, marked stale, with when and why."""
    client = await service_with(cache_ttl_active_s=0, cache_hard_ttl_active_s=0)
    number = by_name()["ups-in-transit"].number
    page = await browser.new_page(viewport=SIDEBAR)
    await page.goto(f"{base_url(client)}/ui/sidebar#key=agent-key&ref={number}")
    await expect(page.locator(".status-card")).to_have_attribute("data-status", "in_transit")
    await expect(page.locator(".freshness")).to_contain_text("(live)")
    assert "null" not in await page.locator("#result").inner_text()
    sandbox.state.queue_fault(Carrier.ups, "503", 50)
    await page.press("#reference", "Enter")
    stale = page.locator(".freshness.stale")
    await expect(stale).to_contain_text("Stale: as of")
    await expect(stale).to_contain_text("showing the answer from")
    await expect(page.locator(".flags")).to_contain_text("Stale: carrier unreachable")
    await expect(page.locator(".status-card")).to_have_attribute("data-status", "in_transit")
    await page.screenshot(path=shot("sidebar-stale"), full_page=True)


async def test_warehouse_lists_the_stalled_label_and_downloads_csv(
    browser: Browser, service_with: Any, stories: dict[str, Story], redis_client: aioredis.Redis
) -> None:
    """The 17-day UPS label heads DAL1's list; the origin filter, CSV download and auto-refresh work."""
    client = await service_with(ui_refresh_s=1)
    page = await browser.new_page(viewport={"width": 1100, "height": 900}, accept_downloads=True)
    errors = watch_errors(page)
    await page.goto(f"{base_url(client)}/ui/warehouse#key=warehouse-key")
    row = page.locator('.never-picked-up tr[data-shipment="shp-2001002-1"]')
    await expect(row).to_contain_text("408 h (17 days)")
    await expect(row).to_contain_text("UPS")
    await expect(row).to_contain_text(stories["ups-17-days"].shipments[0].tracking_number)
    await expect(row.locator(".unchecked")).to_have_text("not yet checked")  # seeded, never asked about
    dal1 = page.locator('section[data-origin="DAL1"]')
    await expect(dal1.locator("tbody tr").first).to_have_attribute("data-shipment", "shp-2001002-1")
    await page.screenshot(path=shot("warehouse"), full_page=True)

    await page.select_option("#origin", "DAL1")
    await expect(page.locator("section.origin")).to_have_count(1)
    await expect(page.locator("section.origin")).to_have_attribute("data-origin", "DAL1")

    name, (header, *lines) = await download_csv(page, "#download")
    assert name.startswith("never-picked-up-labels-")
    assert header[:5] == ["shipment_id", "order_number", "carrier", "tracking_number", "origin"]
    assert lines
    assert all(line[4] == "DAL1" for line in lines)
    assert lines[0][:3] == ["shp-2001002-1", "W2001002", "ups"]

    await Registry(redis_client).put_shipment(ShipmentRecord(
        shipment_id="shp-new-1", order_number="W9990001", carrier=Carrier.ups,
        tracking_number="1ZTRKSVC0100000060", origin="DAL1",
        label_created_at=datetime.now(UTC) - timedelta(days=30),
    ))
    await expect(dal1.locator("tbody tr").first).to_have_attribute("data-shipment", "shp-new-1")
    assert errors == []


HELPDESK_PAGE = """<!doctype html>
<html><head><title>Helpdesk</title></head>
<body><h1>Ticket 4711</h1>
<iframe id="tracksvc" title="Order lookup" src="{service}/ui/sidebar" width="350" height="800"
        allow="clipboard-write"></iframe>
<script>
  // A helpdesk app: on the sidebar's "ready", hand it the agent's key and the ticket's order number.
  const frame = document.getElementById("tracksvc");
  window.addEventListener("message", (event) => {{
    if (event.origin !== "{service}" || !event.data || event.data.type !== "tracksvc-ready") return;
    frame.contentWindow.postMessage({{type: "tracksvc-key", key: "agent-key"}}, "{service}");
    frame.contentWindow.postMessage({{type: "tracksvc-lookup", reference: "W2001002"}}, "{service}");
    document.body.dataset.posted = "yes";
  }});
</script></body></html>
"""


@pytest.fixture
async def helpdesk_ports() -> AsyncIterator[tuple[list[int], web.AppRunner]]:
    """A stand-in helpdesk served on three loopback ports (three origins); pages say where the service is."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(
            text=HELPDESK_PAGE.format(service=request.query["service"]), content_type="text/html"
        )

    app = web.Application()
    app.router.add_get("/ticket", page)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    ports = []
    for _ in range(3):
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        ports.append(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
    yield ports, runner
    await runner.cleanup()


async def test_helpdesk_iframe_hands_over_the_key_by_postmessage(
    browser: Browser,
    service_with: Any,
    stories: dict[str, Story],
    helpdesk_ports: tuple[list[int], web.AppRunner],
) -> None:
    """An allowed parent's key works; a framing-only origin's key is ignored; others cannot frame at all."""
    (trusted, framing_only, stranger), _ = helpdesk_ports
    origin = "http://127.0.0.1:{}".format
    client = await service_with(
        frame_ancestors=f"'self' {origin(trusted)} {origin(framing_only)}",
        ui_key_origins=origin(trusted),
    )
    service = base_url(client)

    page = await browser.new_page(viewport={"width": 800, "height": 900})
    await page.goto(f"{origin(trusted)}/ticket?service={service}")
    sidebar = page.frame_locator("#tracksvc")
    await expect(sidebar.locator(".status-card")).to_have_attribute("data-status", "not_tendered")
    await expect(sidebar.locator("#reference")).to_have_value("W2001002")
    await expect(sidebar.locator("#key-form")).to_be_hidden()
    await page.screenshot(path=shot("helpdesk-embed"), full_page=True)

    ignored = await browser.new_page()
    await ignored.goto(f"{origin(framing_only)}/ticket?service={service}")
    await expect(ignored.locator("body")).to_have_attribute("data-posted", "yes")
    frame = ignored.frame_locator("#tracksvc")
    await ignored.wait_for_timeout(300)  # let any (wrongly) accepted message take effect
    await expect(frame.locator("#key-form")).to_be_visible()
    await expect(frame.locator(".status-card")).to_have_count(0)

    blocked = await browser.new_page()
    await blocked.goto(f"{origin(stranger)}/ticket?service={service}")
    await blocked.wait_for_load_state("load")
    inner = next(f for f in blocked.frames if f is not blocked.main_frame)
    assert not inner.url.startswith(service)
    assert await blocked.locator("body").get_attribute("data-posted") is None


async def test_agent_records_that_a_delivered_parcel_never_arrived(
    browser: Browser, service: Any, stories: dict[str, Story]
) -> None:
    """On a delivered order, one button re-asks with the customer's claim; the advice turns to a claim."""
    order = stories["status-ups-delivered"].reference
    page = await browser.new_page(viewport=SIDEBAR)
    errors = watch_errors(page)
    await page.goto(f"{base_url(service)}/ui/sidebar#key=agent-key&ref={order}")
    await expect(page.locator(".status-card")).to_have_attribute("data-status", "delivered")
    dispute = page.locator("button.dispute")
    await expect(dispute).to_have_text("Customer says it never arrived")
    await dispute.focus()
    await page.keyboard.press("Enter")
    await expect(page.locator(".flags")).to_contain_text("Customer says it never arrived")
    await expect(page.locator(".advice")).to_contain_text("claim")
    await expect(page.locator("button.dispute")).to_have_count(0)
    await expect(page.locator(".status-card")).to_have_attribute("data-status", "delivered")
    await page.screenshot(path=shot("sidebar-delivered-disputed"), full_page=True)
    assert errors == []
