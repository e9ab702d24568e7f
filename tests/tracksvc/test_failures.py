"""
Carrier failures in the agent's words (issue 11, item 2): each kind of
failure, made by the code that makes it in production (the transport's
status table, the JSON reader, the gate's breaker and budget), becomes one
sentence an agent can say; the raw reason is kept in ``carrier_problem``
for support and never reaches advice, summary, customer message, reason or
events.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from carriers.base import RawResponse, unavailable_message
from carriers.errors import CarrierError, CarrierTimeout, error_for_status
from tracksvc.core.metrics import Metrics
from tracksvc.core.models import Carrier, CarrierMessage, Outcome, TrackingResult, TrackingStatus
from tracksvc.core.settings import Settings
from tracksvc.domain import failures
from tracksvc.domain.failures import FailureKind
from tracksvc.domain.records import ShipmentRecord
from tracksvc.domain.status import Limits
from tracksvc.domain.views import TrackView
from tracksvc.economy.breaker import CircuitBreaker
from tracksvc.economy.gate import CarrierGate
from tracksvc.economy.policy import Freshness, Lookup
from tracksvc.economy.quota import Bucket, Refusal, RefusalReason, Scope
from tracksvc.service.lookup import TrackService, shipment_view

NUMBER = "9400112345600000000131"
NOW = datetime(2026, 11, 23, 10, 41, 30, tzinfo=UTC)


def _caught(make: object) -> CarrierError:
    try:
        if callable(make):
            make()
    except CarrierError as exc:
        return exc
    raise AssertionError("no CarrierError raised")


def _status(status: int) -> CarrierError:
    error = error_for_status(status, carrier=Carrier.usps, detail=f"HTTP {status}", tracking_number=NUMBER)
    assert error is not None
    return error


class _NeverCalled:
    carrier = Carrier.usps
    max_batch = 1

    async def track(self, numbers: object) -> object:
        raise AssertionError("a refused call must never be sent")


def _breaker_open() -> CarrierError:
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=60)
    breaker.failure()
    gate = CarrierGate(_NeverCalled(), budget=None, breaker=breaker, metrics=Metrics())  # type: ignore[arg-type]

    async def ask() -> None:
        await gate.track([NUMBER], deadline=1e12, wait_until=0)

    return _caught(lambda: asyncio.run(ask()))


def _budget_spent() -> CarrierError:
    breaker = CircuitBreaker(failure_threshold=0, cooldown_s=0)
    gate = CarrierGate(_NeverCalled(), budget=None, breaker=breaker, metrics=Metrics())  # type: ignore[arg-type]
    bucket = Bucket(Scope.carrier, "hour", 60, 3600, "hour")
    return gate._refused(Refusal(RefusalReason.budget, 120.0, "hour", bucket))


def _malformed() -> CarrierError:
    return _caught(lambda: RawResponse(200, {}, b'{"trackingNumber": "94001').json(Carrier.usps, NUMBER))


#: Each kind, made the way production makes it, and what the agent is told.
MADE: Mapping[FailureKind, tuple[CarrierError, str]] = {
    FailureKind.timeout: (
        CarrierTimeout("no answer within 8 s", carrier=Carrier.usps, tracking_number=NUMBER),
        "USPS's tracking service did not answer in time; asked at 10:41 UTC; tracksvc will retry by itself.",
    ),
    FailureKind.unavailable: (
        _status(503),
        "USPS's tracking service is failing; asked at 10:41 UTC; tracksvc will retry by itself.",
    ),
    FailureKind.rate_limited: (
        _status(429),
        "USPS asked tracksvc to slow down; asked at 10:41 UTC; tracksvc will retry by itself.",
    ),
    FailureKind.malformed: (
        _malformed(),
        "USPS's tracking service sent an answer tracksvc could not read; asked at 10:41 UTC; "
        "tracksvc will retry by itself; support has the details.",
    ),
    FailureKind.auth_failed: (
        _status(401),
        "USPS refused tracksvc's access; asked at 10:41 UTC; an administrator must fix this; tell support.",
    ),
    FailureKind.budget_spent: (
        _budget_spent(),
        "tracksvc has used its allowance of USPS calls for now; not asked at 10:41 UTC; "
        "tracksvc will ask again by itself shortly.",
    ),
    FailureKind.breaker_open: (
        _breaker_open(),
        "USPS's tracking service failed several times in a row, so tracksvc paused asking it; "
        "not asked at 10:41 UTC; tracksvc will try again by itself shortly.",
    ),
}

#: Words that only a parser, a transport or tracksvc's internals say.
RAW_WORDS = ("JSON", "HTTP", "char ", "line 1", "calls per", "not asked:", "server error", "refused the call",
             "rate limit reached", "no answer within")


def _service() -> TrackService:
    settings = Settings.model_validate({"api_keys": "agent:k"})
    return TrackService(tracker=None, settings=settings)  # type: ignore[arg-type]


def _view(
    message: CarrierMessage,
    cached: TrackingResult | None = None,
    freshness: Freshness = Freshness.unavailable,
) -> TrackView:
    record = ShipmentRecord(
        shipment_id="shp-1", order_number="W1", carrier=Carrier.usps, tracking_number=NUMBER,
        label_created_at=NOW - timedelta(hours=1), origin="DAL1",
    )
    if cached is None:
        lookup = Lookup(Carrier.usps, NUMBER, None, message, None, freshness)
    else:
        lookup = Lookup(Carrier.usps, NUMBER, cached, message, NOW - timedelta(hours=2), Freshness.stale)
    shipment = shipment_view(lookup, now=NOW, limits=Limits(), record=record)
    return _service().order_view("W1", "order_number", "W1", [shipment], NOW)


def test_every_kind_has_words() -> None:
    """No failure kind is left without a sentence, and MADE covers them all."""
    assert set(failures.WORDING) == set(FailureKind) == set(MADE)


@pytest.mark.parametrize("kind", list(FailureKind), ids=[k.value for k in FailureKind])
def test_each_failure_is_said_in_words_and_kept_raw_for_support(kind: FailureKind) -> None:
    """The agent reads the sentence; the raw reason is only in carrier_problem.detail."""
    error, said = MADE[kind]
    message = unavailable_message(error, NUMBER)
    assert failures.failure_kind(message) is kind
    view = _view(message)
    (shipment,) = view.shipments
    assert view.status is TrackingStatus.unknown
    assert shipment.freshness == "unavailable"
    assert shipment.carrier_problem is not None
    assert shipment.carrier_problem.kind == kind.value
    assert shipment.carrier_problem.asked_at == NOW
    assert error.message in shipment.carrier_problem.detail
    assert shipment.reason == said
    assert view.agent_advice.startswith(said)
    assert view.summary == f"1 package: status unknown: {failures.happened(shipment.carrier_problem)}."
    assert view.customer_message == "Tracking is temporarily unavailable. Please try again later."
    assert shipment.status_detail is None
    assert shipment.carrier_status_code is None
    assert shipment.events == []
    assert shipment.last_event is None
    for text in (view.agent_advice, view.summary, view.customer_message, shipment.reason):
        assert error.message not in text
        for raw in RAW_WORDS:
            assert raw not in text, (raw, text)


def test_a_stale_answer_says_which_answer_is_shown_and_why() -> None:
    """With an older answer kept, reason says its time and the failure in words."""
    error, said = MADE[FailureKind.malformed]
    cached = TrackingResult(carrier=Carrier.usps, tracking_number=NUMBER, status=TrackingStatus.in_transit)
    view = _view(unavailable_message(error, NUMBER), cached)
    (shipment,) = view.shipments
    assert shipment.freshness == "stale"
    assert shipment.reason == f"showing the answer from 2026-11-23 08:41 UTC: {said}"
    assert shipment.carrier_problem is not None
    assert "JSON" in shipment.carrier_problem.detail
    assert "JSON" not in view.agent_advice
    assert "JSON" not in view.summary


def test_the_carrier_saying_it_has_no_record_is_not_a_failure() -> None:
    """USPS's "not yet available" is the carrier's answer: its words, no problem, no reason."""
    message = CarrierMessage(
        carrier=Carrier.usps, tracking_number=NUMBER, outcome=Outcome.not_found, code="150001",
        message="12: A status update is not yet available on your package.",
    )
    assert failures.failure_kind(message) is None
    view = _view(message, freshness=Freshness.cached)
    (shipment,) = view.shipments
    assert shipment.carrier_problem is None
    assert shipment.reason is None
    assert shipment.status_detail == message.message
    assert shipment.carrier_status_code == "150001"
    assert view.status is TrackingStatus.label_created
