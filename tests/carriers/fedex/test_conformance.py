"""
Every public FedEx sample in ../shared/carrier-samples/fedex, fed to the
parser as the body of its HTTP status, with the answer tracksvc gives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from carriers.fedex.tracking import parse_response
from tests.conftest import SAMPLES, load_sample
from tracksvc.core.errors import CarrierAuthError, CarrierError, CarrierUnavailable
from tracksvc.core.models import Outcome, TrackingResult, TrackingStatus


@dataclass(frozen=True)
class Expect:
    """What one sample must parse to."""

    #: HTTP status the body is fed with.
    http_status: int = 200
    #: Numbers sent with the request.
    requested: tuple[str, ...] = ()
    #: Per number: a normalized status (a result) or an outcome (a message).
    answers: dict[str, TrackingStatus | Outcome] = field(default_factory=dict)
    #: The whole call raises this instead.
    raises: type[CarrierError] | None = None
    #: Extra checks on the result of ``requested[0]``.
    check: dict[str, Any] = field(default_factory=dict)
    #: Each of these substrings must appear in that result's parse_warnings.
    warnings: tuple[str, ...] = ()


def tz(hours: int) -> timezone:
    return timezone(timedelta(hours=hours))


TABLE: dict[str, Expect] = {
    # Sandbox label-only mock: OC / derived IN, SHIPMENT_LABEL_CREATED.
    "heimsothe_WebAPI-Final_fixtures__FEDEX_PENDING_LABEL_ONLY.json": Expect(
        requested=("449044304137821",),
        answers={"449044304137821": TrackingStatus.label_created},
        check={
            "carrier_status_code": "OC",
            "status_detail": "Shipment information sent to FedEx",
            "label_created_at": datetime(2013, 12, 30, 13, 24, tzinfo=tz(-5)),
            "last_physical_scan_at": None,
            "delivered_at": None,
        },
    ),
    "heimsothe_WebAPI-Final_fixtures__FEDEX_NOT_FOUND.json": Expect(
        requested=("647719948679",),
        answers={"647719948679": Outcome.not_found},
    ),
    # FedEx's doc example: data plus a stray error on one number, NOTFOUND on the other,
    # alerts as a string.
    "karrio_test_tracking__TrackingResponse.json": Expect(
        requested=("123456789012", "39936862321"),
        answers={"123456789012": TrackingStatus.in_transit, "39936862321": Outcome.not_found},
        check={"carrier_status_code": "PU", "estimated_delivery": date(2021, 10, 15)},
        warnings=("TRACKING.TRACKINGNUMBER.EMPTY", "ACTUAL_DELIVERY given while the status is in_transit"),
    ),
    # Two shipments under one number: the delivered one has the newest scan.
    "karrio_test_tracking__DuplicateTrackingResponse.json": Expect(
        requested=("776094337676",),
        answers={"776094337676": TrackingStatus.delivered},
        check={
            "carrier_status_code": "DL",
            "delivered_at": datetime(2024, 4, 26, 9, 26, tzinfo=tz(-7)),
        },
        warnings=("duplicate tracking number", "2460426000~776094337676~FX"),
    ),
    # Full OC..DL history; one PU scan has no UTC offset.
    "karrio_test_tracking__InconsistentDateTimeResponse.json": Expect(
        requested=("738488882438",),
        answers={"738488882438": TrackingStatus.delivered},
        check={
            "label_created_at": datetime(2024, 8, 15, 10, 36, tzinfo=tz(-5)),
            "delivered_at": datetime(2024, 8, 20, 12, 41, 57, tzinfo=tz(-4)),
        },
        warnings=("'2024-08-15T00:00:00' has no UTC offset; read as UTC",),
    ),
    "karrio_test_tracking__ErrorResponse.json": Expect(
        http_status=400,
        requested=("123456789012",),
        answers={"123456789012": Outcome.invalid_number},
    ),
    "karrio_vendor_fedex_track.json__trackingnumbers_400_example.json": Expect(
        http_status=400,
        requested=("123456789012", "39936862321"),
        answers={"123456789012": Outcome.invalid_number, "39936862321": Outcome.invalid_number},
    ),
    "karrio_vendor_fedex_track.json__trackingnumbers_401_example.json": Expect(
        http_status=401, requested=("123456789012",), raises=CarrierAuthError
    ),
    "karrio_vendor_fedex_track.json__trackingnumbers_403_example.json": Expect(
        http_status=403, requested=("123456789012",), raises=CarrierAuthError
    ),
    # NOT.FOUND.ERROR is the resource, not the number: the carrier could not be asked.
    "karrio_vendor_fedex_track.json__trackingnumbers_404_example.json": Expect(
        http_status=404, requested=("123456789012",), raises=CarrierUnavailable
    ),
    "karrio_vendor_fedex_track.json__trackingnumbers_500_example.json": Expect(
        http_status=500, requested=("123456789012",), raises=CarrierUnavailable
    ),
    "karrio_vendor_fedex_track.json__trackingnumbers_503_example.json": Expect(
        http_status=503, requested=("123456789012",), raises=CarrierUnavailable
    ),
    "omniship_mock_responses__track_fedex_not_found_response__converted_from_ruby_hash.json": Expect(
        requested=("02399989320920003663",),
        answers={"02399989320920003663": Outcome.not_found},
    ),
    # Hand-edited: latestStatusDetail holds scan fields, dates have a space before the offset.
    # No crash: status from the newest scan (PU), dates read leniently, each oddity a warning.
    "omniship_mock_responses__track_fedex_response.json": Expect(
        requested=("122816215025810",),
        answers={"122816215025810": TrackingStatus.in_transit},
        check={"carrier_status_code": "PU", "estimated_delivery": date(2024, 8, 19)},
        warnings=(
            "'2024-08-12T15:18:10 -0500' is not ISO 8601 as FedEx documents it; read leniently",
            "latestStatusDetail has no code",
        ),
    ),
}


def test_every_sample_is_in_the_table() -> None:
    """Each file in the samples directory has an expected outcome, and nothing else does."""
    assert sorted(p.name for p in (SAMPLES / "fedex").iterdir()) == sorted(TABLE)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_sample(name: str) -> None:
    """The sample parses to the tabled statuses/outcomes, or raises the tabled error."""
    expect = TABLE[name]
    payload = load_sample("fedex", name)
    if expect.raises is not None:
        with pytest.raises(expect.raises) as info:
            parse_response(expect.http_status, payload, expect.requested)
        assert info.value.status == expect.http_status
        return
    results, messages = parse_response(expect.http_status, payload, expect.requested)
    got: dict[str, TrackingStatus | Outcome] = {r.tracking_number: r.status for r in results}
    got.update({m.tracking_number or "": m.outcome for m in messages})
    assert got == expect.answers
    by_number: dict[str, TrackingResult] = {r.tracking_number: r for r in results}
    first = by_number.get(expect.requested[0])
    if expect.check or expect.warnings:
        assert first is not None
        assert {k: getattr(first, k) for k in expect.check} == expect.check
        for fragment in expect.warnings:
            assert any(fragment in w for w in first.parse_warnings), (fragment, first.parse_warnings)


def test_odd_dates_are_parsed_not_dropped() -> None:
    """omniship's '2024-08-12T15:18:10 -0500' scans keep their time, read as -05:00."""
    results, _ = parse_response(
        200, load_sample("fedex", "omniship_mock_responses__track_fedex_response.json"), ["122816215025810"]
    )
    assert {e.occurred_at for e in results[0].events} == {datetime(2024, 8, 12, 15, 18, 10, tzinfo=tz(-5))}


def test_duplicate_choice_is_order_independent() -> None:
    """Reversing the duplicate trackResults does not change which one is kept."""
    payload = load_sample("fedex", "karrio_test_tracking__DuplicateTrackingResponse.json")
    forward, _ = parse_response(200, payload, ["776094337676"])
    payload["output"]["completeTrackResults"][0]["trackResults"].reverse()
    backward, _ = parse_response(200, payload, ["776094337676"])
    assert forward == backward
