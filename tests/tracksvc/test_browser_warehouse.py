"""
The warehouse page's actions in headless Chromium (issue 11, items 4 and 6):
row links and Copy, times with their zone, the labels to void, the void flow
and the ages chart. Real service on a loopback port, real Redis; screenshots
go to test-artifacts/ (CI keeps them), as in test_browser.py.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis
from playwright.async_api import Browser, Dialog, Page, expect

from tests.tracksvc.test_browser import base_url, download_csv, shot, watch_errors
from tests.tracksvc.test_browser import browser as browser  # the fixture, shared
from tracksvc.core.models import Carrier
from tracksvc.domain.records import ShipmentRecord
from tracksvc.registry.store import Registry

pytestmark = pytest.mark.browser

WIDE = {"width": 1280, "height": 1000}
NUMBERS = {
    Carrier.ups: "1ZTRKSVC0100000024",
    Carrier.fedex: "790000000020",
    Carrier.usps: "9400112345600000000025",
}


def record(sid: str, carrier: Carrier, days: float, origin: str | None, **fields: Any) -> ShipmentRecord:
    """A label printed ``days`` ago, never scanned."""
    return ShipmentRecord(
        shipment_id=sid, order_number=fields.pop("order_number", f"W-{sid}"), carrier=carrier,
        tracking_number=NUMBERS[carrier], origin=origin,
        label_created_at=datetime.now(UTC) - timedelta(days=days), **fields,
    )


#: DAL1 has a 2.5-day, a 4-day and a 20-day label; MSP1 a 10-day one; one has no origin.
LABELS = [
    record("shp-dal-a", Carrier.ups, 2.5, "DAL1", label_cost="7.35"),
    record("shp-dal-b", Carrier.usps, 4, "DAL1", label_cost="4.10"),
    record("shp-dal-c", Carrier.ups, 20, "DAL1"),
    record("shp-msp-a", Carrier.fedex, 10, "MSP1", label_cost="12"),
    record("shp-none", Carrier.usps, 45, None),  # past USPS's 30-day window: never picked up, not to void
]


@pytest.fixture
async def labels(redis_client: aioredis.Redis) -> list[ShipmentRecord]:
    """The labels above in an empty registry."""
    registry = Registry(redis_client)
    for label in LABELS:
        await registry.put_shipment(label)
    return LABELS


async def open_page(browser: Browser, client: Any) -> tuple[Page, list[str]]:
    """The warehouse page with the warehouse key handed over, clipboard allowed."""
    base = base_url(client)
    context = await browser.new_context(viewport=WIDE, accept_downloads=True)
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page = await context.new_page()
    errors = watch_errors(page)
    await page.goto(f"{base}/ui/warehouse#key=warehouse-key")
    return page, errors


def zoned(moment: datetime, zone: str) -> str:
    """What the page shows for a time: '2026-11-30 08:05 CST'."""
    local = moment.astimezone(ZoneInfo(zone))
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"


async def test_rows_link_to_the_agent_view_and_the_carrier_copy_and_show_the_zone(
    browser: Browser, service_with: Any, labels: list[ShipmentRecord]
) -> None:
    """Each row: order -> sidebar#ref=, the carrier's public page, Copy; times in the business zone."""
    client = await service_with(business_timezone="America/Chicago")
    page, errors = await open_page(browser, client)
    row = page.locator('.never-picked-up tr[data-shipment="shp-msp-a"]')
    await expect(row).to_contain_text("240 h (10 days)")
    agent = row.locator("a.agent-link")
    await expect(agent).to_have_attribute("href", "sidebar#ref=W-shp-msp-a")
    await expect(agent).to_have_text("W-shp-msp-a")
    carrier = row.locator("a.carrier-link")
    await expect(carrier).to_have_attribute("href", "https://www.fedex.com/fedextrack/?trknbr=790000000020")
    await expect(carrier).to_have_attribute("rel", "noopener noreferrer")
    printed = LABELS[3].label_created_at
    when = row.locator("td.when time")
    await expect(when).to_have_text(zoned(printed, "America/Chicago"))
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} C[SD]T", await when.inner_text())
    await expect(page.locator("#zone-name")).to_have_text("America/Chicago")

    await row.locator("button.copy").click()
    await expect(row.locator("button.copy")).to_have_text("Copied")
    assert await page.evaluate("navigator.clipboard.readText()") == "790000000020"
    await expect(page.locator("#announce")).to_contain_text("790000000020 copied")

    text = (await page.locator("main").inner_text()).lower()
    assert "never picked up" in text
    assert "stalled" not in text, "the page says 'never picked up'; 'stalled' means in transit without a scan"
    await page.screenshot(path=shot("warehouse-rows"), full_page=True)

    # The agent view link opens the sidebar on that order.
    await agent.evaluate("a => a.removeAttribute('target')")
    await agent.click()
    await expect(page).to_have_url(re.compile(r"/ui/sidebar"))
    assert errors == []


