"""
The portal cannot be locked for everyone: the per-client limit counts the
real client (the rightmost forwarded-for address that is not a trusted
proxy), and failures on other orders never lock a customer out of theirs.

The aiohttp test client connects from 127.0.0.1: as the portal backend, it
is made a trusted proxy with ``TRACKSVC_TRUSTED_PROXIES=127.0.0.1/32``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.conftest import PORTAL
from tests.tracksvc.test_portal import portal
from tracksvc.api.routes.portal import failure_key_prefix, forwarded_client
from tracksvc.dev.seed import seed
from tracksvc.registry.store import Registry

#: Seeded orders and their destination postal codes.
CUSTOMER_ORDER, CUSTOMER_CODE = "W2001001", "11201"
OTHER_ORDERS = ("W2001002", "W2001005", "W7654321", "W0000001", "W0000002")

BEHIND_PROXY = {"portal_client_ip_header": "X-Forwarded-For", "trusted_proxies": "127.0.0.1/32"}


@pytest.fixture
async def seeded(redis_client: aioredis.Redis) -> Registry:
    """The seed stories in the registry."""
    registry = Registry(redis_client)
    await seed(registry)
    return registry


def forwarded(*entries: str) -> dict[str, str]:
    """Portal headers as the backend sends them, with an X-Forwarded-For chain."""
    return {**PORTAL, "X-Forwarded-For": ", ".join(entries)}


async def test_without_a_client_header_failures_lock_no_customer_out(
    service_with: Callable[..., Any], seeded: Registry, redis_client: aioredis.Redis
) -> None:
    """Behind a backend, no client header: guesses on other orders never block the right code for this one."""
    client = await service_with(portal_max_failures=3)
    for order_number in OTHER_ORDERS:
        status, _, _, _ = await portal(client, order_number, "00000")
        assert status == 404
    status, body, _, _ = await portal(client, CUSTOMER_ORDER, CUSTOMER_CODE)
    assert status == 200
    assert body["order_number"] == CUSTOMER_ORDER
    keys = {k.decode() for k in await redis_client.keys(f"{failure_key_prefix}*")}
    assert not any("client:" in k for k in keys)


async def test_a_rotated_leftmost_entry_does_not_escape_the_client_limit(
    service_with: Callable[..., Any], seeded: Registry
) -> None:
    """The client writes the leftmost entry; the proxy appends the real address, and that is what counts."""
    client = await service_with(portal_max_failures=3, **BEHIND_PROXY)
    for n, order_number in enumerate(OTHER_ORDERS[:3]):
        headers = forwarded(f"192.0.2.{n}", "198.51.100.20")
        status, _, _, _ = await portal(client, order_number, "00000", headers=headers)
        assert status == 404
    locked, body, _, headers = await portal(
        client, OTHER_ORDERS[3], "00000", headers=forwarded("192.0.2.99", "198.51.100.20")
    )
    assert (locked, body["error"]["code"]) == (429, "too_many_attempts")
    assert int(headers["Retry-After"]) > 0
    other, _, _, _ = await portal(
        client, CUSTOMER_ORDER, CUSTOMER_CODE, headers=forwarded("198.51.100.20", "198.51.100.21")
    )
    assert other == 200


async def test_trusted_proxies_are_skipped_from_the_right(
    service_with: Callable[..., Any], seeded: Registry
) -> None:
    """Chains through several trusted proxies count the address left of the last trusted one."""
    client = await service_with(
        portal_max_failures=2, portal_client_ip_header="X-Forwarded-For",
        trusted_proxies="127.0.0.1/32,10.0.0.0/8",
    )
    for n, order_number in enumerate(OTHER_ORDERS[:2]):
        headers = forwarded(f"192.0.2.{n}", "203.0.113.5", "10.1.2.3")
        await portal(client, order_number, "00000", headers=headers)
    locked, _, _, _ = await portal(client, CUSTOMER_ORDER, CUSTOMER_CODE,
                                   headers=forwarded("192.0.2.50", "203.0.113.5", "10.9.9.9"))
    assert locked == 429
    fine, _, _, _ = await portal(client, CUSTOMER_ORDER, CUSTOMER_CODE,
                                 headers=forwarded("203.0.113.5", "203.0.113.6", "10.1.2.3"))
    assert fine == 200


async def test_an_untrusted_peer_is_the_client_whatever_it_forwards(
    service_with: Callable[..., Any], seeded: Registry
) -> None:
    """A peer not in TRACKSVC_TRUSTED_PROXIES: its X-Forwarded-For is not read, the peer itself counts."""
    client = await service_with(portal_max_failures=3, portal_client_ip_header="X-Forwarded-For")
    for n, order_number in enumerate(OTHER_ORDERS[:3]):
        await portal(client, order_number, "00000", headers=forwarded(f"198.51.100.{n}"))
    locked, _, _, _ = await portal(client, OTHER_ORDERS[3], "00000", headers=forwarded("198.51.100.77"))
    assert locked == 429


async def test_a_trusted_backend_without_the_header_is_not_a_client(
    service_with: Callable[..., Any], seeded: Registry
) -> None:
    """From a trusted proxy that sends no client address, only the per-order limit applies."""
    client = await service_with(portal_max_failures=3, **BEHIND_PROXY)
    for order_number in OTHER_ORDERS:
        assert (await portal(client, order_number, "00000"))[0] == 404
    assert (await portal(client, CUSTOMER_ORDER, CUSTOMER_CODE))[0] == 200


async def test_the_per_order_counter_counts_every_spelling_of_the_order(
    service_with: Callable[..., Any], seeded: Registry
) -> None:
    """Guesses spelled w-2001-001, W 2001001 ... fill one counter: the order locks after the limit."""
    client = await service_with(portal_max_failures=3)
    for spelling in ("w-2001-001", "W 2001001", "w2001001"):
        assert (await portal(client, spelling, "00000"))[0] == 404
    locked, _, _, _ = await portal(client, CUSTOMER_ORDER, CUSTOMER_CODE)
    assert locked == 429  # strict per order (README: why the right code waits too)
    assert (await portal(client, "W2001002", "75201"))[0] == 200


@pytest.mark.parametrize(
    ("entries", "trusted", "expected"),
    [
        (["192.0.2.1", "198.51.100.20"], ["127.0.0.0/8"], "198.51.100.20"),
        (["198.51.100.20", "10.0.0.2"], ["10.0.0.0/8"], "198.51.100.20"),
        (["6.6.6.6", "198.51.100.20", "10.0.0.2", "10.0.0.3"], ["10.0.0.0/8"], "198.51.100.20"),
        (["10.0.0.2", "10.0.0.3"], ["10.0.0.0/8"], None),
        ([], ["10.0.0.0/8"], None),
        (["198.51.100.20:51234"], [], "198.51.100.20"),
        (["[2001:db8:1:2::7]:443"], [], "2001:db8:1:2::/64"),
        (["2001:db8:1:2:aaaa::1"], [], "2001:db8:1:2::/64"),
        (["::ffff:198.51.100.20"], [], "198.51.100.20"),
        (["198.51.100.20", " ", "unknown"], [], "unknown"),
    ],
)
def test_the_client_is_the_rightmost_untrusted_entry(
    entries: list[str], trusted: list[str], expected: str | None
) -> None:
    """Right to left past trusted proxies; ports dropped; IPv6 by its /64; mapped IPv4 as IPv4."""
    networks = [ipaddress.ip_network(t) for t in trusted]
    assert forwarded_client(entries, networks) == expected


def test_trusted_proxies_must_be_addresses(make_settings: Callable[..., Any]) -> None:
    """A typo in TRACKSVC_TRUSTED_PROXIES stops the settings from loading."""
    with pytest.raises(ValueError, match="TRUSTED_PROXIES"):
        make_settings(trusted_proxies="10.0.0.0/8,proxy.internal")
