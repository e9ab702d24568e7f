"""
W3000012 and its kind on the real service (issue 11, item 2): a registered
order whose carrier could not be asked answers in words, never `live`, with
the raw reason kept for support; the portal gets plain words only; USPS's
"not yet available" is the carrier's note, said once, not a failure.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis

from carriers.sandbox.scenarios import by_name
from tests.conftest import AGENT, PORTAL, Sandbox
from tests.contract import assert_matches
from tests.tracksvc.registry_helpers import track_ok
from tracksvc.core.models import Carrier
from tracksvc.dev.seed import Story, seed
from tracksvc.registry.store import Registry

PORTAL_PATH = "/v1/portal/orders/{order_number}"

#: Words only a parser or a transport says.
RAW = ("JSON", "HTTP", "char ", "line 1", "malformed", "server error", "connection failed")


@pytest.fixture
async def stories(redis_client: aioredis.Redis) -> dict[str, Story]:
    """The seed stories in the registry, by key."""
    return {story.key: story for story in await seed(Registry(redis_client))}


def said_texts(body: dict[str, Any]) -> list[str]:
    """Every text of an agent view meant to be read or said."""
    texts = [body["summary"], body["agent_advice"], body["customer_message"]]
    for shipment in body["shipments"]:
        texts += [shipment["reason"] or "", shipment["status_detail"] or ""]
        texts += [e["description"] for e in shipment["events"]]
    return texts


async def test_broken_carrier_json_answers_in_words_never_live(
    service: Any, stories: dict[str, Story]
) -> None:
    """W3000012 (USPS always answers broken JSON): unknown, `unavailable`, words; the raw reason apart."""
    order = stories["status-usps-malformed"].reference
    body = await track_ok(service, order)
    (shipment,) = body["shipments"]
    assert body["status"] == "unknown"
    assert shipment["freshness"] == "unavailable"
    assert shipment["as_of"] is None
    problem = shipment["carrier_problem"]
    assert problem["carrier"] == "usps"
    assert problem["kind"] == "malformed"
    assert "malformed JSON" in problem["detail"]
    assert "HTTP 200" in problem["detail"]
    assert shipment["reason"].startswith(
        "USPS's tracking service sent an answer tracksvc could not read; asked at "
    )
    assert shipment["reason"].endswith(" UTC; tracksvc will retry by itself; support has the details.")
    assert body["agent_advice"].startswith(shipment["reason"])
    assert body["summary"] == (
        "1 package: status unknown: USPS's tracking service sent an answer tracksvc could not read."
    )
    assert shipment["status_detail"] is None
    assert shipment["carrier_status_code"] is None
    assert shipment["last_event"] is None
    for text in said_texts(body):
        for raw in RAW:
            assert raw not in text, (raw, text)


@pytest.mark.parametrize(
    ("fault", "kind", "words"),
    [
        ("500", "unavailable", "USPS's tracking service is failing; asked at "),
        ("429", "rate_limited", "USPS asked tracksvc to slow down; asked at "),
        ("401", "auth_failed", "USPS refused tracksvc's access; asked at "),
        ("malformed", "malformed", "USPS's tracking service sent an answer tracksvc could not read"),
    ],
)
async def test_registered_order_with_a_failing_carrier(
    service_with: Any, sandbox: Sandbox, stories: dict[str, Story], fault: str, kind: str, words: str
) -> None:
    """A registered USPS order while USPS fails: the kind, the sentence, and no raw text said."""
    client = await service_with(carrier_retry_attempts=1)
    sandbox.state.queue_fault(Carrier.usps, fault, 50)
    order = stories["status-usps-delivered"].reference
    body = await track_ok(client, order)
    (shipment,) = body["shipments"]
    assert body["status"] == "unknown"
    assert shipment["freshness"] == "unavailable"
    assert shipment["carrier_problem"]["kind"] == kind
    assert shipment["reason"].startswith(words)
    assert body["agent_advice"].startswith(words)
    for text in said_texts(body):
        for raw in RAW:
            assert raw not in text, (raw, text)


async def test_portal_gets_plain_words_for_a_failing_carrier(
    service: Any, stories: dict[str, Story]
) -> None:
    """The customer sees the status and a plain sentence: no reason, no detail, no parser text."""
    story = stories["status-usps-malformed"]
    response = await service.get(
        f"/v1/portal/orders/{story.reference}", params={"postal_code": "30301"}, headers=PORTAL
    )
    body = await response.json()
    assert response.status == 200, body
    assert_matches(PORTAL_PATH, "get", 200, body)
    assert body["status"] == "unknown"
    assert body["customer_message"] == "Tracking is temporarily unavailable. Please try again later."
    raw = await response.text()
    for word in (*RAW, "carrier_problem", "detail", "tracksvc"):
        assert word not in raw, word


async def test_usps_not_yet_available_is_the_carriers_note_said_once(
    service: Any, stories: dict[str, Story]
) -> None:
    """W2001006: USPS's "not yet available" is its note (status_detail), not a failure, not a reason."""
    body = await track_ok(service, stories["usps-not-yet-available-old"].reference)
    (shipment,) = body["shipments"]
    assert body["status"] == "not_tendered"
    assert shipment["freshness"] == "live"
    assert "not yet available" in shipment["status_detail"]
    assert shipment["carrier_problem"] is None
    assert shipment["reason"] is None
    assert shipment["events"] == []
    assert shipment["last_event"] is None


async def test_an_answered_lookup_is_live_and_problem_free(service: Any) -> None:
    """The carrier answered: live, no problem, no reason."""
    response = await service.get(f"/v1/track/{by_name()['usps-in-transit'].number}", headers=AGENT)
    body = await response.json()
    (shipment,) = body["shipments"]
    assert shipment["freshness"] == "live"
    assert shipment["carrier_problem"] is None
    assert shipment["reason"] is None
