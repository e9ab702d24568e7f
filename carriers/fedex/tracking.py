"""
FedEx Track API v1: pure request building and response parsing.

No HTTP happens here (the transport sends what :func:`build_request` builds
and hands the answer to :func:`parse_response`); both functions take and
return plain data, so they are tested with recorded payloads.

Reading rules (carrier-apis.md section 2; the choices marked *decision* are ours):

* One ``completeTrackResults`` entry per number. Per-number errors
  (``TRACKING.TRACKINGNUMBER.NOTFOUND``) become :class:`CarrierMessage` and
  never fail the other numbers of the batch; neither does a broken entry.
* *Decision:* several ``trackResults`` with data for one number (a duplicated
  tracking number, karrio's ``DuplicateTrackingResponse``) -> keep the one
  with the most recent scan; ties go to the larger ``trackingNumberUniqueId``
  (it starts with a date-like serial), then to the first listed. The result
  gets a ``parse_warnings`` entry saying so.
* *Decision:* a trackResult that carries tracking data *and* an ``error``
  (FedEx's own doc example does) keeps the data and notes the error in
  ``parse_warnings``.
* A requested number that the answer does not mention at all gets
  :func:`carriers.base.missing_from_answer` (``malformed``, never
  ``not_found``): FedEx answers unknown numbers explicitly with NOTFOUND, so
  silence means an answer we do not understand, not "no such parcel".
* Fields are read with :mod:`carriers.json_read`: a wrong-typed status code,
  error code or ``trackResults`` fails only that number (``malformed``,
  code ``PARSE_FAILED``); a wrong-typed word, place or date is left empty
  with a ``parse_warnings`` entry.
* *Decision:* an unrecognised per-number error code -> ``Outcome.unavailable``
  (FedEx could not answer for that number) and a ``carrier_error_unmapped`` log.
* The status comes from ``latestStatusDetail.code`` (fine) and falls back to
  ``derivedCode`` (coarse); a ``DE`` whose scan carries a failed-attempt
  exception code is ``delivery_attempted``. Unmapped codes are logged as
  ``carrier_status_unmapped`` and stay ``unknown``. Descriptions are never
  matched.
* Dates are ISO 8601 with an offset. *Decision:* a date without an offset is
  read as UTC; a near-ISO date such as ``2024-08-12T15:18:10 -0500`` is read
  leniently; an unreadable one is left empty. Each of the three adds a
  ``parse_warnings`` entry, and none of them raises.
* A body that is not the Track API's shape raises
  :class:`~carriers.errors.CarrierResponseError`; error envelopes of other
  HTTP statuses raise the matching :class:`~carriers.errors.CarrierError`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import structlog

from carriers.base import CarrierRequest, ParsedAnswer, TokenEndpoint, missing_from_answer
from carriers.errors import CarrierResponseError, error_for_status
from carriers.fedex.units import (
    ATTEMPT_EVENT_TYPES,
    ATTEMPT_EXCEPTION_CODES,
    LABEL_CODES,
    NON_PHYSICAL_CODES,
    NON_PHYSICAL_DERIVED_CODES,
    OUTCOME_BY_ERROR_CODE,
    STATUS_BY_CODE,
    STATUS_BY_DERIVED_CODE,
)
from carriers.json_read import Reader
from carriers.models import (
    Carrier,
    CarrierMessage,
    Location,
    Outcome,
    TrackingEvent,
    TrackingResult,
    TrackingStatus,
)
from carriers.settings import CarrierSettings

log = structlog.get_logger("carriers.fedex")

CARRIER = Carrier.fedex

#: The Track API path for tracking numbers [SPEC].
TRACK_PATH = "/track/v1/trackingnumbers"

#: ``trackingInfo`` entries one call may carry [SPEC: "Maximum limit is 30"].
MAX_NUMBERS = 30

#: OAuth client credentials as a form: ``grant_type``, ``client_id`` and
#: ``client_secret`` in the body (carrier-apis.md 2.1).
TOKEN = TokenEndpoint(carrier=CARRIER, path="/oauth/token", credentials_in="body")

# The documented form: 2013-12-30T13:24:00-05:00 (offset optional, Z allowed).
_ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})?")
# Near misses seen in the wild: a space for T, a space before the offset, +hhmm offsets.
_LENIENT_DATETIME = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<time>\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)"
    r"\s*(?P<offset>Z|[+-]\d{2}:?\d{2})?"
)
_DATE_PREFIX = re.compile(r"(\d{4}-\d{2}-\d{2})")


# -- request -----------------------------------------------------------------


def build_request(numbers: Sequence[str], settings: CarrierSettings) -> CarrierRequest:
    """
    Build one Track API call for up to :data:`MAX_NUMBERS` tracking numbers.

    Args:
        numbers: FedEx tracking numbers, already normalized (no spaces).
        settings: the FedEx carrier settings (nothing of them goes in the call).

    Returns:
        ``POST /track/v1/trackingnumbers`` with its JSON body; the transport adds the token.

    Raises:
        ValueError: no numbers, more than 30, or an empty number (FedEx would
            answer 400 ``TRACKING.TRACKINGNUMBER.EMPTY``).
    """
    if isinstance(numbers, str):
        raise ValueError("build_request takes a sequence of tracking numbers, not one string")
    if not numbers:
        raise ValueError("at least one tracking number is required")
    if len(numbers) > MAX_NUMBERS:
        raise ValueError(f"FedEx tracks at most {MAX_NUMBERS} numbers per call, got {len(numbers)}")
    for number in numbers:
        if not isinstance(number, str) or not number.strip():
            raise ValueError(f"empty tracking number in request: {number!r}")
    return CarrierRequest(
        method="POST",
        path=TRACK_PATH,
        headers={"Content-Type": "application/json", "X-locale": "en_US"},
        body={
            "includeDetailedScans": True,
            "trackingInfo": [{"trackingNumberInfo": {"trackingNumber": n}} for n in numbers],
        },
    )


# -- response ----------------------------------------------------------------


def parse_response(status: int, payload: Any, numbers: Sequence[str]) -> ParsedAnswer:
    """
    Normalize a Track API answer.

    Args:
        status: the HTTP status of the answer.
        payload: the decoded JSON body.
        numbers: the numbers sent; each gets exactly one result or message
            (numbers the answer adds on its own are returned too).

    Returns:
        Results for numbers with tracking data, messages for the others.

    Raises:
        CarrierResponseError: the body is not the Track API's shape, or a 400
            that is not about the numbers.
        CarrierAuthError: a 401/403 error envelope.
        CarrierRateLimited: a 429.
        CarrierUnavailable: a 404 (the resource, not a number) or a 5xx.
    """
    read = Reader(CARRIER, tracking_number=numbers[0] if len(numbers) == 1 else None, status=status)
    if 200 <= status < 300:
        if isinstance(payload, dict) and "output" not in payload and "errors" in payload:
            # An error envelope with a success status: read it as the 400 it describes.
            return [], _messages_from_error_envelope(read, status, payload, numbers)
        return _parse_output(read, payload, numbers)
    return [], _messages_from_error_envelope(read, status, payload, numbers)


def _messages_from_error_envelope(
    read: Reader, status: int, payload: Any, requested: Sequence[str]
) -> list[CarrierMessage]:
    errors = _error_list(read, payload)
    summary = "; ".join(f"{code}: {message}" if message else code for code, message in errors)
    summary = summary or "no error details"
    failure = error_for_status(status, carrier=CARRIER, detail=summary)
    if failure is not None:
        raise failure
    if status == 400 or 200 <= status < 300:
        for code, message in errors:
            outcome = OUTCOME_BY_ERROR_CODE.get(code)
            if outcome is not None:
                # FedEx does not say which number of the batch it means: all of them.
                return [
                    CarrierMessage(
                        carrier=CARRIER,
                        tracking_number=number,
                        outcome=outcome,
                        code=code,
                        message=message,
                    )
                    for number in requested
                ]
        raise CarrierResponseError(f"FedEx rejected the request ({summary})", carrier=CARRIER, status=status)
    raise CarrierResponseError(
        f"unexpected HTTP status from FedEx ({summary})", carrier=CARRIER, status=status
    )


def _error_list(read: Reader, payload: Any) -> list[tuple[str, str]]:
    """``(code, message)`` of an ``errors`` envelope; empty when the body is not one."""
    if not isinstance(payload, dict) or not isinstance(payload.get("errors"), list):
        return []
    found = []
    for entry in read.optional_objects(payload["errors"], "errors"):
        code = read.optional_text(entry.get("code"), "errors.code")
        if code:
            found.append((code, read.optional_text(entry.get("message"), "errors.message") or ""))
    return found


def _parse_output(read: Reader, payload: Any, requested: Sequence[str]) -> ParsedAnswer:
    output = read.obj(read.obj(payload, "body").get("output"), "output")
    if output.get("completeTrackResults") is None:
        raise read.malformed("output.completeTrackResults is missing; not a Track API response")
    complete = read.array(output.get("completeTrackResults"), "output.completeTrackResults")
    _log_alerts(read, output.get("alerts"), payload.get("transactionId"))

    # Per number, the raw trackResults of every entry naming it (read per number below,
    # so a broken entry fails only its own number).
    track_results: dict[str, list[Any]] = {}
    for index, raw_entry in enumerate(complete):
        entry = read.optional_obj(raw_entry, f"completeTrackResults[{index}]")
        if entry is None:
            log.warning("carrier_entry_skipped", carrier=CARRIER.value, reason="not an object")
            continue
        raw_results = entry.get("trackResults")
        number = read.optional_text(entry.get("trackingNumber"), "trackingNumber") or _number_from_results(
            read, raw_results
        )
        if not number:
            log.warning("carrier_entry_skipped", carrier=CARRIER.value, reason="no tracking number")
            continue
        # The same number in two entries is treated like two trackResults of one entry.
        track_results.setdefault(number, []).append(raw_results)

    results: list[TrackingResult] = []
    messages: list[CarrierMessage] = []
    for number in dict.fromkeys([*requested, *track_results]):
        raws = track_results.get(number)
        if raws is None:
            messages.append(missing_from_answer(CARRIER, number))
            continue
        number_read = read.for_result(number)
        try:
            item = _parse_number(number_read, number, raws)
        except CarrierResponseError as exc:
            # A broken entry fails its own number, never the batch.
            log.warning(
                "carrier_parse_failed", carrier=CARRIER.value, tracking_number=number, error=exc.message
            )
            item = _message(number, Outcome.malformed, "PARSE_FAILED", exc.message)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            # A parser gap for one number must not fail the batch either.
            log.exception("carrier_parse_failed", carrier=CARRIER.value, tracking_number=number)
            item = _message(number, Outcome.malformed, "PARSE_FAILED", f"could not read FedEx data: {exc}")
        if isinstance(item, TrackingResult):
            results.append(item)
        else:
            messages.append(item)
    return results, messages


def _number_from_results(read: Reader, raw_results: Any) -> str:
    """The number an entry's trackResults name, when the entry itself does not."""
    if not isinstance(raw_results, list):
        return ""
    for raw in raw_results:
        result = read.optional_obj(raw, "trackResults[]") or {}
        info = read.optional_obj(result.get("trackingNumberInfo"), "trackingNumberInfo") or {}
        number = read.optional_text(info.get("trackingNumber"), "trackingNumberInfo.trackingNumber")
        if number:
            return number
    return ""


