"""Pure request building and response parsing for USPS Tracking v3 (no HTTP)."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from structlog.testing import capture_logs

from carriers.usps.tracking import build_request, parse_response
from tests.conftest import load_sample
from tracksvc.core.errors import (
    CarrierAuthError,
    CarrierRateLimited,
    CarrierResponseError,
    CarrierUnavailable,
)
from tracksvc.core.models import Carrier, Location, Outcome, TrackingResult, TrackingStatus
from tracksvc.core.settings import Settings

NUMBER = "9400109104250532908587"
CDT = timezone(timedelta(hours=-6))
EST = timezone(timedelta(hours=-5))


def _event(code: str, event_type: str, **fields: Any) -> dict[str, Any]:
    event = {
        "eventType": event_type,
        "eventTimestamp": "2024-11-15T11:32:00",
        "GMTTimestamp": "2024-11-15T16:32:33Z",
        "GMTOffset": "-05:00",
        "eventCity": "SPRINGFIELD GARDENS",
        "eventState": "NY",
        "eventZIP": "11413",
        "eventCountry": None,
        "authorizedAgent": "false",
        "eventCode": code,
    }
    event.update(fields)
    return event


def _details(*events: dict[str, Any], **fields: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "trackingNumber": NUMBER,
        "mailClass": "USPS Ground Advantage<SUP>&#153;</SUP>",
        "mailType": "DM",
        "services": ["USPS Tracking<SUP>&#174;</SUP>"],
        "emailEnabled": "true",
        "trackingEvents": list(events),
    }
    payload.update(fields)
    return payload


def _one(status: int, payload: Any) -> TrackingResult:
    results, messages = parse_response(status, payload, [NUMBER])
    assert messages == []
    assert len(results) == 1
    return results[0]


def _error(http: int, sub_code: str | None, title: str = "words") -> dict[str, Any]:
    errors = [] if sub_code is None else [{"title": title, "detail": "", "code": sub_code}]
    return {
        "apiVersion": "/tracking/v3",
        "error": {"code": str(http), "message": "", "errors": errors},
    }


# -- request ------------------------------------------------------------------


def test_build_request_is_a_v3_detail_get() -> None:
    """The lookup is GET /tracking/v3/tracking/{n} with expand=DETAIL."""
    request = build_request([NUMBER], Settings().carrier(Carrier.usps))
    assert ("GET", f"/tracking/v3/tracking/{NUMBER}", {"expand": "DETAIL"}) == (
        request.method, request.path, request.params
    )


def test_build_request_quotes_the_number() -> None:
    """A number is a single path segment even if it holds a slash or a space."""
    assert build_request(["AB/12 3"], Settings().carrier(Carrier.usps)).path == (
        "/tracking/v3/tracking/AB%2F12%203"
    )


# -- statuses -------------------------------------------------------------------


def test_label_only_is_label_created_with_its_time() -> None:
    """A lone GX event is label_created, carries the label time and no physical scan."""
    result = _one(
        200,
        _details(
            _event("GX", "Shipping Label Created, USPS Awaiting Item"),
            status="Shipping Label Created, USPS Awaiting Item",
            statusCategory="Pre-Shipment",
        ),
    )
    assert TrackingStatus.label_created == result.status
    assert result.carrier_status_code == "GX"
    assert result.status_detail == "Shipping Label Created, USPS Awaiting Item"
    assert datetime(2024, 11, 15, 16, 32, 33, tzinfo=UTC) == result.label_created_at
    assert result.last_physical_scan_at is None
    assert result.parse_warnings == []


def test_shipping_partner_events_stay_label_created() -> None:
    """80/81/82 "USPS Awaiting Item" after GX is still label-side, not in transit."""
    result = _one(
        200,
        _details(
            _event("82", "Departed Shipping Partner Facility, USPS Awaiting Item",
                   GMTTimestamp="2024-11-17T13:43:15Z", eventTimestamp="2024-11-17T08:43:00"),
            _event("80", "Picked Up By Shipping Partner, USPS Awaiting Item",
                   GMTTimestamp="2024-11-16T13:43:15Z", eventTimestamp="2024-11-16T08:43:00"),
            _event("GX", "Shipping Label Created, USPS Awaiting Item"),
            statusCategory="Pre-Shipment",
        ),
    )
    assert TrackingStatus.label_created == result.status
    assert datetime(2024, 11, 15, 16, 32, 33, tzinfo=UTC) == result.label_created_at
    assert result.last_physical_scan_at is None


def test_pre_shipment_is_not_in_transit_whatever_the_words() -> None:
    """MA "Pre-Shipment, USPS Awaiting Item" is label_created (karrio says in_transit)."""
    result = _one(200, _details(_event("MA", "Pre-Shipment, USPS Awaiting Item")))
    assert TrackingStatus.label_created == result.status


def test_acceptance_makes_it_in_transit_with_a_physical_scan() -> None:
    """03 "USPS in possession of item" is in_transit and a physical scan."""
    accepted = _event("03", "USPS in possession of item", GMTTimestamp="2024-11-18T16:10:31Z",
                      eventTimestamp="2024-11-18T11:10:00")
    result = _one(200, _details(accepted, _event("GX", "Shipping Label Created")))
    assert TrackingStatus.in_transit == result.status
    assert datetime(2024, 11, 18, 16, 10, 31, tzinfo=UTC) == result.last_physical_scan_at


def test_delivered_sample_parses_fully() -> None:
    """The karrio v3 delivered capture: delivered, times, places, newest first."""
    payload = load_sample("usps", "karrio_test_tracking__TrackingResponse.json")
    result = _one(200, payload)
    assert TrackingStatus.delivered == result.status
    assert result.carrier_status_code == "01"
    assert result.status_detail == "Delivered, Parcel Locker"
    assert datetime(2024, 11, 22, 18, 58, 40, tzinfo=UTC) == result.delivered_at
    assert datetime(2024, 11, 15, 16, 32, 33, tzinfo=UTC) == result.label_created_at
    assert [e["eventCode"] for e in payload["trackingEvents"]] == [e.code for e in result.events]
    newest = result.events[0]
    assert Location(city="HERNANDO", state="FL", postal_code="34442") == newest.location
    assert timedelta(hours=-5) == newest.occurred_at.utcoffset()  # type: ignore[union-attr]
    assert TrackingStatus.label_created == result.events[-1].status
    assert not result.events[-1].physical
    assert result.parse_warnings == []


def test_picked_up_counts_as_delivered() -> None:
    """43 (picked up at the counter) is delivered, with delivered_at from that event."""
    result = _one(200, _details(_event("43", "Picked Up at Post Office")))
    assert TrackingStatus.delivered == result.status
    assert datetime(2024, 11, 15, 16, 32, 33, tzinfo=UTC) == result.delivered_at


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("OF", TrackingStatus.out_for_delivery),
        ("02", TrackingStatus.delivery_attempted),
        ("53", TrackingStatus.delivery_attempted),
        ("16", TrackingStatus.available_for_pickup),
        ("05", TrackingStatus.exception),
        ("04", TrackingStatus.returned_to_sender),
        ("21", TrackingStatus.returned_to_sender),
        ("44", TrackingStatus.returned_to_sender),
        ("71", TrackingStatus.in_transit),
    ],
)
def test_newest_event_code_decides(code: str, expected: TrackingStatus) -> None:
    """The newest event's code, looked up in the table, is the status."""
    result = _one(200, _details(_event(code, "whatever"), statusCategory="Delivered"))
    assert expected == result.status
    assert result.delivered_at is None


