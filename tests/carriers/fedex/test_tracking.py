"""Pure FedEx request building and response parsing, on hand-built payloads."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from structlog.testing import capture_logs

from carriers.base import MISSING_CODE, CarrierRequest
from carriers.fedex.tracking import MAX_NUMBERS, TRACK_PATH, build_request, parse_response
from tracksvc.core.errors import CarrierResponseError
from tracksvc.core.models import Carrier, CarrierMessage, Outcome, TrackingResult, TrackingStatus
from tracksvc.core.settings import Settings

EST = timezone(timedelta(hours=-5))
SETTINGS = Settings().carrier(Carrier.fedex)


def scan(
    event_type: str,
    when: str,
    *,
    derived: str = "IT",
    description: str = "",
    exception_code: str = "",
    exception_description: str = "",
) -> dict[str, Any]:
    return {
        "date": when,
        "eventType": event_type,
        "eventDescription": description or event_type,
        "exceptionCode": exception_code,
        "exceptionDescription": exception_description,
        "derivedStatusCode": derived,
        "derivedStatus": derived,
        "scanLocation": {"city": "MEMPHIS", "stateOrProvinceCode": "TN", "countryCode": "US"},
        "locationType": "FEDEX_FACILITY",
    }


def track_result(
    number: str,
    code: str,
    scans: list[dict[str, Any]],
    *,
    derived: str = "IT",
    dates: list[dict[str, str]] | None = None,
    unique_id: str = "",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "trackingNumberInfo": {"trackingNumber": number, "trackingNumberUniqueId": unique_id},
        "latestStatusDetail": {"code": code, "derivedCode": derived, "description": f"words for {code}"},
        "scanEvents": scans,
        "dateAndTimes": dates or [],
        **extra,
    }


def not_found(number: str) -> dict[str, Any]:
    return {
        "trackingNumber": number,
        "trackResults": [
            {
                "trackingNumberInfo": {"trackingNumber": number},
                "error": {"code": "TRACKING.TRACKINGNUMBER.NOTFOUND", "message": "cannot be found"},
            }
        ],
    }


def body(*entries: Any, alerts: Any = None) -> dict[str, Any]:
    output: dict[str, Any] = {"completeTrackResults": list(entries)}
    if alerts is not None:
        output["alerts"] = alerts
    return {"transactionId": "t-1", "output": output}


def entry(number: str, *results: dict[str, Any]) -> dict[str, Any]:
    return {"trackingNumber": number, "trackResults": list(results)}


def one(payload: dict[str, Any], number: str) -> TrackingResult:
    results, messages = parse_response(200, payload, [number])
    assert messages == []
    assert [r.tracking_number for r in results] == [number]
    return results[0]


# -- build_request -------------------------------------------------------------


def test_build_request_shape() -> None:
    """The body asks for detailed scans and lists each number under trackingNumberInfo."""
    assert build_request(["111", "222"], SETTINGS) == CarrierRequest(
        "POST",
        TRACK_PATH,
        headers={"Content-Type": "application/json", "X-locale": "en_US"},
        body={
            "includeDetailedScans": True,
            "trackingInfo": [
                {"trackingNumberInfo": {"trackingNumber": "111"}},
                {"trackingNumberInfo": {"trackingNumber": "222"}},
            ],
        },
    )


def test_build_request_takes_thirty() -> None:
    """Thirty numbers fit in one call."""
    request = build_request([str(n) for n in range(MAX_NUMBERS)], SETTINGS)
    assert len(request.body["trackingInfo"]) == 30


@pytest.mark.parametrize(
    "numbers",
    [[], [str(n) for n in range(31)], ["123", ""], ["  "], "123456789012"],
    ids=["none", "thirty-one", "empty", "blank", "bare-string"],
)
def test_build_request_refuses_bad_batches(numbers: Any) -> None:
    """No numbers, more than 30, an empty number or a bare string is a ValueError."""
    with pytest.raises(ValueError, match="number"):
        build_request(numbers, SETTINGS)


# -- batches -------------------------------------------------------------------


def test_mixed_batch_found_not_found_and_missing() -> None:
    """A found number, a NOTFOUND one and one FedEx left out each get their own answer."""
    payload = body(
        entry("111", track_result("111", "DL", [scan("DL", "2024-04-26T09:26:00-07:00", derived="DL")])),
        not_found("222"),
    )
    results, messages = parse_response(200, payload, ["111", "222", "333"])
    assert [(r.tracking_number, r.status) for r in results] == [("111", TrackingStatus.delivered)]
    assert [(m.tracking_number, m.outcome, m.code) for m in messages] == [
        ("222", Outcome.not_found, "TRACKING.TRACKINGNUMBER.NOTFOUND"),
        ("333", Outcome.malformed, MISSING_CODE),
    ]


def test_broken_entry_does_not_fail_the_batch() -> None:
    """An entry whose trackResults is not a list fails only its own number."""
    payload = body(
        {"trackingNumber": "111", "trackResults": "nonsense"},
        "not even an object",
        entry("222", track_result("222", "PU", [scan("PU", "2024-04-24T16:05:00-07:00", derived="PU")])),
    )
    results, messages = parse_response(200, payload, ["111", "222"])
    assert [(r.tracking_number, r.status) for r in results] == [("222", TrackingStatus.in_transit)]
    assert [(m.tracking_number, m.outcome) for m in messages] == [("111", Outcome.malformed)]


def test_number_fedex_adds_is_returned_too() -> None:
    """A number the answer carries without being asked is parsed as well."""
    payload = body(entry("999", track_result("999", "OC", [], derived="IN")))
    results, messages = parse_response(200, payload, [])
    assert [r.tracking_number for r in results] == ["999"]
    assert messages == []


def test_unmapped_per_number_error_is_unavailable() -> None:
    """An error code we do not know answers 'unavailable' for that number and is logged."""
    payload = body(entry("111", {"error": {"code": "TRACKING.SOMETHING.NEW", "message": "hm"}}))
    with capture_logs() as logs:
        _, messages = parse_response(200, payload, ["111"])
    assert [(m.outcome, m.code) for m in messages] == [(Outcome.unavailable, "TRACKING.SOMETHING.NEW")]
    assert any(log["event"] == "carrier_error_unmapped" for log in logs)


def test_track_result_without_data_or_error_is_malformed() -> None:
    """A trackResult that says nothing at all is a malformed answer for that number."""
    _, messages = parse_response(200, body(entry("111", {"trackingNumberInfo": {}})), ["111"])
    assert [(m.outcome, m.code) for m in messages] == [(Outcome.malformed, "NO_DATA")]


# -- duplicates ------------------------------------------------------------------


def test_duplicates_keep_most_recent_activity_whatever_the_order() -> None:
    """Two shipments under one number: the one scanned last wins, in either order, with a warning."""
    older = track_result(
        "111", "FD", [scan("FD", "2024-04-26T07:50:00-07:00")], derived="RL", unique_id="2460425000~111~FX"
    )
    newer = track_result(
        "111",
        "DL",
        [scan("DL", "2024-04-26T09:26:00-07:00", derived="DL")],
        derived="DL",
        unique_id="2460426000~111~FX",
    )
    for order in ([older, newer], [newer, older]):
        result = one(body(entry("111", *order)), "111")
        assert result.status == TrackingStatus.delivered
        assert any("2460426000~111~FX" in w for w in result.parse_warnings)


def test_duplicate_with_error_only_keeps_the_data() -> None:
    """An error-only duplicate never hides the trackResult that has data."""
    data = track_result("111", "PU", [scan("PU", "2024-04-24T16:05:00-07:00", derived="PU")])
    result = one(body(entry("111", not_found("111")["trackResults"][0], data)), "111")
    assert result.status == TrackingStatus.in_transit


# -- statuses --------------------------------------------------------------------


def test_label_only_is_label_created_and_not_physical() -> None:
    """OC alone: label_created, label time from the OC scan, no physical scan."""
    result = one(
        body(
            entry(
                "111",
                track_result(
                    "111", "OC", [scan("OC", "2024-08-15T10:36:00-05:00", derived="IN")], derived="IN"
                ),
            )
        ),
        "111",
    )
    assert result.status == TrackingStatus.label_created
    assert result.carrier_status_code == "OC"
    assert result.status_detail == "words for OC"
    assert result.label_created_at == datetime(2024, 8, 15, 10, 36, tzinfo=EST)
    assert result.events[0].physical is False
    assert result.last_physical_scan_at is None


def test_attempt_exception_code_makes_delivery_attempted() -> None:
    """DE with exception 08 (customer not available) is an attempt; DE with another code an exception."""
    attempt = one(
        body(
            entry(
                "111",
                track_result(
                    "111",
                    "DE",
                    [
                        scan(
                            "DE",
                            "2024-04-25T11:26:00-07:00",
                            derived="DE",
                            exception_code="08",
                            exception_description="Customer not available or business closed",
                        )
                    ],
                    derived="DE",
                ),
            )
        ),
        "111",
    )
    problem = one(
        body(
            entry(
                "111",
                track_result(
                    "111",
                    "DE",
                    [scan("DE", "2024-04-25T11:26:00-07:00", derived="DE", exception_code="03")],
                    derived="DE",
                ),
            )
        ),
        "111",
    )
    assert attempt.status == TrackingStatus.delivery_attempted
    assert attempt.events[0].status == TrackingStatus.delivery_attempted
    assert attempt.events[0].description == "DE: Customer not available or business closed"
    assert problem.status == TrackingStatus.exception


def test_out_for_delivery_uses_fine_code_not_derived() -> None:
    """OD carries derived IT, but the fine code says out_for_delivery."""
    result = one(
        body(entry("111", track_result("111", "OD", [scan("OD", "2024-04-26T08:52:00-07:00")]))), "111"
    )
    assert result.status == TrackingStatus.out_for_delivery


def test_unmapped_code_falls_back_to_derived_and_is_logged() -> None:
    """An unknown fine code uses the derived code, and is logged as carrier_status_unmapped."""
    payload = body(entry("111", track_result("111", "ZZ", [scan("ZZ", "2024-04-26T08:52:00-07:00")])))
    with capture_logs() as logs:
        result = one(payload, "111")
    assert result.status == TrackingStatus.in_transit
    assert result.carrier_status_code == "ZZ"
    unmapped = [log for log in logs if log["event"] == "carrier_status_unmapped"]
    assert [log["code"] for log in unmapped] == ["ZZ"]


def test_unmapped_everything_stays_unknown() -> None:
    """Neither code nor derived code known: unknown, never in_transit."""
    payload = body(
        entry(
            "111",
            track_result("111", "ZZ", [scan("ZZ", "2024-04-26T08:52:00-07:00", derived="QQ")], derived="QQ"),
        )
    )
    with capture_logs() as logs:
        result = one(payload, "111")
    assert result.status == TrackingStatus.unknown
    assert result.events[0].status == TrackingStatus.unknown
    assert {log["event"] for log in logs} == {"carrier_status_unmapped"}
    assert any("'ZZ'" in w for w in result.parse_warnings)


# -- events and dates ------------------------------------------------------------


def test_events_newest_first_even_if_sent_out_of_order() -> None:
    """Scans are sorted newest first across offsets; undated ones go last."""
    scans = [
        scan("PU", "2024-04-24T16:05:00-07:00", derived="PU"),
        scan("AR", "2024-04-25T01:00:00-04:00"),  # 05:00Z, newer than PU's 23:05Z
        scan("DP", ""),
    ]
    result = one(body(entry("111", track_result("111", "AR", scans))), "111")
    assert [e.code for e in result.events] == ["AR", "PU", "DP"]
    assert result.events[2].occurred_at is None


def test_date_without_offset_is_utc_with_warning() -> None:
    """A date with no offset is read as UTC and said so in parse_warnings."""
    result = one(
        body(entry("111", track_result("111", "PU", [scan("PU", "2024-08-15T00:00:00", derived="PU")]))),
        "111",
    )
    assert result.events[0].occurred_at == datetime(2024, 8, 15, tzinfo=UTC)
    assert result.parse_warnings == [
        "scan event PU: date '2024-08-15T00:00:00' has no UTC offset; read as UTC"
    ]


def test_space_before_offset_is_read_leniently_with_warning() -> None:
    """'2024-08-12T15:18:10 -0500' (omniship's hand edit) is read, with a warning."""
    result = one(
        body(
            entry("111", track_result("111", "PU", [scan("PU", "2024-08-12T15:18:10 -0500", derived="PU")]))
        ),
        "111",
    )
    assert result.events[0].occurred_at == datetime(2024, 8, 12, 15, 18, 10, tzinfo=EST)
    assert any("read leniently" in w for w in result.parse_warnings)


@pytest.mark.parametrize("bad", ["yesterday", "2024-13-45T99:00:00-05:00", 20240812])
def test_unreadable_date_is_empty_with_warning(bad: Any) -> None:
    """An unreadable date leaves occurred_at empty and adds a warning; nothing raises."""
    result = one(body(entry("111", track_result("111", "PU", [scan("PU", bad, derived="PU")]))), "111")
    assert result.events[0].occurred_at is None
    assert any("left empty" in w for w in result.parse_warnings)


def test_estimated_delivery_and_delivered_at() -> None:
    """ESTIMATED_DELIVERY gives the local date; ACTUAL_DELIVERY gives delivered_at."""
    in_transit = one(
        body(
            entry(
                "111",
                track_result(
                    "111",
                    "IT",
                    [scan("IT", "2015-03-02T22:24:34-05:00")],
                    dates=[{"type": "ESTIMATED_DELIVERY", "dateTime": "2015-03-05T00:00:00-05:00"}],
                ),
            )
        ),
        "111",
    )
    delivered = one(
        body(
            entry(
                "111",
                track_result(
                    "111",
                    "DL",
                    [scan("DL", "2014-01-09T13:31:00-05:00", derived="DL")],
                    derived="DL",
                    dates=[{"type": "ACTUAL_DELIVERY", "dateTime": "2014-01-09T13:31:00-05:00"}],
                ),
            )
        ),
        "111",
    )
    assert in_transit.estimated_delivery == date(2015, 3, 5)
    assert in_transit.delivered_at is None
    assert delivered.delivered_at == datetime(2014, 1, 9, 13, 31, tzinfo=EST)


def test_estimated_delivery_from_time_window() -> None:
    """Without ESTIMATED_DELIVERY, the end of estimatedDeliveryTimeWindow is used."""
    raw = track_result("111", "IT", [scan("IT", "2021-09-30T10:00:00-06:00")])
    raw["estimatedDeliveryTimeWindow"] = {
        "window": {"begins": "2021-10-01T08:00:00", "ends": "2021-10-15T00:00:00-06:00"}
    }
    assert one(body(entry("111", raw)), "111").estimated_delivery == date(2021, 10, 15)


@pytest.mark.parametrize(
    "alerts",
    [
        "TRACKING.DATA.NOTFOUND -  Tracking data unavailable",
        [{"code": "VIRTUAL.RESPONSE", "message": "x"}],
        [1, None],
        {},
    ],
)
def test_alerts_in_any_shape_do_not_matter(alerts: Any) -> None:
    """alerts as a string, an array or junk never changes or breaks the results."""
    results, messages = parse_response(200, body(not_found("111"), alerts=alerts), ["111"])
    assert (results, [m.outcome for m in messages]) == ([], [Outcome.not_found])


# -- whole-answer shapes ------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [[], "text", {"trackResponse": {}}, {"output": {"completeTrackResults": {}}}, {"output": []}],
    ids=["list", "string", "ups-shape", "results-not-list", "output-not-object"],
)
def test_not_fedex_shape_raises_response_error(payload: Any) -> None:
    """A body that is not the Track API's shape raises CarrierResponseError, not KeyError/TypeError."""
    with pytest.raises(CarrierResponseError):
        parse_response(200, payload, ["111"])


