"""
Push in (UPS Track Alert) and push out (signed webhooks), end to end: real
redis-server, the sandbox, and a small receiver app on loopback.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from tests.conftest import AGENT, SAMPLES, Sandbox, load_sample, serve_on_loopback
from tests.contract import assert_matches, assert_schema
from tests.tracksvc.registry_helpers import hours_ago, number_of, register, stalled_ids, track_ok
from tracksvc.api.keys import notifier_key, refresher_key, service_key, webhook_sender_key
from tracksvc.app import create_app
from tracksvc.core.models import Carrier, TrackingEvent, TrackingResult, TrackingStatus
from tracksvc.core.settings import Settings
from tracksvc.dev.redis_server import RedisServer
from tracksvc.economy.cache import CachedAnswer
from tracksvc.freshness.carrier_events import merge_event
from tracksvc.freshness.webhooks import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    backoff_s,
    derive_secret,
    host_allowed,
    idempotency_key,
    sign,
    sub_key,
    validate_callback_url,
    verify,
)

EVENTS = "/v1/carrier-events/ups"
SUBS = "/v1/subscriptions"
SUB = "/v1/subscriptions/{subscription_id}"

#: The UPS webhook key these tests configure (TRACKSVC_UPS_WEBHOOK_KEY); UPS sends it as x-api-key.
UPS_KEY = {"x-api-key": "ups-webhook-test-key"}

#: What every service in this module runs with: a UPS webhook key, and webhooks allowed to
#: reach the receivers on 127.0.0.1 (the private-target opt-in).
PUSH_SETTINGS = {"ups_webhook_key": "ups-webhook-test-key", "webhook_allow_private_targets": True}

#: A callback on loopback that no test expects to be called.
UNUSED_CALLBACK = "http://127.0.0.1:9/hook"

#: The number of the two UPS Track Alert samples.
ALERT_NUMBER = "1Z204W4R0308071865"

#: Fast webhook timings for tests.
FAST = {"webhook_poll_s": 0.02, "webhook_retry_base_s": 0.02, "webhook_retry_max_s": 0.1,
        "webhook_timeout_s": 2.0}


def alert(kind: str) -> dict[str, Any]:
    """One of the two UPS Track Alert samples: ``out_for_delivery`` or ``delivery``."""
    example = {"out_for_delivery": "example_1_out_for_delivery", "delivery": "example_2_delivery"}[kind]
    (path,) = (SAMPLES / "ups").glob(f"*TrackAlert*{example}_message*")
    return dict(load_sample("ups", path.name))


async def post_event(client: Any, payload: Any, headers: dict[str, str] = UPS_KEY) -> tuple[int, Any]:
    """POST a UPS Track Alert; the answer is checked against openapi.yaml."""
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    response = await client.post(EVENTS, data=body, headers={**headers, "Content-Type": "application/json"})
    answer = await response.json()
    assert_matches(EVENTS, "post", response.status, answer)
    return response.status, answer


@dataclass
class Received:
    """One POST the receiver got."""

    headers: dict[str, str]
    body: bytes
    answered: int


@dataclass
class Receiver:
    """A webhook receiver on loopback: records every POST, fails the first ``fail_first``."""

    url: str = ""
    fail_first: int = 0
    fail_always: bool = False
    received: list[Received] = field(default_factory=list)

    @property
    def delivered(self) -> list[Received]:
        return [r for r in self.received if 200 <= r.answered < 300]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        failing = self.fail_always or len(self.received) < self.fail_first
        status = 500 if failing else 204
        self.received.append(Received(dict(request.headers), body, status))
        return web.Response(status=status)


@pytest.fixture
def service_with(
    sandbox: Sandbox, redis_client: aioredis.Redis, make_settings: Callable[..., Settings],
    aiohttp_client: Any,
) -> Callable[..., Any]:
    """The conftest factory, with this module's push settings as defaults."""

    async def build(**overrides: Any) -> Any:
        settings = make_settings(sandbox.url, **{**PUSH_SETTINGS, **overrides})
        return await aiohttp_client(create_app(settings))

    return build