def test_unmapped_code_falls_back_to_status_category_and_is_logged() -> None:
    """An unknown newest code uses statusCategory and logs carrier_status_unmapped."""
    with capture_logs() as logs:
        result = _one(200, _details(_event("Q7", "Something new"), statusCategory="Alert"))
    assert TrackingStatus.exception == result.status
    assert result.carrier_status_code == "Q7"
    assert TrackingStatus.unknown == result.events[0].status
    unmapped = [entry for entry in logs if entry["event"] == "carrier_status_unmapped"]
    assert len(unmapped) == 1
    assert unmapped[0]["event_codes"] == ["Q7"]


def test_unknown_stays_unknown_never_matched_on_words() -> None:
    """An unknown code whose words say "Delivered" stays unknown: no substring matching."""
    with capture_logs() as logs:
        result = _one(200, _details(_event("ZZ", "Delivered, Front Door"), status="Delivered"))
    assert TrackingStatus.unknown == result.status
    assert result.delivered_at is None
    assert [entry["event"] for entry in logs] == ["carrier_status_unmapped"]


def test_unknown_category_is_logged_too() -> None:
    """An unknown code and an unknown statusCategory give unknown, logged."""
    with capture_logs() as logs:
        result = _one(200, _details(_event("ZZ", "x"), statusCategory="Held at Customs"))
    assert TrackingStatus.unknown == result.status
    assert logs[0]["status_category"] == "Held at Customs"


