"""
The pages: ``/ui/sidebar`` (helpdesk sidebar) and ``/ui/warehouse`` (stalled
labels), plain HTML, CSS and JS from ``tracksvc/api/ui/static`` with no build step.

The pages hold no key. They call the API with a key handed over by the
embedding app, in the URL fragment (``#key=...``, never sent to a server)
or by ``postMessage({type: "tracksvc-key", key})`` from an allowed origin,
else one the person pastes; the key lives in the tab's sessionStorage.

Every page answer carries a strict Content-Security-Policy whose
``frame-ancestors`` is :attr:`Settings.frame_ancestors`, so a helpdesk may
embed the sidebar in an iframe and nobody else may.
"""

from __future__ import annotations

import html
from functools import cache
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

from tracksvc.api.keys import settings_key
from tracksvc.core.settings import Settings

STATIC_DIR = Path(__file__).resolve().parent / "static"

#: Page route name -> HTML file.
PAGES = {"sidebar": "sidebar.html", "warehouse": "warehouse.html"}

#: Assets the pages load, with their content types (nothing else is served).
ASSETS = {
    "tracksvc.css": "text/css",
    "common.js": "text/javascript",
    "sidebar.js": "text/javascript",
    "warehouse.js": "text/javascript",
    "warehouse.css": "text/css",
}

#: The page policy but for frame-ancestors: same-origin scripts, styles and API calls only.
BASE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'"
)

#: Markers in the HTML files: the postMessage allow-list, the warehouse refresh interval,
#: the business time zone the warehouse page shows times in.
KEY_ORIGINS_MARKER = "{{key_origins}}"
REFRESH_MARKER = "{{refresh_s}}"
TIMEZONE_MARKER = "{{timezone}}"


def check_frame_ancestors(value: str) -> str:
    """
    The ``frame-ancestors`` source list, refused when it could break out of the policy.

    Raises:
        ValueError: the value holds a ``;``, a comma or a control character.
    """
    text = " ".join(value.split())
    if not text or any(c in text for c in ";,") or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError(
            "TRACKSVC_FRAME_ANCESTORS must be a space-separated CSP source list, "
            "e.g. \"'self' https://helpdesk.example.com\""
        )
    return text


def key_origins(settings: Settings) -> list[str]:
    """
    Origins a page accepts a key from by postMessage.

    ``ui_key_origins`` when set; else every http(s) source of
    ``frame_ancestors`` (wildcard hosts included), and ``self`` (the page's
    own origin) for ``'self'``. A bare ``*`` is never trusted with a key.
    """
    if settings.ui_key_origins.strip():
        tokens = [t.strip() for t in settings.ui_key_origins.split(",")]
    else:
        tokens = settings.frame_ancestors.split()
    origins: list[str] = []
    for token in tokens:
        if token in ("'self'", "self"):
            origins.append("self")
        elif token.startswith(("https://", "http://")):
            origins.append(token.rstrip("/"))
    return list(dict.fromkeys(origins))


def page_headers(settings: Settings) -> dict[str, str]:
    """Security headers of a page answer."""
    ancestors = check_frame_ancestors(settings.frame_ancestors)
    return {
        "Content-Security-Policy": f"{BASE_CSP}; frame-ancestors {ancestors}",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }


@cache
def _static(name: str) -> bytes:
    return (STATIC_DIR / name).read_bytes()


def render_page(name: str, settings: Settings) -> bytes:
    """A page's HTML with its settings in data attributes (allow-list, refresh, time zone); never a key."""
    text = _static(PAGES[name]).decode()
    origins = html.escape(" ".join(key_origins(settings)), quote=True)
    text = text.replace(KEY_ORIGINS_MARKER, origins).replace(REFRESH_MARKER, str(settings.ui_refresh_s))
    text = text.replace(TIMEZONE_MARKER, html.escape(settings.business_timezone.strip(), quote=True))
    return text.encode()


def _page(name: str) -> Handler:
    async def page(request: web.Request) -> web.Response:
        settings = request.app[settings_key]
        return web.Response(
            body=render_page(name, settings),
            content_type="text/html",
            charset="utf-8",
            headers=page_headers(settings),
        )

    page.__doc__ = f"``GET /ui/{name}``: the {name} page (public; it holds no key)."
    return page


async def static_asset(request: web.Request) -> web.Response:
    """``GET /ui/static/{name}``: one of the pages' CSS and JS files."""
    name = request.match_info["name"]
    content_type = ASSETS.get(name)
    if content_type is None:
        raise web.HTTPNotFound(text=f"no asset named {name!r}")
    return web.Response(
        body=_static(name),
        content_type=content_type,
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"},
    )


def add_ui_routes(app: web.Application) -> None:
    """
    Register the pages and their assets.

    Raises:
        ValueError: ``frame_ancestors`` is not a usable CSP source list.
    """
    check_frame_ancestors(app[settings_key].frame_ancestors)
    for name in PAGES:
        app.router.add_get(f"/ui/{name}", _page(name))
    app.router.add_get("/ui/static/{name}", static_asset)
