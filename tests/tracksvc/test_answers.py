"""
Finished answers kept per replica: served, not rebuilt, and dropped the
moment what they were built from changes, on any replica. Real service,
sandbox and redis-server; two replicas are two apps on one Redis.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.tracksvc.registry_helpers import number_of, put_shipment, register, shipment, track_ok
from tests.tracksvc.test_push import alert, post_event
from tracksvc.api.keys import service_key
from tracksvc.core.models import Carrier, TrackingStatus
from tracksvc.domain import changes
from tracksvc.domain.views import ShipmentView
from tracksvc.service.answers import AnswerCache

WEBHOOK_KEY = "ups-webhook-secret-for-answers"


def answers_of(client: Any) -> AnswerCache:
    """The answer cache of one replica."""
    cache = client.server.app[service_key].answers
    assert cache is not None
    return cache


async def listening(*clients: Any) -> None:
    """Wait (at most 10 s: a cluster client reads its slot map first) until every replica hears changes."""
    deadline = time.monotonic() + 10
    while not all(answers_of(c).listening for c in clients):
        assert time.monotonic() < deadline, "the change listener never subscribed"
        await asyncio.sleep(0.01)


async def until_dropped(client: Any, before: int) -> None:
    """Wait (at most 10 s) until a replica has dropped an answer since ``before``."""
    deadline = time.monotonic() + 10
    while answers_of(client).dropped <= before:
        assert time.monotonic() < deadline, "the change was never heard"
        await asyncio.sleep(0.01)


# -- the cache itself -----------------------------------------------------------------


def test_kept_answers_go_by_tag_by_time_and_by_size() -> None:
    """get finds what put kept; a tag, the clock or the size limit drops it; '*' drops all."""
    cache = AnswerCache(ttl_s=10, max_entries=2)
    cache.listening = True
    one, two, three = ("A", frozenset()), ("B", frozenset()), ("C", frozenset())
    cache.put(one, b"1", valid_s=60, tags={"r:A", "t:ups:1"})
    cache.put(two, b"2", valid_s=60, tags={"r:B"})
    assert (cache.get(one), cache.get(two)) == (b"1", b"2")
    cache.drop({"t:ups:1"})
    assert (cache.get(one), cache.get(two)) == (None, b"2")
    cache.put(one, b"1", valid_s=0.01, tags={"r:A"})
    time.sleep(0.02)
    assert cache.get(one) is None
    cache.put(one, b"1", valid_s=60, tags=set())
    cache.put(three, b"3", valid_s=60, tags=set())  # over the size: the least recently used goes
    assert (cache.get(two), cache.get(one), cache.get(three)) == (None, b"1", b"3")
    cache.drop({changes.EVERYTHING})
    assert len(cache) == 0


def test_nothing_is_kept_while_changes_cannot_be_heard() -> None:
    """Without a subscription no answer is kept, and one kept before is not served."""
    cache = AnswerCache(ttl_s=10, max_entries=10)
    key = ("A", frozenset[str]())
    cache.put(key, b"1", valid_s=60, tags=set())
    assert cache.get(key) is None
    cache.listening = True
    cache.put(key, b"1", valid_s=60, tags=set())
    cache.listening = False
    assert cache.get(key) is None


def test_a_change_message_that_cannot_be_read_drops_everything() -> None:
    """An unreadable change is taken as 'everything changed', never ignored."""
    assert changes.decode(b"not json") == {changes.EVERYTHING}
    assert changes.decode(b'{"a": 1}') == {changes.EVERYTHING}
    assert changes.decode(changes.encode({"r:A"})) == {"r:A"}
    assert changes.decode(changes.encode({f"r:{i}" for i in range(changes.MAX_TAGS + 1)})) == {"*"}


# -- in the service ---------------------------------------------------------------------


async def test_a_cached_lookup_is_served_from_the_kept_answer(service_with: Callable[..., Any]) -> None:
    """The second lookup is the kept body: same as_of, freshness 'cached' instead of 'live'."""
    client = await service_with()
    await listening(client)
    number = number_of("ups-in-transit")
    first = await track_ok(client, number)
    assert first["shipments"][0]["freshness"] == "live"
    assert len(answers_of(client)) == 1
    second = await track_ok(client, number)
    assert second["shipments"][0]["freshness"] == "cached"
    assert second["shipments"][0]["as_of"] == first["shipments"][0]["as_of"]
    assert {k: v for k, v in second.items() if k != "shipments"} == {
        k: v for k, v in first.items() if k != "shipments"
    }


async def test_a_registration_on_one_replica_reaches_the_other(service_with: Callable[..., Any]) -> None:
    """Replica B keeps an order's answer; a new shipment PUT on replica A is in B's next answer."""
    a, b = await service_with(), await service_with()
    await listening(a, b)
    await register(a, shipment("ans-1", "ups-in-transit", order_number="W-ANS-1"))
    assert len((await track_ok(b, "W-ANS-1"))["shipments"]) == 1
    # On a cluster the registration's message may reach B (through another node) only
    # after B kept the answer, and drop it: B keeps it again on a later lookup.
    deadline = time.monotonic() + 2
    while len(answers_of(b)) != 1:
        assert time.monotonic() < deadline, "B never kept the order's answer"
        await asyncio.sleep(0.05)
        await track_ok(b, "W-ANS-1")
    before = answers_of(b).dropped
    status, _ = await put_shipment(a, shipment("ans-2", "fedex-delivered", order_number="W-ANS-1"))
    assert status == 201
    await until_dropped(b, before)
    view = await track_ok(b, "W-ANS-1")
    assert sorted(s["shipment_id"] for s in view["shipments"]) == ["ans-1", "ans-2"]


async def test_the_writing_replica_drops_its_answer_before_it_answers(
    service_with: Callable[..., Any],
) -> None:
    """On the replica that took the write, the very next lookup already shows it."""
    client = await service_with()
    await listening(client)
    await register(client, shipment("ans-3", "ups-in-transit", order_number="W-ANS-3"))
    await track_ok(client, "W-ANS-3")
    await put_shipment(client, shipment("ans-3", "ups-in-transit", order_number="W-ANS-3",
                                        aliases=["RMA-ANS-3"], internal_note="moved to bay 4"))
    view = await track_ok(client, "W-ANS-3")
    assert view["shipments"][0]["internal_note"] == "moved to bay 4"


async def test_a_new_carrier_answer_on_one_replica_reaches_the_other(
    service_with: Callable[..., Any],
) -> None:
    """A UPS push stored on replica A replaces the answer replica B kept."""
    a = await service_with(ups_webhook_key=WEBHOOK_KEY)
    b = await service_with(ups_webhook_key=WEBHOOK_KEY)
    await listening(a, b)
    number = number_of("ups-in-transit")
    assert (await track_ok(b, number))["status"] == "in_transit"
    before = answers_of(b).dropped
    moment = datetime.now(UTC)
    pushed = {**alert("delivery"), "trackingNumber": number,
              "gmtActivityDate": f"{moment:%Y%m%d}", "gmtActivityTime": f"{moment:%H%M%S}"}
    status, _ = await post_event(a, pushed, headers={"x-api-key": WEBHOOK_KEY})
    assert status == 200
    await until_dropped(b, before)
    assert (await track_ok(b, number))["status"] == "delivered"


async def test_answers_are_not_kept_past_the_next_change_by_the_clock(
    service_with: Callable[..., Any],
) -> None:
    """A label one second short of the grace limit is kept one second at most; a stale answer never."""
    client = await service_with(tender_grace_hours=1.0)
    service = client.server.app[service_key]
    now = datetime.now(UTC)
    label = ShipmentView(
        carrier=Carrier.ups, tracking_number="1Z", tracking_url="u", status=TrackingStatus.label_created,
        status_since=now - timedelta(hours=1) + timedelta(seconds=1), as_of=now, freshness="live",
    )
    assert service._valid_until(label, now) == label.status_since + timedelta(hours=1)
    delivered = label.model_copy(update={"status": TrackingStatus.delivered, "status_since": None})
    active_s = service.settings.cache_ttl_active_s
    assert service._valid_until(delivered, now) == now + timedelta(seconds=active_s)


async def test_a_view_built_without_the_carrier_is_not_kept(service_with: Callable[..., Any]) -> None:
    """An answer the carrier did not give (malformed, unknown) is rebuilt every time, never kept."""
    client = await service_with()
    await listening(client)
    view = await track_ok(client, number_of("ups-malformed"))
    assert view["status"] == "unknown"
    assert len(answers_of(client)) == 0