def test_dx_defers_to_status_category_without_an_unmapped_log() -> None:
    """DX (delivery status not updated) takes USPS's statusCategory and is not 'unmapped'."""
    with capture_logs() as logs:
        result = _one(200, _details(_event("DX", "Delivery Status Not Updated"),
                                    statusCategory="Alert"))
    assert TrackingStatus.exception == result.status
    assert logs == []


def test_no_events_uses_status_category() -> None:
    """With no events at all the statusCategory still says something."""
    result = _one(200, _details(statusCategory="Pre-Shipment"))
    assert TrackingStatus.label_created == result.status
    assert result.carrier_status_code is None


def test_services_as_string_and_booleans_as_strings_parse() -> None:
    """The README shape (services a string, booleans "true"/"false") parses."""
    payload = load_sample("usps", "usps-api-examples_README_tracking_detail_accepted.json")
    assert isinstance(payload["services"], str)
    results, _ = parse_response(200, payload, [payload["trackingNumber"]])
    assert TrackingStatus.in_transit == results[0].status


def test_answer_for_another_number_is_a_warning() -> None:
    """USPS answering for a different number is kept, with a parse warning."""
    result = _one(200, _details(_event("03", "x"), trackingNumber="9400111111111111111111"))
    assert any("9400111111111111111111" in w for w in result.parse_warnings)


# -- times ----------------------------------------------------------------------


def test_gmt_timestamp_is_kept_in_the_local_offset() -> None:
    """GMTTimestamp is the instant; the event's GMTOffset is kept for display."""
    result = _one(200, _details(_event("03", "x")))
    occurred = result.events[0].occurred_at
    assert datetime(2024, 11, 15, 11, 32, 33, tzinfo=EST) == occurred
    assert timedelta(hours=-5) == occurred.utcoffset()  # type: ignore[union-attr]


def test_gmt_timestamp_with_the_local_date_is_repaired() -> None:
    """A GMTTimestamp a day off (USPS puts the local date on it) yields to local + offset."""
    payload = load_sample("usps", "omniship_mock_responses__track_usps_in_progress_response.json")
    result = _one(200, {**payload, "trackingNumber": NUMBER})
    departed = result.events[1]
    assert departed.code == "SF"
    assert datetime(2024, 11, 26, 0, 31, tzinfo=UTC) == departed.occurred_at
    assert any("event 1 (SF): GMTTimestamp" in w for w in result.parse_warnings)
    times = [e.occurred_at for e in result.events]
    assert times == sorted(times, reverse=True)  # type: ignore[type-var]


def test_missing_offset_is_borrowed_from_a_neighbour() -> None:
    """An event with only a local time takes the nearest event's GMTOffset, with a warning."""
    payload = load_sample("usps", "omniship_mock_responses__track_usps_in_progress_response.json")
    result = _one(200, {**payload, "trackingNumber": NUMBER})
    assert datetime(2024, 11, 23, 0, 0, tzinfo=CDT) == result.label_created_at
    assert any("(MA): no GMT time or offset; assumed -0600" in w for w in result.parse_warnings)


def test_no_offset_anywhere_assumes_utc_with_a_warning() -> None:
    """With no GMT data in the whole answer the local time is read as UTC and flagged."""
    lone = _event("03", "x", GMTTimestamp=None, GMTOffset=None, eventTimestamp="2023-08-02T07:31:00Z")
    result = _one(200, _details(lone))
    assert datetime(2023, 8, 2, 7, 31, tzinfo=UTC) == result.events[0].occurred_at
    assert result.parse_warnings == ["event 0 (03): no GMT time or offset; assumed UTC"]


def test_time_of_day_only_gives_no_time_and_a_warning() -> None:
    """An eventTimestamp holding only a time of day (issue #15) leaves occurred_at empty."""
    odd = _event("03", "x", GMTTimestamp=None, eventTimestamp="13:58:00")
    result = _one(200, _details(odd))
    assert result.events[0].occurred_at is None
    assert any("'13:58:00' is not a date-time" in w for w in result.parse_warnings)


def test_estimated_delivery_from_expected_then_predicted() -> None:
    """expectedDeliveryTimeStamp wins; predictedDeliveryDate is the fallback."""
    both = _details(expectedDeliveryTimeStamp="2024-11-29T00:00:00",
                    predictedDeliveryDate="2024-11-28")
    assert date(2024, 11, 29) == _one(200, both).estimated_delivery
    predicted = _details(predictedDeliveryDate="2024-11-28")
    assert date(2024, 11, 28) == _one(200, predicted).estimated_delivery
    assert _one(200, _details()).estimated_delivery is None