@pytest.fixture
async def service(service_with: Callable[..., Any]) -> Any:
    """The service with this module's push settings."""
    return await service_with()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A receiver app served on 127.0.0.1."""
    state = Receiver()
    app = web.Application()
    app.router.add_post("/hook", state.handle)
    runner, url = await serve_on_loopback(app)
    state.url = f"{url}/hook"
    yield state
    await runner.cleanup()


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Wait for something the background tasks do (fails the test when it never happens)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("the expected delivery never happened")
        await asyncio.sleep(0.01)


async def wait_for_redis(read: Callable[[], Awaitable[int]], expected: int, timeout_s: float = 10.0) -> None:
    """Wait until ``read()`` gives ``expected`` (a background task's write lands a moment later)."""
    deadline = time.monotonic() + timeout_s
    while (value := await read()) != expected:
        assert time.monotonic() < deadline, f"still {value}, expected {expected}"
        await asyncio.sleep(0.01)


async def settle(client: Any) -> None:
    """Every queued evaluation done and every due delivery attempted."""
    app = client.server.app
    await app[notifier_key].idle()
    while await app[webhook_sender_key].deliver_due():
        pass


async def subscribe(
    client: Any, reference: str, url: str, headers: dict[str, str] = AGENT
) -> tuple[int, Any]:
    response = await client.post(SUBS, json={"callback_url": url, "reference": reference}, headers=headers)
    body = await response.json()
    assert_matches(SUBS, "post", response.status, body)
    return response.status, body


def check_signed(received: Received, secret: str) -> dict[str, Any]:
    """The delivery is signed with ``secret``, carries its idempotency key, and matches WebhookEvent."""
    headers = received.headers
    assert verify(secret, headers[TIMESTAMP_HEADER], received.body, headers[SIGNATURE_HEADER])
    assert headers["Content-Type"] == "application/json"
    payload: dict[str, Any] = orjson.loads(received.body)
    assert_schema("WebhookEvent", payload)
    assert headers[IDEMPOTENCY_HEADER] == payload["id"]
    return payload


# -- push in ------------------------------------------------------------------


async def test_ups_samples_update_status_without_a_carrier_call(service: Any, sandbox: Sandbox) -> None:
    """The UPS Track Alert samples make the lookup out_for_delivery, then delivered; UPS is never asked."""
    status, answer = await post_event(service, alert("out_for_delivery"))
    assert status == 200
    assert answer["status"] == "out_for_delivery"
    assert answer["tracking_number"] == ALERT_NUMBER
    view = await track_ok(service, ALERT_NUMBER)
    assert view["status"] == "out_for_delivery"
    assert view["shipments"][0]["freshness"] == "cached"

    status, _ = await post_event(service, alert("delivery"))
    assert status == 200
    view = await track_ok(service, ALERT_NUMBER)
    shipment_view = view["shipments"][0]
    assert view["status"] == "delivered"
    assert [e["status"] for e in shipment_view["events"]] == ["delivered", "out_for_delivery"]
    assert shipment_view["delivered_at"] == "2024-04-23T13:50:04Z"
    assert shipment_view["carrier_status_code"]
    assert sandbox.state.calls["ups:track"] == 0


async def test_a_pushed_event_joins_the_cached_history(service: Any, sandbox: Sandbox) -> None:
    """A number already looked up keeps its events; the pushed one is added first and sets the status."""
    number = number_of("ups-in-transit")
    before = await track_ok(service, number)
    assert sandbox.state.calls["ups:track"] == 1
    payload = alert("delivery")
    payload.update(trackingNumber=number, gmtActivityDate=f"{datetime.now(UTC):%Y%m%d}",
                   gmtActivityTime=f"{datetime.now(UTC):%H%M%S}")
    assert (await post_event(service, payload))[0] == 200
    after = await track_ok(service, number)
    assert after["status"] == "delivered"
    events = after["shipments"][0]["events"]
    assert len(events) == len(before["shipments"][0]["events"]) + 1
    assert events[0]["status"] == "delivered"
    assert sandbox.state.calls["ups:track"] == 1


async def test_a_pushed_scan_takes_a_registered_label_off_the_stalled_list(service: Any) -> None:
    """The warehouse list changes the moment UPS pushes the first scan."""
    await register(service, {"shipment_id": "S-PUSH", "order_number": "W-PUSH", "carrier": "ups",
                             "tracking_number": ALERT_NUMBER, "label_created_at": hours_ago(72)})
    assert await stalled_ids(service) == ["S-PUSH"]
    assert (await post_event(service, alert("out_for_delivery")))[0] == 200
    assert await stalled_ids(service) == []


@pytest.mark.parametrize(
    "headers",
    [{}, {"x-api-key": "nope"}, {"x-api-key": ""}, {"Authorization": "Bearer admin-key"}],
    ids=["none", "wrong", "empty", "bearer-instead"],
)
async def test_ups_events_without_the_credential_are_401(service: Any, headers: dict[str, str]) -> None:
    """Only UPS's own credential is accepted, compared as a whole; nothing is stored otherwise."""
    status, answer = await post_event(service, alert("delivery"), headers=headers)
    assert status == 401
    assert answer["error"]["code"] == "unauthorized"
    view = await track_ok(service, ALERT_NUMBER)  # asks the sandbox, which does not know it
    assert view["status"] == "not_found"


async def test_a_configured_webhook_key_replaces_the_client_id(service_with: Callable[..., Any]) -> None:
    """TRACKSVC_UPS_WEBHOOK_KEY, when set, is the only key accepted (the client id is not)."""
    client = await service_with(ups_webhook_key="portal-managed-key")
    assert (await post_event(client, alert("delivery")))[0] == 401
    assert (await post_event(client, alert("delivery"), headers={"x-api-key": "ups-test-id"}))[0] == 401
    configured = {"x-api-key": "portal-managed-key"}
    assert (await post_event(client, alert("delivery"), headers=configured))[0] == 200


async def test_no_ups_credential_configured_refuses_everything(service_with: Callable[..., Any]) -> None:
    """With no client id and no webhook key, even an empty x-api-key is refused."""
    client = await service_with(ups_client_id="", ups_webhook_key=None)
    assert (await post_event(client, alert("delivery"), headers={"x-api-key": ""}))[0] == 503


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b"[]", 422),
        (orjson.dumps({"trackingNumber": ALERT_NUMBER}), 422),
        (orjson.dumps({"trackingNumber": ALERT_NUMBER, "activityStatus": "D"}), 422),
        (orjson.dumps({"activityStatus": {"type": "D", "code": "FS"}}), 422),
        (orjson.dumps({"trackingNumber": 12.5, "activityStatus": {"type": "D"}}), 422),
        (orjson.dumps({"trackingNumber": ALERT_NUMBER, "activityStatus": {}}), 422),
    ],
    ids=["broken-json", "array", "no-status", "status-not-object", "no-number", "number-float",
         "empty-status"],
)
async def test_malformed_ups_events_are_clear_json_errors(service: Any, body: bytes, status: int) -> None:
    """Broken or incomplete payloads get 400/422 JSON saying what is wrong, never a 500."""
    code, answer = await post_event(service, body)
    assert code == status
    assert answer["error"]["message"]


