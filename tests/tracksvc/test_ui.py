"""The pages over HTTP: served as plain files, embeddable where configured, never holding a key."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.contract import assert_matches
from tracksvc.api.ui.pages import ASSETS, PAGES, check_frame_ancestors, key_origins
from tracksvc.app import create_app
from tracksvc.core.settings import Settings

HELPDESK = "https://helpdesk.example.com"


@pytest.mark.parametrize("page", sorted(PAGES))
async def test_pages_carry_frame_ancestors_from_settings(service_with: Any, page: str) -> None:
    """The CSP's frame-ancestors is the setting; no X-Frame-Options forbids the helpdesk iframe."""
    client = await service_with(frame_ancestors=f"'self' {HELPDESK}")
    response = await client.get(f"/ui/{page}")
    assert response.status == 200
    assert response.content_type == "text/html"
    policy = response.headers["Content-Security-Policy"]
    assert policy.endswith(f"frame-ancestors 'self' {HELPDESK}")
    assert "script-src 'self'" in policy
    assert "X-Frame-Options" not in response.headers
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert_matches(f"/ui/{page}", "get", 200, await response.text(), media="text/html")


@pytest.mark.parametrize("page", sorted(PAGES))
async def test_pages_hold_no_key(service: Any, make_settings: Callable[..., Settings], page: str) -> None:
    """No API key, and no inline script that could carry one, is in the served HTML."""
    html = await (await service.get(f"/ui/{page}")).text()
    for key in make_settings().api_keys:
        assert key not in html
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None
    assert "{{" not in html


async def test_pages_learn_the_postmessage_allow_list(service_with: Any) -> None:
    """The allow-list of origins that may hand over a key is in a data attribute."""
    client = await service_with(frame_ancestors=f"'self' {HELPDESK} https://*.desk.example")
    html = await (await client.get("/ui/sidebar")).text()
    assert f'data-key-origins="self {HELPDESK} https://*.desk.example"' in html


async def test_warehouse_page_learns_its_refresh_interval(service_with: Any) -> None:
    """The auto-refresh interval comes from settings."""
    client = await service_with(ui_refresh_s=30)
    html = await (await client.get("/ui/warehouse")).text()
    assert 'data-refresh-s="30"' in html


@pytest.mark.parametrize("name", sorted(ASSETS))
async def test_assets_are_served_with_their_types(service: Any, name: str) -> None:
    """CSS and JS come with their content types and nosniff."""
    response = await service.get(f"/ui/static/{name}")
    assert response.status == 200
    assert response.content_type == ASSETS[name]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert await response.text()


@pytest.mark.parametrize("name", ["secret.txt", "..%2Fui.py", "sidebar.html", "%2e%2e%2fsettings.py"])
async def test_only_listed_assets_are_served(service: Any, name: str) -> None:
    """Anything but the listed assets is a JSON 404: no directory listing, no path tricks."""
    response = await service.get(f"/ui/static/{name}")
    assert response.status == 404
    assert_matches("/ui/static/{name}", "get", 404, await response.json())


def test_a_frame_ancestors_that_breaks_the_policy_is_refused() -> None:
    """A ';' would start a new directive: the app refuses to start with it."""
    with pytest.raises(ValueError, match="FRAME_ANCESTORS"):
        create_app(Settings(frame_ancestors="'self'; script-src *"))
    with pytest.raises(ValueError, match="FRAME_ANCESTORS"):
        check_frame_ancestors("   ")


@pytest.mark.parametrize(
    ("frame_ancestors", "ui_key_origins", "expected"),
    [
        ("'self'", "", ["self"]),
        (f"'self' {HELPDESK}/", "", ["self", HELPDESK]),
        ("'none'", "", []),
        ("*", "", []),
        ("https://*.zendesk.com", "", ["https://*.zendesk.com"]),
        (f"'self' {HELPDESK}", "https://other.example, self", ["https://other.example", "self"]),
    ],
)
def test_key_origins_follow_settings(frame_ancestors: str, ui_key_origins: str, expected: list[str]) -> None:
    """Explicit origins win; else the origins allowed to frame the page; '*' never gets a key."""
    settings = Settings(frame_ancestors=frame_ancestors, ui_key_origins=ui_key_origins)
    assert key_origins(settings) == expected
