"""
Typo help over HTTP against a real Redis: ``did_you_mean`` on a 404 of
``GET /v1/track/{reference}`` (the demo seed's cases, at most five, only
registered references, never on the portal), its cost as the registry
grows, and what a Redis failure while looking for suggestions gives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.conftest import AGENT, PORTAL
from tests.contract import assert_matches
from tracksvc.dev.redis_server import RedisServer
from tracksvc.dev.seed import seed
from tracksvc.domain import typos
from tracksvc.domain.records import OrderRecord
from tracksvc.registry.store import Registry

TRACK = "/v1/track/{reference}"


async def track(client: Any, reference: str) -> tuple[int, Any]:
    response = await client.get(f"/v1/track/{reference}", headers=AGENT)
    body = await response.json()
    assert_matches(TRACK, "get", response.status, body)
    return response.status, body


async def hmget_calls(redis: aioredis.Redis) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_hmget", {}).get("calls", 0))


async def test_demo_seed_letter_o_suggests_the_order(service: Any, redis_client: aioredis.Redis) -> None:
    """W20O1002 (letter O): 404 saying so, did_you_mean W2001002 first."""
    await seed(Registry(redis_client))
    status, body = await track(service, "W20O1002")
    assert status == 404
    error = body["error"]
    assert error["code"] == "reference_not_found"
    assert error["message"].startswith("\u201cW20O1002\u201d looks like an order number (W + 7 digits)")
    assert "letter O" in error["message"]
    assert error["did_you_mean"][0] == "W2001002"
    status, view = await track(service, error["did_you_mean"][0])
    assert status == 200
    assert view["order_number"] == "W2001002"


async def test_demo_seed_ups_number_with_one_wrong_digit(service: Any, redis_client: aioredis.Redis) -> None:
    """1ZTRKSVC0100000025: a UPS number whose check digit fails; the registered neighbour is suggested."""
    await seed(Registry(redis_client))
    status, body = await track(service, "1ZTRKSVC0100000025")
    assert status == 404
    assert "looks like a UPS tracking number, but its check digit does not match" in body["error"]["message"]
    assert body["error"]["did_you_mean"] == ["1ZTRKSVC0100000015"]  # ups-label-2h's, the one registered
    status, view = await track(service, "1ZTRKSVC0100000015")
    assert status == 200
    assert view["shipments"][0]["tracking_number"] == "1ZTRKSVC0100000015"


async def test_demo_seed_nothing_near_gets_a_kind_message_and_no_suggestion(
    service: Any, redis_client: aioredis.Redis
) -> None:
    """W9999999 and hello: a message of their own kind, echoed as typed, did_you_mean empty."""
    await seed(Registry(redis_client))
    status, body = await track(service, "W9999999")
    assert status == 404
    assert body["error"]["message"] == (
        "\u201cW9999999\u201d looks like an order number (W + 7 digits), but nothing is registered under it."
    )
    assert body["error"]["did_you_mean"] == []
    status, body = await track(service, "hello")
    assert status == 404
    assert body["error"]["message"].startswith("\u201chello\u201d does not look like any reference")
    assert "HELLO" not in body["error"]["message"]
    assert body["error"]["did_you_mean"] == []


async def test_a_store_order_is_suggested_as_registered(service: Any, redis_client: aioredis.Redis) -> None:
    """S-4477-O192: the store order as it is written (dashes), and it resolves."""
    await seed(Registry(redis_client))
    status, body = await track(service, "S-4477-O192")
    assert status == 404
    assert body["error"]["did_you_mean"][0] == "S-4477-0192"


async def test_echo_is_the_text_as_typed_and_safe(service: Any) -> None:
    """Markup comes back as JSON text, exactly as typed (the page renders it as text)."""
    response = await service.get("/v1/track/%3Cb%3Ehi%3C%2Fb%3E", headers=AGENT)
    body = await response.json()
    assert response.status == 404
    assert response.content_type == "application/json"
    assert body["error"]["message"].startswith("\u201c<b>hi</b>\u201d does not look like")


async def test_at_most_five_only_registered_in_a_fixed_order(
    service: Any, redis_client: aioredis.Redis
) -> None:
    """Ten registered orders one digit away: five suggestions, each registered, the same each time."""
    registry = Registry(redis_client)
    for digit in range(10):
        await registry.put_order(OrderRecord(order_number=f"W200100{digit}"))
    status, body = await track(service, "W200100")
    assert status == 404
    near = body["error"]["did_you_mean"]
    assert len(near) == typos.MAX_SUGGESTIONS
    assert len(set(near)) == len(near)
    for reference in near:
        assert (await track(service, reference))[0] == 200
    assert (await track(service, "W200100"))[1]["error"]["did_you_mean"] == near
    assert near == ["W2001000", "W2001001", "W2001002", "W2001003", "W2001004"]


async def test_unregistered_variants_are_never_suggested(service: Any, redis_client: aioredis.Redis) -> None:
    """A valid UPS number one digit away that is not registered is not suggested."""
    await seed(Registry(redis_client))
    _, body = await track(service, "1ZTRKSVC0100000025")
    assert "1ZTRKSVC0100000024" not in body["error"]["did_you_mean"]  # valid, but registered by no one


async def test_the_portal_never_suggests(service: Any, redis_client: aioredis.Redis) -> None:
    """A customer's near miss gets the portal's one answer: no did_you_mean, no neighbour named."""
    await seed(Registry(redis_client))
    near = await service.get("/v1/portal/orders/W20O1002", params={"postal_code": "75201"}, headers=PORTAL)
    far = await service.get("/v1/portal/orders/W9999998", params={"postal_code": "75201"}, headers=PORTAL)
    near_text, far_text = await near.text(), await far.text()
    assert near.status == far.status == 404
    assert "did_you_mean" not in near_text
    assert "W2001002" not in near_text
    assert near_text == far_text


async def test_the_batch_gives_the_message_without_suggestions(
    service: Any, redis_client: aioredis.Redis
) -> None:
    """POST /v1/track items carry the kind message only (one round trip per 404 would multiply by 100)."""
    await seed(Registry(redis_client))
    response = await service.post("/v1/track", json={"references": ["W20O1002"]}, headers=AGENT)
    [item] = (await response.json())["results"]
    assert item["error"]["code"] == "reference_not_found"
    assert "letter O" in item["error"]["message"]
    assert "did_you_mean" not in item["error"]


@pytest.mark.single_redis  # reads one server's command statistics
async def test_cost_of_a_404_does_not_grow_with_the_registry(
    service: Any, redis_client: aioredis.Redis
) -> None:
    """HMGETs per 404: the same with 10 and with 2,010 registered orders (many of them near), in one trip."""
    registry = Registry(redis_client)
    for digit in range(10):
        await registry.put_order(OrderRecord(order_number=f"W200100{digit}"))

    async def commands_for_one_404() -> int:
        await redis_client.config_resetstat()
        status, _ = await track(service, "W200100")
        assert status == 404
        return await hmget_calls(redis_client)

    small = await commands_for_one_404()
    for n in range(2000):
        await registry.put_order(OrderRecord(order_number=f"W{2000000 + n * 7:07d}"))
    large = await commands_for_one_404()
    assert small == large == 1 + len(typos.variants("W200100"))  # resolve, then one HMGET per variant
    assert large <= 1 + typos.MAX_VARIANTS


async def test_redis_failing_while_looking_for_suggestions_is_still_a_true_404(
    own_redis: RedisServer, service_with: Callable[..., Any]
) -> None:
    """
    Redis answers the lookup but refuses the suggestions (an ACL allows the one key): 404, no
    did_you_mean, and the message says near matches could not be looked up; never a 500.
    """
    admin = aioredis.Redis.from_url(own_redis.url)
    try:
        await seed(Registry(admin))
        await admin.execute_command(
            "ACL", "SETUSER", "narrow", "on", ">narrow-pw", "+@all", "&*", "~[^t]*", "~tracksvc:[^r]*",
            "~tracksvc:r[^e]*", "~tracksvc:ref:{r:W20O1002}",
        )
        url = own_redis.url.replace("redis://", "redis://narrow:narrow-pw@")
        client = await service_with(redis_url=url)
        status, body = await track(client, "W20O1002")
        assert status == 404
        assert body["error"]["code"] == "reference_not_found"
        assert "did_you_mean" not in body["error"]
        assert "Near matches could not be looked up right now" in body["error"]["message"]
    finally:
        await admin.aclose()


async def test_redis_down_is_503_not_404(own_redis: RedisServer, service_with: Callable[..., Any]) -> None:
    """The registry cannot be read at all: the existing rule, 503 registry_unavailable, for both typos."""
    client = await service_with(redis_url=own_redis.url)
    own_redis.close()
    for reference in ("W20O1002", "1ZTRKSVC0100000025"):
        response = await client.get(f"/v1/track/{reference}", headers=AGENT)
        body = await response.json()
        assert response.status == 503, body
        assert body["error"]["code"] == "registry_unavailable"
        assert response.headers["Retry-After"]