@pytest.mark.single_redis
async def test_with_redis_down_pushes_and_subscriptions_are_503_json(
    service: Any, redis_server: RedisServer
) -> None:
    """Nothing can be stored: 503 JSON (UPS sends it again), never a 500; fine again once Redis is back."""
    await post_event(service, alert("out_for_delivery"))
    redis_server.kill()
    try:
        status, answer = await post_event(service, alert("delivery"))
        assert status == 503
        response = await service.post(SUBS, json={"callback_url": UNUSED_CALLBACK,
                                                  "reference": ALERT_NUMBER}, headers=AGENT)
        assert response.status == 503
        assert_matches(SUBS, "post", 503, await response.json())
    finally:
        redis_server.start()
    for _ in range(100):  # the pool reconnects by itself
        status, answer = await post_event(service, alert("delivery"))
        if status == 200:
            break
        await asyncio.sleep(0.05)
    assert (status, answer["status"]) == (200, "delivered")


# -- push out -----------------------------------------------------------------


async def test_a_subscription_gets_one_signed_post_per_change(
    service_with: Callable[..., Any], receiver: Receiver, sandbox: Sandbox
) -> None:
    """Out for delivery is the baseline; delivered sends one signed POST; the same event again sends none."""
    client = await service_with(**FAST)
    await post_event(client, alert("out_for_delivery"))
    status, sub = await subscribe(client, ALERT_NUMBER, receiver.url)
    assert status == 201
    assert sub["status"] == "out_for_delivery"

    await post_event(client, alert("delivery"))
    await wait_until(lambda: len(receiver.delivered) == 1)
    payload = check_signed(receiver.delivered[0], sub["secret"])
    assert payload["status"] == "delivered"
    assert payload["previous_status"] == "out_for_delivery"
    assert payload["subscription_id"] == sub["id"]
    assert payload["reference"] == ALERT_NUMBER
    assert payload["shipments"][0]["tracking_number"] == ALERT_NUMBER

    await post_event(client, alert("delivery"))  # UPS sends the same event again
    await settle(client)
    assert len(receiver.received) == 1
    assert await client.server.app[notifier_key].store.pending() == 0
    assert sandbox.state.calls["ups:track"] == 0