def _log_alerts(read: Reader, alerts: Any, transaction_id: Any) -> None:
    # The spec says an array of {code, alertType, message}; a karrio fixture has a string.
    # Alerts are only logged: whatever their shape, they never change the results.
    items = alerts if isinstance(alerts, list) else [alerts]
    texts: list[str] = []
    for alert in items:
        if isinstance(alert, str):
            texts.append(alert.strip())
        elif isinstance(alert, dict):
            code = read.optional_text(alert.get("code"), "alerts.code") or ""
            message = read.optional_text(alert.get("message"), "alerts.message") or ""
            texts.append(f"{code}: {message}" if code and message else code or message)
    texts = [t for t in texts if t]
    if texts:
        log.info(
            "carrier_alerts",
            carrier=CARRIER.value,
            alerts=texts,
            transaction_id=read.optional_text(transaction_id, "transactionId"),
        )


def _has_tracking_data(read: Reader, raw: Mapping[str, Any]) -> bool:
    latest = raw.get("latestStatusDetail")
    if latest is not None and read.obj(latest, "latestStatusDetail"):
        return True
    return bool(read.optional_objects(raw.get("scanEvents"), "scanEvents"))


def _parse_number(read: Reader, number: str, raws: list[Any]) -> TrackingResult | CarrierMessage:
    """One number's answer from the trackResults of every entry naming it."""
    candidates = [c for raw in raws for c in read.objects(raw, "trackResults")]
    with_data = [raw for raw in candidates if _has_tracking_data(read, raw)]
    if not with_data:
        for raw in candidates:
            error = _error(read, raw)
            code = read.text(error.get("code"), "error.code")
            if code:
                outcome = OUTCOME_BY_ERROR_CODE.get(code)
                if outcome is None:
                    log.warning(
                        "carrier_error_unmapped", carrier=CARRIER.value, code=code, tracking_number=number
                    )
                    outcome = Outcome.unavailable
                words = read.optional_text(error.get("message"), "error.message") or ""
                return _message(number, outcome, code, words)
        return _message(
            number, Outcome.malformed, "NO_DATA", "FedEx returned neither tracking data nor an error"
        )

    parsed = [
        (_parse_track_result(read.for_result(), number, raw), _unique_id(read, raw)) for raw in with_data
    ]
    if len(parsed) == 1:
        return parsed[0][0]
    best, unique_id = max(parsed, key=lambda pair: (_activity_key(pair[0]), pair[1]))
    note = (
        f"FedEx returned {len(parsed)} shipments for this number (duplicate tracking number); "
        f"kept the one with the most recent activity" + (f" ({unique_id})" if unique_id else "")
    )
    return best.model_copy(update={"parse_warnings": [*best.parse_warnings, note]})


