"""
Typo help in the sidebar, in headless Chromium against the real service
with the seed stories: a mistyped reference shows what is wrong with it and
its near matches, and one click looks a match up. Screenshots go to
test-artifacts/.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Browser, expect

from tests.tracksvc.test_browser import (  # noqa: F401  (browser, stories: fixtures)
    SIDEBAR,
    base_url,
    browser,
    shot,
    stories,
    watch_errors,
)
from tracksvc.dev.seed import Story

pytestmark = pytest.mark.browser

#: What Chromium logs for the expected 404 of the lookup itself.
EXPECTED_404 = "Failed to load resource: the server responded with a status of 404"


def unexpected(errors: list[str]) -> list[str]:
    """Script and console errors but the 404 the test asks for."""
    return [e for e in errors if EXPECTED_404 not in e]


async def test_a_did_you_mean_suggestion_is_one_click(
    browser: Browser, service: Any, stories: dict[str, Story]  # noqa: F811
) -> None:
    """W20O1002 (letter O): the error says so, W2001002 is offered, one click shows that order."""
    page = await browser.new_page(viewport=SIDEBAR)
    errors = watch_errors(page)
    await page.goto(f"{base_url(service)}/ui/sidebar#key=agent-key")
    await page.fill("#reference", "w20o1002")
    await page.press("#reference", "Enter")
    box = page.locator(".error-box")
    await expect(box).to_contain_text("Not found")
    await expect(box).to_contain_text("\u201cw20o1002\u201d looks like an order number (W + 7 digits)")
    await expect(box).to_contain_text("Did you mean:")
    suggestion = box.locator("button.suggestion").first
    await expect(suggestion).to_have_text("W2001002")
    await expect(suggestion).to_have_attribute("aria-label", "Look up W2001002")
    await expect(page.locator("#announce")).to_contain_text("Did you mean W2001002?")
    await page.screenshot(path=shot("sidebar-did-you-mean"), full_page=True)

    await suggestion.click()
    await expect(page.locator(".status-card")).to_have_attribute("data-status", "not_tendered")
    await expect(page.locator("#reference")).to_have_value("W2001002")
    await expect(page.locator(".error-box")).to_have_count(0)
    assert unexpected(errors) == []


async def test_a_reference_with_nothing_near_offers_no_suggestion(
    browser: Browser, service: Any, stories: dict[str, Story]  # noqa: F811
) -> None:
    """hello: the message echoes it as typed; no "Did you mean"; keyboard users reach nothing extra."""
    page = await browser.new_page(viewport=SIDEBAR)
    errors = watch_errors(page)
    await page.goto(f"{base_url(service)}/ui/sidebar#key=agent-key&ref=hello")
    box = page.locator(".error-box")
    await expect(box).to_contain_text("\u201chello\u201d does not look like any reference tracksvc knows")
    await expect(box.locator("button.suggestion")).to_have_count(0)
    await expect(box).not_to_contain_text("Did you mean")
    assert unexpected(errors) == []