async def test_an_order_subscription_hears_about_each_of_its_shipments(
    service_with: Callable[..., Any], receiver: Receiver
) -> None:
    """Subscribed by order number: a push for one of its tracking numbers moves the order and is sent."""
    client = await service_with(**FAST)
    await register(
        client,
        {"shipment_id": "S-A", "order_number": "W-77", "carrier": "ups", "tracking_number": ALERT_NUMBER,
         "label_created_at": hours_ago(20)},
        order={"order_number": "W-77"},
    )
    status, sub = await subscribe(client, "w-77", receiver.url)
    assert status == 201
    assert sub["reference"] == "W-77"
    assert sub["status"] == "label_created"
    await post_event(client, alert("out_for_delivery"))
    await wait_until(lambda: len(receiver.delivered) == 1)
    payload = check_signed(receiver.delivered[0], sub["secret"])
    assert (payload["order_number"], payload["status"]) == ("W-77", "out_for_delivery")
    assert payload["previous_status"] == "label_created"


async def test_failed_deliveries_are_retried_with_the_same_key_and_body(
    service_with: Callable[..., Any], receiver: Receiver
) -> None:
    """The receiver fails twice: the third attempt lands; every attempt is signed, same key, same body."""
    receiver.fail_first = 2
    client = await service_with(**FAST)
    await post_event(client, alert("out_for_delivery"))
    _, sub = await subscribe(client, ALERT_NUMBER, receiver.url)
    await post_event(client, alert("delivery"))
    await wait_until(lambda: len(receiver.delivered) == 1)
    assert [r.answered for r in receiver.received] == [500, 500, 204]
    payloads = [check_signed(r, sub["secret"]) for r in receiver.received]
    assert len({r.headers[IDEMPOTENCY_HEADER] for r in receiver.received}) == 1
    assert len({r.body for r in receiver.received}) == 1
    assert payloads[0]["status"] == "delivered"
    await settle(client)
    assert await client.server.app[notifier_key].store.pending() == 0


async def test_a_delivery_survives_a_restart(
    service_with: Callable[..., Any], receiver: Receiver, redis_client: aioredis.Redis
) -> None:
    """Recorded while the receiver was down, the POST is sent by the next process once it is up."""
    receiver.fail_always = True
    first = await service_with(**FAST)
    await post_event(first, alert("out_for_delivery"))
    _, sub = await subscribe(first, ALERT_NUMBER, receiver.url)
    await post_event(first, alert("delivery"))
    await wait_until(lambda: len(receiver.received) >= 1)
    await first.close()  # the process goes away with the delivery unacknowledged
    pending = await redis_client.hkeys("tracksvc:{webhooks}:outbox")
    assert len(pending) == 1
    # Had it died mid-send, its lease would end in a few seconds; end it now.
    await redis_client.zadd("tracksvc:{webhooks}:due", dict.fromkeys(pending, 0))

    receiver.fail_always = False
    second = await service_with(**FAST)
    await wait_until(lambda: len(receiver.delivered) == 1)
    payload = check_signed(receiver.delivered[0], sub["secret"])
    assert payload["status"] == "delivered"
    await settle(second)
    # The receiver has it; the sender drops it from the outbox once the answer is in.
    await wait_for_redis(lambda: redis_client.hlen("tracksvc:{webhooks}:outbox"), 0)


