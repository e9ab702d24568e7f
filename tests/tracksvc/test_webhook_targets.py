"""
Webhooks cannot be aimed inside: where a callback may point, checked when
subscribing and on every send, on the connection actually used.

Only loopback is ever connected to: refusals of other addresses are shown
before any connection (literal addresses never reach DNS), and public
addresses are judged by the decision function alone.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis
import structlog
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from tests.conftest import ADMIN, AGENT, Sandbox, serve_on_loopback
from tests.contract import assert_matches
from tests.tracksvc.test_push import ALERT_NUMBER, FAST, alert, post_event, settle
from tracksvc.api.keys import redis_key
from tracksvc.freshness.netguard import (
    GuardedResolver,
    TargetPolicy,
    TargetRefused,
    address_refusal,
    check_target,
    parse_ip_host,
)
from tracksvc.freshness.webhooks import DEAD, KEY_PREFIX, OUTBOX, owner_key, owner_of

SUBS = "/v1/subscriptions"

#: A UPS sandbox number: a reference a subscription may name.
REFERENCE = "1ZTRKSVC0100000033"

#: The UPS webhook key these tests configure.
UPS_WEBHOOK_KEY = "ups-webhook-test-key"


@dataclass
class Hits:
    """A receiver on 127.0.0.1 that counts what reaches it."""

    url: str = ""
    received: list[bytes] = field(default_factory=list)
    answer: Callable[[], web.StreamResponse] = lambda: web.Response(status=204)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.received.append(await request.read())
        return self.answer()


async def _serve(hits: Hits) -> web.AppRunner:
    app = web.Application()
    app.router.add_post("/hook", hits.handle)
    runner, url = await serve_on_loopback(app)
    hits.url = f"{url}/hook"
    return runner


@pytest.fixture
async def hits() -> AsyncIterator[Hits]:
    """One counting receiver on loopback."""
    state = Hits()
    runner = await _serve(state)
    yield state
    await runner.cleanup()


@pytest.fixture
async def second_hits() -> AsyncIterator[Hits]:
    """Another counting receiver on loopback."""
    state = Hits()
    runner = await _serve(state)
    yield state
    await runner.cleanup()


async def subscribe(client: Any, url: str, headers: dict[str, str] = AGENT,
                    reference: str = REFERENCE) -> tuple[int, Any]:
    response = await client.post(SUBS, json={"callback_url": url, "reference": reference}, headers=headers)
    body = await response.json()
    assert_matches(SUBS, "post", response.status, body)
    return response.status, body


async def stored_subscriptions(redis_client: aioredis.Redis) -> list[bytes]:
    return list(await redis_client.keys(f"{KEY_PREFIX}sub:*"))


async def eventually(check: Callable[[], Any], timeout_s: float = 10.0) -> None:
    """Wait until the background sender has done what ``check`` (an async predicate) looks for."""
    for _ in range(int(timeout_s / 0.01)):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the background sender never got there")


# -- subscribe time ---------------------------------------------------------------

REFUSED_AT_SUBSCRIBE = [
    ("http://127.0.0.1/hook", "loopback"),
    ("http://localhost:8080/hook", "loopback"),
    ("http://[::1]/hook", "loopback"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://10.0.0.5/hook", "private"),
    ("http://172.16.3.4/hook", "private"),
    ("http://192.168.1.1/hook", "private"),
    ("http://100.64.0.1/hook", "carrier-grade NAT"),
    ("http://[fd12:3456::1]/hook", "unique local"),
    ("http://[fe80::1]/hook", "link-local"),
    ("http://224.0.0.1/hook", "multicast"),
    ("http://[ff02::1]/hook", "multicast"),
    ("http://0.0.0.0/hook", "unspecified"),
    ("http://[::]/hook", "unspecified"),
    ("http://255.255.255.255/hook", "reserved"),
    ("http://240.0.0.1/hook", "reserved"),
    ("http://192.0.2.10/hook", "documentation"),
    ("http://[::ffff:127.0.0.1]/hook", "IPv4-mapped form of 127.0.0.1"),
    ("http://[::ffff:169.254.169.254]/hook", "IPv4-mapped form of 169.254.169.254"),
    ("http://[::127.0.0.1]/hook", "IPv4-compatible form of 127.0.0.1"),
    ("http://[2002:a00:5::1]/hook", "6to4 form of 10.0.0.5"),
    ("http://[64:ff9b::a9fe:a9fe]/hook", "NAT64 form of 169.254.169.254"),
    ("http://2130706433/hook", "loopback"),
    ("http://0x7f000001/hook", "loopback"),
    ("http://0177.0.0.1/hook", "loopback"),
    ("http://127.1/hook", "loopback"),
    ("http://0x7f.1/hook", "loopback"),
    ("http://127.0.0.1:6379/", "loopback"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED_AT_SUBSCRIBE, ids=[u for u, _ in REFUSED_AT_SUBSCRIBE])
async def test_internal_callbacks_are_refused_when_subscribing(
    service_with: Callable[..., Any], redis_client: aioredis.Redis, sandbox: Sandbox, url: str, reason: str
) -> None:
    """By default each internal or numeric-spelled target is a 422 saying why; nothing stored or asked."""
    client = await service_with()
    status, body = await subscribe(client, url)
    assert status == 422
    assert body["error"]["code"] == "callback_refused"
    assert body["error"]["details"][0]["field"] == "callback_url"
    assert reason in body["error"]["details"][0]["message"]
    assert reason in body["error"]["message"]
    assert await stored_subscriptions(redis_client) == []
    assert sum(sandbox.state.calls.values()) == 0


async def test_the_private_opt_in_opens_loopback_never_metadata_multicast_or_unspecified(
    service_with: Callable[..., Any], hits: Hits
) -> None:
    """The private opt-in lets a 127.0.0.1 receiver in (by address or localhost), never these."""
    client = await service_with(webhook_allow_private_targets=True)
    assert (await subscribe(client, hits.url))[0] == 201
    assert (await subscribe(client, hits.url.replace("127.0.0.1", "localhost")))[0] == 201
    for url in ("http://169.254.169.254/latest/meta-data/", "http://224.0.0.1/h", "http://0.0.0.0:80/h"):
        status, body = await subscribe(client, url)
        assert (status, body["error"]["code"]) == (422, "callback_refused"), url


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("[::1]", "::1"),
        ("example.com", None),
        ("localhost", None),
        ("1.2.3.4.5", None),
    ],
)
def test_hosts_are_read_the_way_a_resolver_reads_them(host: str, expected: str | None) -> None:
    """Numeric spellings become the address getaddrinfo would use; names stay names."""
    parsed = parse_ip_host(host)
    assert (str(parsed) if parsed is not None else None) == expected


@pytest.mark.parametrize(
    "address",
    ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"],
)
def test_public_addresses_pass_the_decision(address: str) -> None:
    """Public addresses (and IPv6 forms of them) are allowed: judged, never connected to."""
    assert address_refusal(ipaddress.ip_address(address), allow_private=False) is None


# -- a resolver we control (no DNS, no traffic) --------------------------------------


class StubResolver(AbstractResolver):
    """Answers names from a script: one answer per call, the last one repeated."""

    def __init__(self, answers: list[list[str]]) -> None:
        self.answers = answers
        self.calls = 0

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        return [
            ResolveResult(hostname=host, host=a, port=port,
                          family=socket.AF_INET6 if ":" in a else socket.AF_INET, proto=0,
                          flags=socket.AI_NUMERICHOST)
            for a in addresses
        ]

    async def close(self) -> None:
        return None


class LoopbackOnly(AbstractResolver):
    """The test's own safety net: whatever the guard returns must be loopback, or nothing connects."""

    def __init__(self, inner: AbstractResolver) -> None:
        self.inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self.inner.resolve(host, port, family)
        for answer in answers:
            if not ipaddress.ip_address(answer["host"]).is_loopback:
                raise AssertionError(f"the guard let {answer['host']} through")
        return answers

    async def close(self) -> None:
        await self.inner.close()