# -- carrier messages -------------------------------------------------------------


@pytest.mark.parametrize("sub_code", ["150001", "150002", "150003", "150004", "150008",
                                      "150009", "150010"])
def test_v3_no_data_sub_codes_are_not_found(sub_code: str) -> None:
    """A v3 400 whose sub-code means "no data (yet)" is a not_found message with that code."""
    results, messages = parse_response(400, _error(400, sub_code), [NUMBER])
    assert results == []
    assert Outcome.not_found == messages[0].outcome
    assert sub_code == messages[0].code
    assert messages[0].tracking_number == NUMBER
    assert Carrier.usps == messages[0].carrier


@pytest.mark.parametrize("sub_code", ["150011", "150012", "159999"])
def test_other_400_sub_codes_are_invalid_number(sub_code: str) -> None:
    """Pickup-transaction, fraudulent-postage and unknown 400 sub-codes reject the number."""
    _, messages = parse_response(400, _error(400, sub_code), [NUMBER])
    assert Outcome.invalid_number == messages[0].outcome
    assert sub_code == messages[0].code


def test_not_found_code_wins_over_others_in_one_envelope() -> None:
    """When one error item says "no data yet" the number is not_found."""
    payload = _error(400, "159999")
    payload["error"]["errors"].append({"title": "later", "code": "150009"})
    _, messages = parse_response(400, payload, [NUMBER])
    assert (Outcome.not_found, "150009", "later") == (
        messages[0].outcome, messages[0].code, messages[0].message
    )


def test_v3r2_style_404_is_not_found() -> None:
    """A 404 envelope, with or without sub-code, is not_found."""
    _, messages = parse_response(404, _error(404, None), [NUMBER])
    assert (Outcome.not_found, "404") == (messages[0].outcome, messages[0].code)


def test_not_found_message_keeps_the_carrier_words_without_html() -> None:
    """The message is USPS's own text with its <SUP> markup turned into plain text."""
    payload = load_sample("usps", "omniship_mock_responses__track_usps_not_found_response.json")
    _, messages = parse_response(400, payload, [NUMBER])
    assert messages[0].message.startswith("12: A status update is not yet available")
    assert "Informed Delivery® to receive" in messages[0].message
    assert "<" not in messages[0].message
    assert not messages[0].message.endswith("-")


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, CarrierAuthError), (403, CarrierAuthError), (429, CarrierRateLimited),
     (500, CarrierUnavailable), (503, CarrierUnavailable)],
)
def test_whole_call_statuses_raise(status: int, error: type[Exception]) -> None:
    """Auth, quota and server statuses are raised, whatever the body."""
    with pytest.raises(error):
        parse_response(status, _error(status, None), [NUMBER])


# -- malformed ----------------------------------------------------------------------


def _broken(mutate: str) -> tuple[int, Any]:
    good = _details(_event("03", "x"))
    payload = copy.deepcopy(good)
    if mutate == "list":
        return 200, [good]
    if mutate == "string":
        return 200, "oops"
    if mutate == "events-object":
        payload["trackingEvents"] = {"0": good["trackingEvents"][0]}
    elif mutate == "event-string":
        payload["trackingEvents"] = ["03"]
    elif mutate == "code-object":
        payload["trackingEvents"][0]["eventCode"] = {"code": "03"}
    elif mutate == "category-list":
        payload["statusCategory"] = ["Delivered"]
    elif mutate == "error-string":
        return 400, {"error": "invalid_request"}
    elif mutate == "errors-object":
        return 400, {"error": {"code": "400", "errors": {"code": "150001"}}}
    elif mutate == "400-no-envelope":
        return 400, good
    elif mutate == "418-envelope":
        return 418, _error(418, None)
    return 200, payload


@pytest.mark.parametrize(
    "mutate",
    ["list", "string", "events-object", "event-string", "code-object", "category-list",
     "error-string", "errors-object", "400-no-envelope", "418-envelope"],
)
def test_malformed_shapes_raise_carrier_response_error(mutate: str) -> None:
    """Shapes USPS does not document raise CarrierResponseError, never KeyError/TypeError."""
    status, payload = _broken(mutate)
    with pytest.raises(CarrierResponseError) as caught:
        parse_response(status, payload, [NUMBER])
    assert caught.value.tracking_number == NUMBER