async def test_a_deleted_subscription_gets_nothing_more(
    service_with: Callable[..., Any], receiver: Receiver
) -> None:
    """DELETE stops the POSTs, pending retries included; a second DELETE is 404 JSON."""
    receiver.fail_always = True
    client = await service_with(**{**FAST, "webhook_retry_base_s": 0.3})
    await post_event(client, alert("out_for_delivery"))
    _, sub = await subscribe(client, ALERT_NUMBER, receiver.url)
    await post_event(client, alert("delivery"))
    await wait_until(lambda: len(receiver.received) == 1)  # failed; a retry is scheduled

    response = await client.delete(f"{SUBS}/{sub['id']}", headers=AGENT)
    assert response.status == 204
    notifier = client.server.app[notifier_key]
    pending = [1]

    async def count() -> None:
        pending[0] = await notifier.store.pending()

    for _ in range(500):  # the sender finds the retry due, and drops it: unsubscribed
        await count()
        if not pending[0]:
            break
        await asyncio.sleep(0.01)
    assert pending == [0]
    assert len(receiver.received) == 1

    receiver.fail_always = False
    newer = alert("out_for_delivery")  # a later scan: a change a subscriber would hear about
    newer.update(gmtActivityDate=f"{datetime.now(UTC):%Y%m%d}", gmtActivityTime=f"{datetime.now(UTC):%H%M%S}")
    await post_event(client, newer)
    assert (await track_ok(client, ALERT_NUMBER))["status"] == "out_for_delivery"
    await settle(client)
    assert len(receiver.received) == 1

    again = await client.delete(f"{SUBS}/{sub['id']}", headers=AGENT)
    body = await again.json()
    assert again.status == 404
    assert_matches(SUB, "delete", 404, body)


async def test_the_clock_alone_changes_a_status_and_the_refresher_sends_it(
    service_with: Callable[..., Any], receiver: Receiver
) -> None:
    """A label passes its grace period with no carrier news: the refresher's sweep sends not_tendered."""
    client = await service_with(**FAST, refresher_period_s=0.01)
    await register(
        client,
        {"shipment_id": "S-CLOCK", "order_number": "W-CLOCK", "carrier": "ups",
         "tracking_number": number_of("ups-label-2h"), "label_created_at": hours_ago(2)},
        order={"order_number": "W-CLOCK"},
    )
    _, sub = await subscribe(client, "W-CLOCK", receiver.url)
    assert sub["status"] == "label_created"
    app = client.server.app
    later = datetime.now(UTC) + timedelta(hours=47)
    app[service_key].clock = lambda: later
    await asyncio.sleep(0.02)  # the subscription's next look is one (short) period away
    await app[refresher_key].run_cycle()
    await wait_until(lambda: len(receiver.delivered) == 1)
    payload = check_signed(receiver.delivered[0], sub["secret"])
    assert (payload["previous_status"], payload["status"]) == ("label_created", "not_tendered")
    assert "not_tendered" in payload["flags"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"callback_url": "ftp://example.com/hook", "reference": ALERT_NUMBER}, 422),
        ({"callback_url": "/relative/hook", "reference": ALERT_NUMBER}, 422),
        ({"callback_url": "http:// spaced.example/hook", "reference": ALERT_NUMBER}, 422),
        ({"callback_url": "https://example.com/" + "x" * 2100, "reference": ALERT_NUMBER}, 422),
        ({"reference": ALERT_NUMBER}, 422),
        ({"callback_url": "https://example.com/hook"}, 422),
        ({"callback_url": "https://example.com/hook", "reference": ALERT_NUMBER, "extra": 1}, 422),
        ({"callback_url": UNUSED_CALLBACK, "reference": "W1234567"}, 404),
        ({"callback_url": UNUSED_CALLBACK, "reference": "1Z\u0001X"}, 400),
    ],
    ids=["ftp", "relative", "space", "too-long", "no-url", "no-reference", "extra-field",
         "unknown-reference", "control-character"],
)
async def test_bad_subscriptions_are_refused_with_json(
    service: Any, body: dict[str, Any], status: int
) -> None:
    """Only http(s) callbacks for references that lead somewhere; each refusal says why."""
    response = await service.post(SUBS, json=body, headers=AGENT)
    answer = await response.json()
    assert response.status == status
    assert_matches(SUBS, "post", status, answer)
    assert answer["error"]["message"]


async def test_a_body_that_is_not_json_is_400(service: Any) -> None:
    """Garbage instead of a JSON object: 400 JSON."""
    response = await service.post(SUBS, data=b"callback_url=x", headers=AGENT)
    assert response.status == 400
    assert_matches(SUBS, "post", 400, await response.json())


async def test_deleting_an_unknown_subscription_is_404(service: Any) -> None:
    """An id nobody issued: 404 JSON."""
    response = await service.delete(f"{SUBS}/sub_nope", headers=AGENT)
    assert response.status == 404
    assert_matches(SUB, "delete", 404, await response.json())