async def _post_through(resolver: AbstractResolver, url: str) -> BaseException | None:
    connector = aiohttp.TCPConnector(resolver=LoopbackOnly(resolver), use_dns_cache=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        try:
            async with session.post(url, data=b"{}", allow_redirects=False) as response:
                await response.read()
        except aiohttp.ClientError as exc:
            return exc
    return None


async def test_a_rebinding_name_is_refused_on_the_connection_used(hits: Hits) -> None:
    """A name that answered a public address when checked and 127.0.0.1 at send time gets no connection."""
    port = hits.url.split(":")[2].split("/")[0]
    stub = StubResolver([["93.184.215.14"], ["127.0.0.1"]])
    guard = GuardedResolver(TargetPolicy(), stub)
    first = await guard.resolve("rebind.test", int(port), socket.AF_UNSPEC)  # the subscribe-time look
    assert [a["host"] for a in first] == ["93.184.215.14"]
    error = await _post_through(guard, f"http://rebind.test:{port}/hook")
    assert isinstance(error, aiohttp.ClientConnectorError)
    assert isinstance(error.os_error, TargetRefused)
    assert "loopback" in error.os_error.reason
    assert hits.received == []


async def test_one_bad_address_in_an_answer_refuses_the_whole_answer(hits: Hits) -> None:
    """Public first and 127.0.0.1 second in one answer: refused, so neither is connected to."""
    port = hits.url.split(":")[2].split("/")[0]
    guard = GuardedResolver(TargetPolicy(), StubResolver([["93.184.215.14", "127.0.0.1"]]))
    error = await _post_through(guard, f"http://mixed.test:{port}/hook")
    assert isinstance(error, aiohttp.ClientConnectorError)
    assert isinstance(error.os_error, TargetRefused)
    assert hits.received == []
    with pytest.raises(TargetRefused, match="loopback"):
        await check_target(f"http://mixed.test:{port}/hook", TargetPolicy(),
                           resolver=StubResolver([["93.184.215.14", "127.0.0.1"]]))


async def test_the_guard_connects_to_what_it_allowed(hits: Hits) -> None:
    """Control: with the private opt-in the same stubbed name reaches the loopback receiver."""
    port = hits.url.split(":")[2].split("/")[0]
    guard = GuardedResolver(TargetPolicy(allow_private=True), StubResolver([["127.0.0.1"]]))
    assert await _post_through(guard, f"http://rebind.test:{port}/hook") is None
    assert len(hits.received) == 1


# -- send time ---------------------------------------------------------------------


async def _subscribe_then_change(
    service_with: Callable[..., Any], url: str, later: dict[str, Any]
) -> tuple[Any, str]:
    """Subscribe with the opt-in on; stop; restart with ``later`` settings and push a change."""
    first = await service_with(**FAST, ups_webhook_key=UPS_WEBHOOK_KEY, webhook_allow_private_targets=True)
    await post_event(first, alert("out_for_delivery"), headers={"x-api-key": UPS_WEBHOOK_KEY})
    status, sub = await subscribe(first, url, reference=ALERT_NUMBER)
    assert status == 201
    await first.close()
    second = await service_with(**FAST, ups_webhook_key=UPS_WEBHOOK_KEY, **later)
    await post_event(second, alert("delivery"), headers={"x-api-key": UPS_WEBHOOK_KEY})
    await settle(second)
    redis = second.server.app[redis_key]

    async def buried() -> bool:
        return bool(await redis.llen(DEAD))

    await eventually(buried)
    return second, sub["id"]


async def test_a_subscription_made_with_the_opt_in_is_refused_at_send_without_it(
    service_with: Callable[..., Any], redis_client: aioredis.Redis, hits: Hits
) -> None:
    """The sender's own rule applies: no opt-in, nothing reaches 127.0.0.1; given up, logged sans query."""
    url = hits.url + "?token=query-secret-123"
    with structlog.testing.capture_logs() as logs:
        _, sub_id = await _subscribe_then_change(service_with, url, {})

        async def logged() -> bool:
            return any(e["event"] == "webhook_target_refused" for e in logs)

        await eventually(logged)  # the sender logs right after giving the delivery up
    assert hits.received == []
    assert await redis_client.hlen(OUTBOX) == 0
    dead = [orjson.loads(raw) for raw in await redis_client.lrange(DEAD, 0, -1)]
    assert [(d["subscription_id"], d["attempts"]) for d in dead] == [(sub_id, 1)]
    assert "loopback" in dead[0]["last_error"]
    refused = [e for e in logs if e["event"] == "webhook_target_refused"]
    assert len(refused) == 1
    assert refused[0]["callback"] == hits.url
    assert "query-secret-123" not in repr(logs)


async def test_a_narrowed_allow_list_stops_existing_subscriptions(
    service_with: Callable[..., Any], redis_client: aioredis.Redis, hits: Hits
) -> None:
    """TRACKSVC_WEBHOOK_ALLOWED_HOSTS set after subscribing: the next change is not sent."""
    _, sub_id = await _subscribe_then_change(
        service_with, hits.url, {"webhook_allow_private_targets": True,
                                 "webhook_allowed_hosts": "hooks.example.com"}
    )
    assert hits.received == []
    dead = [orjson.loads(raw) for raw in await redis_client.lrange(DEAD, 0, -1)]
    assert [d["subscription_id"] for d in dead] == [sub_id]
    assert "TRACKSVC_WEBHOOK_ALLOWED_HOSTS" in dead[0]["last_error"]


async def test_redirects_are_not_followed(
    service_with: Callable[..., Any], redis_client: aioredis.Redis, hits: Hits, second_hits: Hits
) -> None:
    """A receiver answering 302 elsewhere: the other receiver gets nothing; the attempt counts as failed."""
    hits.answer = lambda: web.Response(status=302, headers={"Location": second_hits.url})
    client = await service_with(**{**FAST, "webhook_retry_base_s": 30.0},
                                ups_webhook_key=UPS_WEBHOOK_KEY, webhook_allow_private_targets=True)
    await post_event(client, alert("out_for_delivery"), headers={"x-api-key": UPS_WEBHOOK_KEY})
    assert (await subscribe(client, hits.url, reference=ALERT_NUMBER))[0] == 201
    await post_event(client, alert("delivery"), headers={"x-api-key": UPS_WEBHOOK_KEY})

    async def failed_once() -> bool:
        pending = [orjson.loads(raw) for raw in await redis_client.hvals(OUTBOX)]
        return [(p["attempts"], p["last_error"]) for p in pending] == [(1, "HTTP 302")]

    await eventually(failed_once)
    await settle(client)
    assert len(hits.received) == 1
    assert second_hits.received == []


# -- per-key cap ---------------------------------------------------------------------


async def test_each_api_key_holds_a_bounded_number_of_subscriptions(
    service_with: Callable[..., Any], redis_client: aioredis.Redis
) -> None:
    """Past the cap: 409 subscription_limit_reached; another key is counted apart; a delete frees a place."""
    client = await service_with(webhook_max_subscriptions_per_key=2, webhook_allow_private_targets=True)
    first = await subscribe(client, "http://127.0.0.1:9/a")
    assert first[0] == 201
    assert (await subscribe(client, "http://127.0.0.1:9/b"))[0] == 201
    status, body = await subscribe(client, "http://127.0.0.1:9/c")
    assert (status, body["error"]["code"]) == (409, "subscription_limit_reached")
    assert "2" in body["error"]["message"]
    assert (await subscribe(client, "http://127.0.0.1:9/d", headers=ADMIN))[0] == 201

    response = await client.delete(f"{SUBS}/{first[1]['id']}", headers=AGENT)
    assert response.status == 204
    assert (await subscribe(client, "http://127.0.0.1:9/e"))[0] == 201
    assert await redis_client.scard(owner_key(owner_of("agent-key"))) == 2


async def test_the_cap_is_counted_by_a_hash_never_the_key(
    service_with: Callable[..., Any], redis_client: aioredis.Redis
) -> None:
    """The API key appears in no Redis key name and no stored value; its count sits under {webhooks}."""
    client = await service_with(webhook_allow_private_targets=True)
    assert (await subscribe(client, "http://127.0.0.1:9/a"))[0] == 201
    names = [k.decode() for k in await redis_client.keys("*")]
    assert owner_key(owner_of("agent-key")) in names
    assert owner_key(owner_of("agent-key")).startswith("tracksvc:{webhooks}:")
    for name in names:
        assert "agent-key" not in name
        if await redis_client.type(name) == b"string":
            assert b"agent-key" not in await redis_client.get(name)


async def test_a_refused_subscription_takes_no_place_under_the_cap(
    service_with: Callable[..., Any], redis_client: aioredis.Redis
) -> None:
    """A subscription refused for its reference gives its place back: the one place is free, then full."""
    client = await service_with(webhook_max_subscriptions_per_key=1, webhook_allow_private_targets=True)
    status, _ = await subscribe(client, "http://127.0.0.1:9/a", reference="W1234567")
    assert status == 404
    assert await redis_client.scard(owner_key(owner_of("agent-key"))) == 0
    assert (await subscribe(client, "http://127.0.0.1:9/a"))[0] == 201
    assert (await subscribe(client, "http://127.0.0.1:9/b"))[0] == 409
