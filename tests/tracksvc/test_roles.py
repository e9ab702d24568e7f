"""
Every route of create_app, enumerated from its router: public ones answer
without a key, the rest refuse a missing key (401) and a wrong role (403),
as JSON. A new route is covered the moment it is registered; one without a
``@requires(...)`` role fails here unless it is listed as public.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.conftest import ADMIN
from tracksvc.api.middlewares import ROLES_ATTR
from tracksvc.app import create_app
from tracksvc.core.settings import ROLES, Settings

#: Routes anyone may call: liveness, readiness, metrics, and the pages (which hold no key).
PUBLIC_PATHS = {"/healthz", "/readyz", "/metrics"}
PUBLIC_PREFIXES = ("/ui/",)

#: Routes that authenticate with a carrier's own credential instead of an API key role.
OWN_CREDENTIAL = {("POST", "/v1/carrier-events/ups")}

#: What those answer when their credential is not configured (as in these tests): 503, not 401.
UNCONFIGURED = (503, "push_not_configured")

#: The role each known route requires (admin always passes too).
EXPECTED_ROLES = {
    ("GET", "/v1/track/"): {"agent"},
    ("GET", "/v1/track/{reference}"): {"agent"},
    ("POST", "/v1/track"): {"agent"},
    ("GET", "/v1/portal/orders/{order_number}"): {"portal"},
    ("GET", "/v1/labels/stalled"): {"warehouse"},
    ("PUT", "/v1/shipments/{shipment_id}"): {"ingest"},
    ("PUT", "/v1/orders/{order_number}"): {"ingest"},
    ("POST", "/v1/shipments/import"): {"ingest"},
    ("POST", "/v1/subscriptions"): {"agent"},
    ("DELETE", "/v1/subscriptions/{subscription_id}"): {"agent"},
}

TEST_KEYS = {role: f"{role}-key" for role in ROLES}


def _routes() -> list[tuple[str, str, frozenset[str] | None]]:
    """(method, path template, roles or None) of every route, from the real app factory."""
    settings = Settings(api_keys=",".join(f"{r}:{k}" for r, k in TEST_KEYS.items()))
    app = create_app(settings)
    found = []
    for route in app.router.routes():
        resource = route.resource
        if resource is None:
            continue
        roles = getattr(route.handler, ROLES_ATTR, None)
        found.append((route.method, resource.canonical, roles))
    return sorted(set(found), key=lambda r: (r[1], r[0]))


ROUTES = _routes()


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def concrete(path: str) -> str:
    """A path template with every ``{name}`` filled in."""
    return re.sub(r"\{[^}]+\}", "x", path)


GUARDED = [r for r in ROUTES if not is_public(r[1])]


def test_the_router_was_enumerated() -> None:
    """The enumeration sees the routes we know about (so an empty list cannot pass silently)."""
    seen = {(m, p) for m, p, _ in ROUTES}
    assert set(EXPECTED_ROLES) <= seen
    assert ("GET", "/ui/sidebar") in seen


@pytest.mark.parametrize(("method", "path", "roles"), GUARDED, ids=[f"{m} {p}" for m, p, _ in GUARDED])
def test_every_guarded_route_declares_its_role(method: str, path: str, roles: frozenset[str] | None) -> None:
    """Each non-public route requires a role (or its carrier credential); known ones the right role."""
    if (method, path) in OWN_CREDENTIAL:
        assert roles is None
        return
    assert roles is not None, f"{method} {path} has no @requires(...) and is not listed as public"
    assert "admin" in roles
    expected = EXPECTED_ROLES.get((method.replace("HEAD", "GET"), path))
    if expected is not None:
        assert roles == frozenset({*expected, "admin"})


def _assert_json_error(body: Any, code: str) -> None:
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]


@pytest.mark.parametrize(("method", "path", "roles"), GUARDED, ids=[f"{m} {p}" for m, p, _ in GUARDED])
async def test_no_key_or_an_unknown_key_is_401_json(
    service: Any, method: str, path: str, roles: frozenset[str] | None
) -> None:
    """Without a key, or with a key nobody issued, every guarded route answers 401 JSON."""
    status, code = UNCONFIGURED if (method, path) in OWN_CREDENTIAL else (401, "unauthorized")
    for headers in ({}, {"Authorization": "Bearer not-a-key"}, {"Authorization": "Basic YWdlbnQ6eA=="}):
        response = await service.request(method, concrete(path), headers=headers)
        assert response.status == status, (method, path, headers)
        if method != "HEAD":
            assert response.content_type == "application/json"
            _assert_json_error(await response.json(), code)


@pytest.mark.parametrize(("method", "path", "roles"), GUARDED, ids=[f"{m} {p}" for m, p, _ in GUARDED])
async def test_a_key_of_the_wrong_role_is_403_json(
    service: Any, method: str, path: str, roles: frozenset[str] | None
) -> None:
    """A valid key of any role the route does not allow gets 403 JSON (unconfigured carrier webhooks: 503)."""
    wrong = [r for r in ROLES if roles is None or r not in roles]
    assert wrong or roles == frozenset(ROLES)
    for role in wrong:
        headers = {"Authorization": f"Bearer {TEST_KEYS[role]}"}
        response = await service.request(method, concrete(path), headers=headers)
        expected, code = UNCONFIGURED if roles is None else (403, "forbidden")
        assert response.status == expected, (method, path, role)
        if method != "HEAD":
            _assert_json_error(await response.json(), code)


@pytest.mark.parametrize(("method", "path", "roles"), GUARDED, ids=[f"{m} {p}" for m, p, _ in GUARDED])
async def test_admin_passes_every_role_check(
    service: Any, method: str, path: str, roles: frozenset[str] | None
) -> None:
    """The admin key is never refused by a role check (the handler's own answer follows)."""
    if roles is None:
        return
    response = await service.request(method, concrete(path), headers=ADMIN)
    assert response.status not in (401, 403), (method, path)


PUBLIC = [r for r in ROUTES if is_public(r[1]) and "{" not in r[1]]


@pytest.mark.parametrize(("method", "path", "roles"), PUBLIC, ids=[f"{m} {p}" for m, p, _ in PUBLIC])
async def test_public_routes_answer_without_a_key(
    service: Any, method: str, path: str, roles: frozenset[str] | None
) -> None:
    """Public routes carry no role and answer without a key."""
    if roles is not None:  # e.g. /metrics behind TRACKSVC_METRICS_REQUIRE_ADMIN
        assert "admin" in roles
        return
    response = await service.request(method, path)
    assert response.status not in (401, 403)