async def test_a_master_secret_derives_secrets_and_keeps_them_out_of_redis(
    service_with: Callable[..., Any], redis_client: aioredis.Redis
) -> None:
    """With TRACKSVC_WEBHOOK_SECRET, the secret is derived per subscription and never stored."""
    client = await service_with(webhook_secret="master-secret-for-tests")
    await post_event(client, alert("out_for_delivery"))
    _, sub = await subscribe(client, ALERT_NUMBER, UNUSED_CALLBACK)
    assert sub["secret"] == derive_secret("master-secret-for-tests", sub["id"])
    stored = orjson.loads(await redis_client.get(sub_key(sub["id"])))
    assert stored["secret"] is None
    assert sub["secret"] not in str(await redis_client.keys("*"))


async def test_a_random_secret_is_kept_for_signing(
    service: Any, redis_client: aioredis.Redis
) -> None:
    """Without a master secret, each subscription gets its own random secret, stored to sign with."""
    await post_event(service, alert("out_for_delivery"))
    _, one = await subscribe(service, ALERT_NUMBER, UNUSED_CALLBACK)
    _, two = await subscribe(service, ALERT_NUMBER, UNUSED_CALLBACK + "b")
    assert one["secret"] != two["secret"]
    assert len(one["secret"]) > 32
    stored = orjson.loads(await redis_client.get(sub_key(one["id"])))
    assert stored["secret"] == one["secret"]


# -- pure parts ---------------------------------------------------------------


def test_signatures_verify_and_tampering_fails() -> None:
    """The signature covers timestamp and body: changing either (or the secret) breaks it."""
    body = b'{"status":"delivered"}'
    signature = sign("s3cret", 1_700_000_000, body)
    assert signature.startswith("sha256=")
    assert len(signature) == 7 + 64
    assert verify("s3cret", "1700000000", body, signature)
    assert not verify("s3cret", "1700000001", body, signature)
    assert not verify("s3cret", "1700000000", body + b" ", signature)
    assert not verify("other", "1700000000", body, signature)
    assert not verify("s3cret", "not-a-number", body, signature)


def test_the_idempotency_key_names_one_change() -> None:
    """Same subscription, status and answer time: same key; any of them different: another key."""
    key = idempotency_key("sub_1", "delivered", "2026-01-01T00:00:00+00:00")
    assert key == idempotency_key("sub_1", "delivered", "2026-01-01T00:00:00+00:00")
    assert key.startswith("sub_1:delivered:")
    assert key != idempotency_key("sub_1", "in_transit", "2026-01-01T00:00:00+00:00")
    assert key != idempotency_key("sub_2", "delivered", "2026-01-01T00:00:00+00:00")
    assert key != idempotency_key("sub_1", "delivered", "2026-01-02T00:00:00+00:00")


@pytest.mark.parametrize(("attempt", "low", "high"), [(1, 2.5, 5), (2, 5, 10), (4, 20, 40), (30, 1800, 3600)])
def test_backoff_doubles_with_jitter_up_to_the_cap(attempt: int, low: float, high: float) -> None:
    """5 s, 10 s, 20 s, ... each jittered between half and all of it, never above the cap."""
    assert backoff_s(attempt, 5, 3600, rand=lambda: 0.0) == low
    assert backoff_s(attempt, 5, 3600, rand=lambda: 1.0) == high


@pytest.mark.parametrize("url", ["https://hooks.example.com/tracksvc?x=1", "http://127.0.0.1:8080/hook"])
def test_http_and_https_callbacks_are_accepted(url: str) -> None:
    """Absolute http(s) URLs with a host pass as they are."""
    assert validate_callback_url(url) == url


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "file:///etc/passwd", "https://", "hook", "http://a b/",
     "https://user:pw@hooks.example.com/h"],
)
def test_other_callbacks_are_refused(url: str) -> None:
    """Other schemes, no host, or spaces: refused with a reason."""
    with pytest.raises(ValueError, match=r"must|not a URL"):
        validate_callback_url(url)


@pytest.mark.parametrize(
    ("url", "allowed", "ok"),
    [
        ("https://hooks.example.com/h", [], True),
        ("https://hooks.example.com/h", ["hooks.example.com"], True),
        ("https://a.hooks.example.com/h", [".example.com"], True),
        ("http://127.0.0.1:9/h", ["hooks.example.com"], False),
        ("https://evil-example.com/h", [".example.com"], False),
    ],
)
def test_callback_hosts_follow_the_allow_list(url: str, allowed: list[str], ok: bool) -> None:
    """TRACKSVC_WEBHOOK_ALLOWED_HOSTS limits where webhooks may go; empty allows any host."""
    assert host_allowed(url, allowed) is ok