def test_400_empty_number_is_invalid_for_each_number() -> None:
    """400 TRACKING.TRACKINGNUMBER.EMPTY answers invalid_number for every number of the call."""
    payload = {
        "errors": [{"code": "TRACKING.TRACKINGNUMBER.EMPTY", "message": "Please provide tracking number."}]
    }
    results, messages = parse_response(400, payload, ["111", "222"])
    assert results == []
    assert messages == [
        CarrierMessage(carrier="fedex", tracking_number=n, outcome=Outcome.invalid_number,
                       code="TRACKING.TRACKINGNUMBER.EMPTY", message="Please provide tracking number.")
        for n in ("111", "222")
    ]  # fmt: skip


def test_400_about_something_else_raises() -> None:
    """A 400 that is not about the numbers is a whole-call error."""
    with pytest.raises(CarrierResponseError, match=r"INVALID\.INPUT\.EXCEPTION"):
        parse_response(400, {"errors": [{"code": "INVALID.INPUT.EXCEPTION", "message": "bad"}]}, ["111"])


def test_error_envelope_with_200_is_read_as_errors() -> None:
    """An errors envelope sent with 200 is classified like its 400."""
    payload = {"errors": [{"code": "TRACKING.TRACKINGNUMBER.EMPTY", "message": "x"}]}
    _, messages = parse_response(200, payload, ["111"])
    assert [m.outcome for m in messages] == [Outcome.invalid_number]