def _message(number: str, outcome: Outcome, code: str, message: str) -> CarrierMessage:
    return CarrierMessage(
        carrier=CARRIER, tracking_number=number, outcome=outcome, code=code, message=message
    )


def _error(read: Reader, raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """A trackResult's ``error`` (its code decides the number's outcome: required)."""
    error = raw.get("error")
    return {} if error is None else read.obj(error, "error")


def _unique_id(read: Reader, raw: Mapping[str, Any]) -> str:
    info = read.optional_obj(raw.get("trackingNumberInfo"), "trackingNumberInfo") or {}
    return read.optional_text(info.get("trackingNumberUniqueId"), "trackingNumberUniqueId") or ""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _activity_key(result: TrackingResult) -> datetime:
    times = [e.occurred_at for e in result.events if e.occurred_at is not None]
    if result.delivered_at is not None:
        times.append(result.delivered_at)
    return max(times, default=_EPOCH)


@dataclass
class _Context:
    """What parsing one trackResult collects besides the result."""

    number: str
    read: Reader
    unmapped: set[str] = field(default_factory=set)

    @property
    def warnings(self) -> list[str]:
        return self.read.warnings

    def warn(self, text: str) -> None:
        self.read.warn(text)

    def code(self, value: Any, where: str) -> str:
        """A status or exception code (it decides the status: required), upper case."""
        return (self.read.text(value, where) or "").upper()

    def text(self, value: Any, where: str) -> str:
        """Words or places (optional)."""
        return self.read.optional_text(value, where) or ""

    def status(self, code: str, derived: str, exception_codes: Sequence[str]) -> TrackingStatus:
        """The status of a fine code, else its derived code, else unknown."""
        if code:
            status = STATUS_BY_CODE.get(code)
            if status is not None:
                if code in ATTEMPT_EVENT_TYPES and any(
                    exc in ATTEMPT_EXCEPTION_CODES for exc in exception_codes
                ):
                    return TrackingStatus.delivery_attempted
                return status
            self._unmapped("code", code, derived)
        if derived:
            status = STATUS_BY_DERIVED_CODE.get(derived)
            if status is not None:
                return status
            self._unmapped("derived_code", derived, derived)
        return TrackingStatus.unknown

    def _unmapped(self, kind: str, code: str, derived: str) -> None:
        key = f"{kind}:{code}"
        if key in self.unmapped:
            return
        self.unmapped.add(key)
        log.warning(
            "carrier_status_unmapped",
            carrier=CARRIER.value,
            tracking_number=self.number,
            code=code if kind == "code" else None,
            derived_code=derived or None,
        )
        label = "status code" if kind == "code" else "derived status code"
        self.warn(f"FedEx {label} {code!r} is not in tracksvc's tables")


@dataclass(frozen=True)
class _Scan:
    event: TrackingEvent
    derived: str
    exception_code: str


def _parse_track_result(read: Reader, number: str, raw: Mapping[str, Any]) -> TrackingResult:
    ctx = _Context(number, read)
    scans = _parse_scans(raw.get("scanEvents"), ctx)
    newest = scans[0] if scans else None
    latest = read.obj(raw.get("latestStatusDetail") or {}, "latestStatusDetail")

    code = ctx.code(latest.get("code"), "latestStatusDetail.code")
    derived = ctx.code(latest.get("derivedCode"), "latestStatusDetail.derivedCode")
    exception_codes = [
        ctx.code(a.get("reason"), "ancillaryDetails.reason")
        for a in read.optional_objects(latest.get("ancillaryDetails"), "latestStatusDetail.ancillaryDetails")
    ]
    if newest is not None and newest.event.code == code:
        exception_codes.append(newest.exception_code)
    if not code and not derived and newest is not None:
        ctx.warn("latestStatusDetail has no code or derivedCode; status taken from the newest scan")
        code, derived = newest.event.code, newest.derived
        exception_codes = [newest.exception_code]
    status = ctx.status(code, derived, exception_codes)
    if not code and not derived:
        ctx.warn("FedEx gave no status code for this number")

    detail = ctx.text(latest.get("description"), "latestStatusDetail.description") or ctx.text(
        latest.get("statusByLocale"), "latestStatusDetail.statusByLocale"
    )
    if not detail and newest is not None:
        detail = newest.event.description

    error = read.optional_obj(raw.get("error"), "error") or {}
    error_code = ctx.text(error.get("code"), "error.code")
    if error_code:
        ctx.warn(
            f"FedEx also reported {error_code} ({ctx.text(error.get('message'), 'error.message')}) "
            "next to tracking data; the data was kept"
        )

    dates = _date_and_times(ctx, raw.get("dateAndTimes"))
    events = [scan.event for scan in scans]
    return TrackingResult(
        carrier=CARRIER,
        tracking_number=number,
        status=status,
        carrier_status_code=code or derived or None,
        status_detail=detail or None,
        events=events,
        label_created_at=_label_created_at(events, dates, ctx),
        estimated_delivery=_estimated_delivery(raw, dates, ctx),
        delivered_at=_delivered_at(status, events, dates, ctx),
        parse_warnings=ctx.warnings,
    )


def _parse_scans(raw_events: Any, ctx: _Context) -> list[_Scan]:
    scans: list[_Scan] = []
    for index, raw in enumerate(ctx.read.optional_objects(raw_events, "scanEvents")):
        where = f"scanEvents[{index}]"
        code = ctx.code(raw.get("eventType"), f"{where}.eventType")
        derived = ctx.code(raw.get("derivedStatusCode"), f"{where}.derivedStatusCode")
        exception_code = ctx.code(raw.get("exceptionCode"), f"{where}.exceptionCode")
        description = ctx.text(raw.get("eventDescription"), f"{where}.eventDescription") or ctx.text(
            raw.get("derivedStatus"), f"{where}.derivedStatus"
        )
        exception_text = ctx.text(raw.get("exceptionDescription"), f"{where}.exceptionDescription")
        if exception_text and exception_text != description:
            description = f"{description}: {exception_text}" if description else exception_text
        physical = code not in NON_PHYSICAL_CODES and not (not code and derived in NON_PHYSICAL_DERIVED_CODES)
        event = TrackingEvent(
            occurred_at=_parse_datetime(raw.get("date"), f"scan event {code or derived or '?'}", ctx),
            status=ctx.status(code, derived, [exception_code]),
            code=code or derived,
            description=description,
            location=_location(ctx, raw.get("scanLocation"), f"{where}.scanLocation"),
            physical=physical,
        )
        scans.append(_Scan(event, derived, exception_code))
    # Newest first; FedEx lists them so, but we do not rely on it. Undated events go last,
    # in the carrier's order (the sort is stable).
    scans.sort(key=lambda s: (0, -s.event.occurred_at.timestamp()) if s.event.occurred_at else (1, 0))
    return scans


def _location(ctx: _Context, raw: Any, where: str) -> Location | None:
    place = ctx.read.optional_obj(raw, where) or {}
    location = Location(
        city=ctx.text(place.get("city"), f"{where}.city") or None,
        state=ctx.text(place.get("stateOrProvinceCode"), f"{where}.stateOrProvinceCode") or None,
        postal_code=ctx.text(place.get("postalCode"), f"{where}.postalCode") or None,
        country=ctx.text(place.get("countryCode"), f"{where}.countryCode") or None,
    )
    return location if str(location) else None


def _date_and_times(ctx: _Context, raw: Any) -> dict[str, Any]:
    dates: dict[str, Any] = {}
    for entry in ctx.read.optional_objects(raw, "dateAndTimes"):
        kind = ctx.text(entry.get("type"), "dateAndTimes.type")
        if kind and kind not in dates:
            dates[kind] = entry.get("dateTime")  # read (or left empty, warned) by _parse_datetime
    return dates


def _label_created_at(events: list[TrackingEvent], dates: dict[str, Any], ctx: _Context) -> datetime | None:
    # The oldest OC/OX event is when the label data reached FedEx.
    for event in reversed(events):
        if event.code in LABEL_CODES and event.occurred_at is not None:
            return event.occurred_at
    if "SHIPMENT_DATA_RECEIVED" in dates:
        return _parse_datetime(dates["SHIPMENT_DATA_RECEIVED"], "SHIPMENT_DATA_RECEIVED", ctx)
    return None


def _estimated_delivery(raw: Mapping[str, Any], dates: dict[str, Any], ctx: _Context) -> date | None:
    where = "estimatedDeliveryTimeWindow"
    time_window = ctx.read.optional_obj(raw.get(where), where) or {}
    window = ctx.read.optional_obj(time_window.get("window"), f"{where}.window") or {}
    # Order of trust: FedEx's own estimate, the end of its window, its start, the commitment.
    for what, value in (
        ("ESTIMATED_DELIVERY", dates.get("ESTIMATED_DELIVERY")),
        ("estimatedDeliveryTimeWindow.ends", window.get("ends")),
        ("estimatedDeliveryTimeWindow.begins", window.get("begins")),
        ("COMMITMENT", dates.get("COMMITMENT")),
    ):
        if value is None or value == "":
            continue
        found = _parse_date(value, what, ctx)
        if found is not None:
            return found
    return None


def _delivered_at(
    status: TrackingStatus, events: list[TrackingEvent], dates: dict[str, Any], ctx: _Context
) -> datetime | None:
    actual = dates.get("ACTUAL_DELIVERY")
    if status is not TrackingStatus.delivered:
        if actual:
            ctx.warn(f"ACTUAL_DELIVERY given while the status is {status.value}; ignored")
        return None
    if actual:
        found = _parse_datetime(actual, "ACTUAL_DELIVERY", ctx)
        if found is not None:
            return found
    for event in events:
        if event.status is TrackingStatus.delivered and event.occurred_at is not None:
            return event.occurred_at
    return None


# -- dates -------------------------------------------------------------------


def _parse_datetime(value: Any, what: str, ctx: _Context) -> datetime | None:
    """An aware datetime, or None with a warning; never raises."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        ctx.warn(f"{what}: date {value!r} is not a string; left empty")
        return None
    text = value.strip()
    lenient = False
    if _ISO_DATETIME.fullmatch(text):
        candidate = text
    else:
        match = _LENIENT_DATETIME.fullmatch(text)
        if match is None:
            ctx.warn(f"{what}: date {value!r} could not be read; left empty")
            return None
        offset = match["offset"] or ""
        if len(offset) == 5:  # +hhmm -> +hh:mm
            offset = f"{offset[:3]}:{offset[3:]}"
        candidate = f"{match['date']}T{match['time']}{offset}"
        lenient = True
    try:
        parsed = datetime.fromisoformat(candidate)
    except ValueError:
        ctx.warn(f"{what}: date {value!r} could not be read; left empty")
        return None
    if lenient:
        ctx.warn(f"{what}: date {value!r} is not ISO 8601 as FedEx documents it; read leniently")
    if parsed.tzinfo is None:
        ctx.warn(f"{what}: date {value!r} has no UTC offset; read as UTC")
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _parse_date(value: Any, what: str, ctx: _Context) -> date | None:
    """The calendar date as the carrier wrote it (its local date); None with a warning."""
    match = _DATE_PREFIX.match(value.strip()) if isinstance(value, str) else None
    if match is not None:
        try:
            return date.fromisoformat(match[1])
        except ValueError:
            pass
    ctx.warn(f"{what}: date {value!r} could not be read; left empty")
    return None