async def test_a_callback_host_off_the_allow_list_is_422(service_with: Callable[..., Any]) -> None:
    """Subscribing a callback on a host not allowed is a 422 naming the field, and nothing is stored."""
    client = await service_with(webhook_allowed_hosts="localhost")
    status, body = await subscribe(client, "1ZTRKSVC0100000033", "http://127.0.0.1:6379/")
    assert status == 422
    assert body["error"]["details"][0]["field"] == "callback_url"
    status, _ = await subscribe(client, "1ZTRKSVC0100000033", "http://localhost:9/t")
    assert status == 201


def _event(hours_ago_: float | None, status: TrackingStatus, code: str) -> TrackingEvent:
    when = None if hours_ago_ is None else datetime(2026, 3, 10, 12, tzinfo=UTC) - timedelta(hours=hours_ago_)
    return TrackingEvent(occurred_at=when, status=status, code=code, description=code)


def _cached(*events: TrackingEvent, status: TrackingStatus) -> CachedAnswer:
    result = TrackingResult(carrier=Carrier.ups, tracking_number=ALERT_NUMBER, status=status,
                            events=list(events), estimated_delivery=date(2026, 3, 12))
    return CachedAnswer(result=result, fetched_at=1.0)


def test_a_late_older_event_adds_history_but_keeps_the_status() -> None:
    """Out-of-order push: an event older than the newest known one never rolls the status back."""
    cached = _cached(_event(1, TrackingStatus.delivered, "D"), _event(5, TrackingStatus.in_transit, "I"),
                     status=TrackingStatus.delivered)
    merged = merge_event(cached, Carrier.ups, ALERT_NUMBER, _event(3, TrackingStatus.out_for_delivery, "OT"),
                         received_at=2.0)
    assert merged.result is not None
    assert merged.result.status is TrackingStatus.delivered
    assert [e.code for e in merged.result.events] == ["D", "OT", "I"]
    assert merged.fetched_at == 2.0


def test_a_repeated_event_is_kept_once() -> None:
    """UPS may send an event twice; the history holds it once."""
    event = _event(1, TrackingStatus.in_transit, "AR")
    cached = _cached(event, status=TrackingStatus.in_transit)
    merged = merge_event(cached, Carrier.ups, ALERT_NUMBER, copy.deepcopy(event), received_at=2.0)
    assert merged.result is not None
    assert len(merged.result.events) == 1


def test_an_unmapped_event_never_overrides_a_known_status() -> None:
    """An event the tables could not map joins the history; the status stays what it was."""
    cached = _cached(_event(5, TrackingStatus.in_transit, "I"), status=TrackingStatus.in_transit)
    merged = merge_event(cached, Carrier.ups, ALERT_NUMBER, _event(1, TrackingStatus.unknown, "ZZ"),
                         received_at=2.0, scheduled_delivery=date(2026, 4, 1))
    assert merged.result is not None
    assert merged.result.status is TrackingStatus.in_transit
    assert merged.result.estimated_delivery == date(2026, 3, 12)
    assert merged.result.events[0].code == "ZZ"


def test_a_new_event_sets_status_detail_and_eta() -> None:
    """The newest event decides the status, its words, and the scheduled delivery date."""
    cached = _cached(_event(5, TrackingStatus.in_transit, "I"), status=TrackingStatus.in_transit)
    pushed = _event(None, TrackingStatus.out_for_delivery, "OT")
    merged = merge_event(cached, Carrier.ups, ALERT_NUMBER, pushed, received_at=2.0,
                         scheduled_delivery=date(2026, 3, 11))
    assert merged.result is not None
    assert merged.result.status is TrackingStatus.out_for_delivery
    assert (merged.result.carrier_status_code, merged.result.status_detail) == ("OT", "OT")
    assert merged.result.estimated_delivery == date(2026, 3, 11)


def test_nothing_cached_builds_a_result_from_the_event() -> None:
    """With no cached answer, the event alone is the result."""
    merged = merge_event(None, Carrier.ups, ALERT_NUMBER, _event(1, TrackingStatus.delivered, "D"),
                         received_at=2.0)
    assert merged.result is not None
    assert merged.result.status is TrackingStatus.delivered
    assert merged.result.delivered_at == _event(1, TrackingStatus.delivered, "D").occurred_at
    assert merged.message is None