async def test_labels_to_void_soonest_deadline_first_with_money_at_stake(
    browser: Browser, service: Any, labels: list[ShipmentRecord]
) -> None:
    """USPS 4 days old (26 left), UPS 20 (70), FedEx 10 (80), UPS 2.5 (87.5); USPS 45 days: window closed."""
    page, errors = await open_page(browser, service)
    section = page.locator("#to-void")
    rows = section.locator("tbody tr")
    await expect(rows).to_have_count(4)
    ids = [await r.get_attribute("data-shipment") for r in await rows.all()]
    assert ids == ["shp-dal-b", "shp-dal-c", "shp-msp-a", "shp-dal-a"]
    first = rows.first
    deadline = LABELS[1].label_created_at + timedelta(days=30)
    await expect(first.locator("td.deadline time")).to_have_text(zoned(deadline, "UTC"))
    await expect(first.locator("td.cost")).to_have_text("4.10 USD")
    await expect(page.locator("#stake")).to_contain_text("4 labels to void")
    await expect(page.locator("#stake")).to_contain_text("at stake: 23.45 USD on 3 labels")
    await expect(page.locator("#stake")).to_contain_text("1 label without a known cost")
    await expect(page.locator("#windows")).to_contain_text("USPS 30 days")
    await expect(page.locator("#windows")).to_contain_text("to be confirmed with your carrier contract")
    await section.screenshot(path=shot("warehouse-labels-to-void"))

    name, (header, *lines) = await download_csv(page, "#download-to-void")
    assert name.startswith("labels-to-void-")
    assert header[0] == "void_deadline"
    assert [line[header.index("shipment_id")] for line in lines] == ids
    assert errors == []


async def test_the_void_flow_takes_the_row_off_both_lists(
    browser: Browser, service: Any, labels: list[ShipmentRecord], redis_client: aioredis.Redis
) -> None:
    """Click Void, confirm: the row leaves both lists and the chart; the registry has who and when."""
    page, errors = await open_page(browser, service)
    target = 'tr[data-shipment="shp-msp-a"]'
    await expect(page.locator(target)).to_have_count(2)  # never picked up, and to void
    await expect(page.locator('g.origin-bar[data-origin="MSP1"]')).to_have_count(1)
    questions: list[str] = []
    accept = [True]

    async def answer(dialog: Dialog) -> None:
        questions.append(dialog.message)
        await (dialog.accept() if accept[0] else dialog.dismiss())

    page.on("dialog", lambda dialog: asyncio.ensure_future(answer(dialog)))
    await page.locator(f"#to-void {target} button.void").click()
    await expect(page.locator(target)).to_have_count(0)
    await expect(page.locator("#announce")).to_contain_text("790000000020 marked voided")
    assert "790000000020" in questions[0]
    await expect(page.locator("#to-void tbody tr")).to_have_count(3)
    await expect(page.locator('g.origin-bar[data-origin="MSP1"]')).to_have_count(0)
    await expect(page.locator("#stake")).to_contain_text("at stake: 11.45 USD on 2 labels")
    stored = await Registry(redis_client).get_shipment("shp-msp-a")
    assert stored is not None
    assert stored.voided
    assert stored.voided_by is not None
    assert stored.voided_by.startswith("warehouse:")
    await page.screenshot(path=shot("warehouse-after-void"), full_page=True)

    # A dismissed confirmation voids nothing.
    accept[0] = False
    await page.locator('.never-picked-up tr[data-shipment="shp-dal-c"] button.void').click()
    for _ in range(50):
        if len(questions) == 2:
            break
        await asyncio.sleep(0.05)
    assert len(questions) == 2, "the Void button asks first"
    await page.wait_for_timeout(300)  # time for a (wrong) request to go out and the row to go
    await expect(page.locator('.never-picked-up tr[data-shipment="shp-dal-c"]')).to_have_count(1)
    kept = await Registry(redis_client).get_shipment("shp-dal-c")
    assert kept is not None
    assert not kept.voided
    assert errors == []


async def test_the_chart_counts_labels_per_origin_and_age(
    browser: Browser, service: Any, labels: list[ShipmentRecord]
) -> None:
    """An accessible inline SVG: title and desc; one bar per origin; each segment's count."""
    page, errors = await open_page(browser, service)
    chart = page.locator("#ages-chart svg")
    await expect(chart).to_have_attribute("role", "img")
    title = chart.locator("title#ages-svg-title")
    await expect(title).to_have_text("Labels never picked up per origin, by age")
    desc = chart.locator("desc")
    await expect(desc).to_contain_text("DAL1: 1 2\u20133 d, 1 3\u20137 d, 1 > 7 d")
    await expect(desc).to_contain_text("MSP1: 0 2\u20133 d, 0 3\u20137 d, 1 > 7 d")
    await expect(desc).to_contain_text("(no origin): 0 2\u20133 d, 0 3\u20137 d, 1 > 7 d")
    bars = chart.locator("g.origin-bar")
    assert [await b.get_attribute("data-origin") for b in await bars.all()] == ["DAL1", "MSP1", "(no origin)"]
    counts = {
        (await b.get_attribute("data-origin"), await r.get_attribute("data-bucket")): int(
            await r.get_attribute("data-count") or "-1")
        for b in await bars.all() for r in await b.locator("rect").all()
    }
    assert counts == {
        ("DAL1", "2-3d"): 1, ("DAL1", "3-7d"): 1, ("DAL1", "over-7d"): 1,
        ("MSP1", "2-3d"): 0, ("MSP1", "3-7d"): 0, ("MSP1", "over-7d"): 1,
        ("(no origin)", "2-3d"): 0, ("(no origin)", "3-7d"): 0, ("(no origin)", "over-7d"): 1,
    }
    # Bar lengths follow the counts: DAL1's bar (3) is three times MSP1's (1).
    length = "rs => rs.reduce((sum, r) => sum + r.width.baseVal.value, 0)"
    dal1 = await bars.nth(0).locator("rect").evaluate_all(length)
    msp1 = await bars.nth(1).locator("rect").evaluate_all(length)
    assert dal1 == pytest.approx(3 * msp1)
    await page.locator("#ages").screenshot(path=shot("warehouse-chart"))
    assert errors == []
