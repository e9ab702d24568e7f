"""
UPS Track API v1: build the request and parse the answer. Pure: no I/O.

``parse_response`` turns one ``GET /api/track/v1/details/{n}`` answer into
:class:`~carriers.models.TrackingResult` objects and carrier-level
:class:`~carriers.models.CarrierMessage` outcomes (carrier-apis.md sections
1.3-1.6). Shapes it cannot read raise
:class:`~carriers.errors.CarrierResponseError`.

Conventions:

* ``carrier_status_code`` and every ``TrackingEvent.code`` are the activity's
  ``type/code/statusCode`` triple, positional, with an absent part left empty
  (``"M/MP/003"``, ``"X//092"``), so the decisive 3-digit code is always kept.
* Times are UTC: ``gmtDate`` + ``gmtTime`` when present, else the local
  ``date`` + ``time`` shifted by ``gmtOffset``, else the local time read as
  UTC with a parse warning.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import structlog

from carriers.errors import (
    CarrierResponseError,
    error_for_status,
)
from carriers.models import (
    Carrier,
    CarrierMessage,
    Location,
    TrackingEvent,
    TrackingResult,
    TrackingStatus,
)
from carriers.settings import CarrierSettings
from carriers.ups import units

log = structlog.get_logger(__name__)

TRACK_PATH = "/api/track/v1/details/{number}"

_OFFSET = re.compile(r"^([+-])(\d{1,2}):?(\d{2})$")


def build_request(
    number: str, settings: CarrierSettings, trans_id: str
) -> tuple[str, str, dict[str, Any]]:
    """
    Build the tracking call for one inquiry number.

    Args:
        number: the UPS tracking (inquiry) number; UPS takes one per call.
        settings: the UPS carrier settings (``transaction_src`` names our app).
        trans_id: a value unique to this request (UPS ``transId`` header).

    Returns:
        ``(method, path, request kwargs)``; the transport adds the bearer token.
    """
    path = TRACK_PATH.format(number=quote(number, safe=""))
    kwargs: dict[str, Any] = {
        "headers": {
            "transId": trans_id,
            "transactionSrc": settings.transaction_src,
            "Accept": "application/json",
        },
        "params": {
            "locale": "en_US",
            "returnSignature": "false",
            "returnMilestones": "false",
            "returnPOD": "false",
        },
    }
    return "GET", path, kwargs


def parse_response(
    status: int, payload: Any, requested: str
) -> tuple[list[TrackingResult], list[CarrierMessage]]:
    """
    Normalize one Track API answer.

    Args:
        status: the HTTP status of the answer.
        payload: the decoded JSON body.
        requested: the number that was asked for.

    Returns:
        One result per package, and the carrier-level outcomes (``TW0001``
        not found, also sent with HTTP 200; ``TV1002`` invalid number).

    Raises:
        CarrierResponseError: the body is not a shape UPS documents, or an
            error code this parser does not know.
        CarrierAuthError: 401/403.
        CarrierRateLimited: 429.
        CarrierUnavailable: 5xx.
    """
    if 200 <= status < 300:
        return _parse_tracking(payload, requested)
    return [], [_parse_error(status, payload, requested)]


# -- status tables ------------------------------------------------------------


def activity_status(
    status_type: str | None,
    code: str | None,
    status_code: str | None,
    *,
    tracking_number: str | None = None,
    description: str | None = None,
) -> TrackingStatus:
    """
    The status one UPS activity (or ``currentStatus``, or Track Alert event) stands for.

    The 3-digit code decides when present; otherwise the ``(type, code)``
    pair; otherwise the type letter. A present signal missing from the
    tables gives :attr:`TrackingStatus.unknown` and a
    ``carrier_status_unmapped`` log line; it never falls back to a vaguer
    signal.

    Args:
        status_type: the activity type letter (``M``, ``I``, ``X``, ``D`` ...).
        code: the 2-letter activity code (``MP``, ``OT`` ...).
        status_code: the 3-digit status/description code (``003``, ``011`` ...).
        tracking_number: for the log line only.
        description: for the log line only.

    Returns:
        The normalized status of that single activity.
    """
    if status_type in units.STATUS_NEUTRAL_TYPES:
        return TrackingStatus.unknown
    found: TrackingStatus | None
    if status_code:
        found = units.STATUS_BY_CODE.get(status_code)
    elif status_type and code and (status_type, code) in units.STATUS_BY_ACTIVITY:
        found = units.STATUS_BY_ACTIVITY[(status_type, code)]
    elif status_type:
        found = units.STATUS_BY_TYPE.get(status_type)
    else:
        found = None
    if found is None:
        log.warning(
            "carrier_status_unmapped",
            carrier=Carrier.ups.value,
            tracking_number=tracking_number,
            status_type=status_type,
            code=code,
            status_code=status_code,
            description=description,
        )
        return TrackingStatus.unknown
    return found


def is_physical(status_type: str | None, status: TrackingStatus, logical_scan: bool) -> bool:
    """Whether an activity means UPS handled the parcel (not a label, void or update)."""
    if logical_scan or status in (TrackingStatus.label_created, TrackingStatus.cancelled):
        return False
    return units.PHYSICAL_BY_TYPE.get(status_type or "", False)


def status_triple(status_type: str | None, code: str | None, status_code: str | None) -> str:
    """``type/code/statusCode`` with absent parts left empty, e.g. ``"X//092"``."""
    return f"{status_type or ''}/{code or ''}/{status_code or ''}"


# -- time and place -------------------------------------------------------------


def parse_date(value: str | None) -> date | None:
    """A UPS ``YYYYMMDD`` date, or None when absent or unreadable."""
    if not value or len(value) != 8 or not value.isdigit():
        return None
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        return None


def _parse_time(value: str | None) -> tuple[int, int, int] | None:
    """``"18:06:22"``, ``"180622"`` or ``"74700"`` (leading zero dropped)."""
    if not value:
        return None
    digits = value.replace(":", "").strip()
    if not digits.isdigit() or len(digits) > 6:
        return None
    digits = digits.zfill(6)
    hour, minute, second = int(digits[:2]), int(digits[2:4]), int(digits[4:])
    if hour > 23 or minute > 59 or second > 59:
        return None
    return hour, minute, second


def _parse_offset(value: str | None) -> timezone | None:
    match = _OFFSET.match(value.strip()) if value else None
    if match is None:
        return None
    sign, hours, minutes = match.groups()
    delta = timedelta(hours=int(hours), minutes=int(minutes))
    try:
        return timezone(-delta if sign == "-" else delta)
    except ValueError:
        return None


def _combine(day: str | None, clock: str | None, tz: timezone) -> datetime | None:
    parsed_day = parse_date(day)
    parsed_clock = _parse_time(clock)
    if parsed_day is None or parsed_clock is None:
        return None
    naive = datetime(parsed_day.year, parsed_day.month, parsed_day.day, *parsed_clock)
    return naive.replace(tzinfo=tz).astimezone(UTC)


def event_time(
    *,
    gmt_date: str | None,
    gmt_time: str | None,
    local_date: str | None,
    local_time: str | None,
    gmt_offset: str | None,
    warnings: list[str] | None = None,
) -> datetime | None:
    """
    When an activity happened, in UTC.

    Args:
        gmt_date: ``gmtDate`` (``YYYYMMDD``).
        gmt_time: ``gmtTime`` (``"18:06:22"``, ``"180622"`` or ``"74700"``).
        local_date: local ``date``.
        local_time: local ``time``.
        gmt_offset: ``gmtOffset`` (``"-04:00"``), the local time's offset.
        warnings: collects what could not be read exactly.

    Returns:
        The UTC time, or None when no usable date and time are present.
    """
    notes = warnings if warnings is not None else []
    when = _combine(gmt_date, gmt_time, UTC)
    if when is not None:
        return when
    offset = _parse_offset(gmt_offset)
    if offset is not None:
        when = _combine(local_date, local_time, offset)
        if when is not None:
            return when
    when = _combine(local_date, local_time, UTC)
    if when is not None:
        notes.append(f"local time {local_date} {local_time} has no GMT offset; read as UTC")
        return when
    if any((gmt_date, gmt_time, local_date, local_time)):
        notes.append(
            f"unreadable activity time (date={local_date!r} time={local_time!r} "
            f"gmtDate={gmt_date!r} gmtTime={gmt_time!r})"
        )
    return None


def location_from(address: Mapping[str, Any] | None) -> Location | None:
    """A :class:`Location` from a UPS address, or None when it names no place."""
    if not address:
        return None
    city = _text(address.get("city"), "address.city")
    state = _text(address.get("stateProvince"), "address.stateProvince")
    postal = _text(address.get("postalCode"), "address.postalCode")
    country = _text(address.get("countryCode"), "address.countryCode") or _text(
        address.get("country"), "address.country"
    )
    if not any((city, state, postal, country)):
        return None
    return Location(city=city, state=state, postal_code=postal, country=country)


# -- shape checks -----------------------------------------------------------------


def _malformed(
    message: str, requested: str | None = None, status: int | None = None
) -> CarrierResponseError:
    return CarrierResponseError(
        f"UPS answer not understood: {message}",
        carrier=Carrier.ups,
        tracking_number=requested,
        status=status,
    )


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _malformed(f"{where} is {type(value).__name__}, expected an object")
    return value


def _optional_mapping(value: Any, where: str) -> Mapping[str, Any] | None:
    return None if value is None else _mapping(value, where)


def _sequence(value: Any, where: str) -> Sequence[Any]:
    """A JSON array; None (absent) reads as empty."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise _malformed(f"{where} is {type(value).__name__}, expected an array")
    return value


def _text(value: Any, where: str) -> str | None:
    """A trimmed string (numbers accepted); None when absent or blank."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _malformed(f"{where} is {type(value).__name__}, expected a string")
    text = str(value).strip()
    return text or None


def _status_code(value: Any, where: str) -> str | None:
    """A 3-digit status/description code; UPS tables also print them unpadded."""
    text = _text(value, where)
    if text is not None and text.isdigit():
        return text.zfill(3)
    return text


# -- errors -----------------------------------------------------------------------


def error_codes(payload: Any) -> list[tuple[str, str]]:
    """
    ``(code, message)`` pairs from the UPS error envelope.

    Args:
        payload: a decoded body, ``{"response": {"errors": [{code, message}]}}``.

    Returns:
        The pairs; empty when the body is not that envelope.
    """
    if not isinstance(payload, Mapping):
        return []
    response = payload.get("response")
    errors = response.get("errors") if isinstance(response, Mapping) else None
    if not isinstance(errors, list):
        return []
    pairs = []
    for error in errors:
        if isinstance(error, Mapping) and isinstance(error.get("code"), str | int):
            pairs.append((str(error["code"]).strip(), str(error.get("message") or "").strip()))
    return pairs


def _known_outcome(codes: list[tuple[str, str]], requested: str) -> CarrierMessage | None:
    """The first (code, message) UPS documents as a per-number outcome (TW0001, TV1002)."""
    for code, message in codes:
        outcome = units.OUTCOME_BY_ERROR_CODE.get(code)
        if outcome is not None:
            return CarrierMessage(
                carrier=Carrier.ups, tracking_number=requested, outcome=outcome, code=code, message=message
            )
    return None


def _parse_error(status: int, payload: Any, requested: str) -> CarrierMessage:
    errors = error_codes(payload)
    described = "; ".join(f"{code} {message}".strip() for code, message in errors) or "no details"
    failure = error_for_status(status, carrier=Carrier.ups, detail=described, tracking_number=requested)
    if failure is not None:
        raise failure
    if status in (400, 404):
        message = _known_outcome(errors, requested)
        if message is not None:
            return message
        if not errors:
            raise _malformed(f"HTTP {status} without the UPS error envelope", requested, status)
    raise _malformed(f"HTTP {status} with unexpected error ({described})", requested, status)


# -- tracking ---------------------------------------------------------------------


def _parse_tracking(
    payload: Any, requested: str
) -> tuple[list[TrackingResult], list[CarrierMessage]]:
    try:
        root = _mapping(payload, "body")
        track = _mapping(root.get("trackResponse"), "trackResponse")
        shipments = _sequence(track.get("shipment"), "trackResponse.shipment")
        if not shipments:
            raise _malformed("trackResponse.shipment is empty")
        results: list[TrackingResult] = []
        messages: list[CarrierMessage] = []
        for index, raw_shipment in enumerate(shipments):
            where = f"shipment[{index}]"
            shipment = _mapping(raw_shipment, where)
            warnings = _warnings(shipment.get("warnings"), where)
            packages = _sequence(shipment.get("package"), f"{where}.package")
            if not packages:
                messages.append(_warning_message(warnings, requested))
                continue
            for p_index, raw_package in enumerate(packages):
                package = _mapping(raw_package, f"{where}.package[{p_index}]")
                number = requested
                if len(packages) > 1:
                    number = _text(package.get("trackingNumber"), "trackingNumber") or requested
                results.append(_parse_package(package, number, warnings))
        return results, messages
    except CarrierResponseError as exc:
        exc.tracking_number = requested
        raise


def _warnings(value: Any, where: str) -> list[tuple[str, str]]:
    pairs = []
    for index, raw in enumerate(_sequence(value, f"{where}.warnings")):
        warning = _mapping(raw, f"{where}.warnings[{index}]")
        code = _text(warning.get("code"), "warning.code") or ""
        pairs.append((code, _text(warning.get("message"), "warning.message") or ""))
    return pairs


def _warning_message(warnings: list[tuple[str, str]], requested: str) -> CarrierMessage:
    """A shipment without packages: the warning says why (``TW0001``: not found)."""
    message = _known_outcome(warnings, requested)
    if message is not None:
        return message
    codes = ", ".join(code for code, _ in warnings) or "none"
    raise _malformed(f"shipment without packages and no known warning (warnings: {codes})")


def _parse_package(
    package: Mapping[str, Any], number: str, shipment_warnings: list[tuple[str, str]]
) -> TrackingResult:
    notes = [f"carrier warning {code}: {message}".strip() for code, message in shipment_warnings]
    activities = _sequence(package.get("activity"), "package.activity")
    # (event, status type) pairs; the type decides which events can set the shipment status.
    parsed = [_parse_activity(a, i, number, notes) for i, a in enumerate(activities)]
    if all(event.occurred_at is not None for event, _ in parsed):
        # UPS sends newest first; sort anyway (stable, so same-second events keep UPS order).
        parsed.sort(key=lambda pair: pair[0].occurred_at or datetime.min, reverse=True)
    events = [event for event, _ in parsed]
    deciding = next(
        (event for event, kind in parsed if kind not in units.STATUS_NEUTRAL_TYPES), None
    )

    current = _optional_mapping(package.get("currentStatus"), "package.currentStatus")
    status = TrackingStatus.unknown
    if current is not None:
        status = _current_status(current, number)
    if status is TrackingStatus.unknown and deciding is not None:
        status = deciding.status

    if deciding is not None:
        carrier_code: str | None = deciding.code
        detail = deciding.description or None
    elif current is not None:
        carrier_code = _status_code(current.get("code"), "currentStatus.code")
        detail = _text(current.get("description"), "currentStatus.description")
    else:
        carrier_code = detail = None

    label_times = [
        e.occurred_at
        for e in events
        if e.status is TrackingStatus.label_created and e.occurred_at is not None
    ]
    delivered_at = next(
        (
            e.occurred_at
            for e in events
            if e.status is TrackingStatus.delivered and e.occurred_at is not None
        ),
        None,
    )
    estimated, delivered_on = _delivery_dates(package, notes)
    if delivered_at is None and delivered_on is not None:
        delivered_at = _delivery_time(package, delivered_on, notes)

    return TrackingResult(
        carrier=Carrier.ups,
        tracking_number=number,
        status=status,
        carrier_status_code=carrier_code,
        status_detail=detail,
        events=events,
        label_created_at=min(label_times) if label_times else None,
        estimated_delivery=estimated,
        delivered_at=delivered_at,
        parse_warnings=notes,
    )


def _current_status(current: Mapping[str, Any], number: str) -> TrackingStatus:
    """``currentStatus``: real data puts the 3-digit code in ``code``; the spec also shows
    an activity-like ``{type, code, statusCode}``."""
    status_type = _text(current.get("type"), "currentStatus.type")
    code = _text(current.get("code"), "currentStatus.code")
    status_code = _status_code(current.get("statusCode"), "currentStatus.statusCode")
    if status_code is None and code is not None and code.isdigit():
        status_code, code = code.zfill(3), None
    if not any((status_type, code, status_code)):
        return TrackingStatus.unknown
    return activity_status(
        status_type,
        code,
        status_code,
        tracking_number=number,
        description=_text(current.get("description"), "currentStatus.description"),
    )


def _parse_activity(
    raw: Any, index: int, number: str, notes: list[str]
) -> tuple[TrackingEvent, str | None]:
    where = f"activity[{index}]"
    activity = _mapping(raw, where)
    status_block = _mapping(activity.get("status"), f"{where}.status")
    status_type = _text(status_block.get("type"), f"{where}.status.type")
    code = _text(status_block.get("code"), f"{where}.status.code")
    status_code = _status_code(status_block.get("statusCode"), f"{where}.status.statusCode")
    description = _text(status_block.get("description"), f"{where}.status.description") or ""
    status = activity_status(
        status_type, code, status_code, tracking_number=number, description=description
    )
    location = _optional_mapping(activity.get("location"), f"{where}.location")
    address = (
        _optional_mapping(location.get("address"), f"{where}.location.address")
        if location is not None
        else None
    )
    occurred_at = event_time(
        gmt_date=_text(activity.get("gmtDate"), f"{where}.gmtDate"),
        gmt_time=_text(activity.get("gmtTime"), f"{where}.gmtTime"),
        local_date=_text(activity.get("date"), f"{where}.date"),
        local_time=_text(activity.get("time"), f"{where}.time"),
        gmt_offset=_text(activity.get("gmtOffset"), f"{where}.gmtOffset"),
        warnings=notes,
    )
    if occurred_at is None:
        notes.append(f"{where} ({status_triple(status_type, code, status_code)}) has no time")
    event = TrackingEvent(
        occurred_at=occurred_at,
        status=status,
        code=status_triple(status_type, code, status_code),
        description=description,
        location=location_from(address),
        physical=is_physical(status_type, status, activity.get("logicalScan") is True),
    )
    return event, status_type


def _delivery_dates(package: Mapping[str, Any], notes: list[str]) -> tuple[date | None, date | None]:
    """``(estimated, delivered)`` from ``deliveryDate[]``: RDD beats SDD; DEL is delivered."""
    by_type: dict[str, date] = {}
    for index, raw in enumerate(_sequence(package.get("deliveryDate"), "package.deliveryDate")):
        entry = _mapping(raw, f"deliveryDate[{index}]")
        kind = _text(entry.get("type"), "deliveryDate.type")
        if kind not in ("SDD", "RDD", "DEL"):
            continue
        value = _text(entry.get("date"), "deliveryDate.date")
        parsed = parse_date(value)
        if parsed is None:
            notes.append(f"unreadable {kind} delivery date {value!r}")
            continue
        by_type[kind] = parsed
    return by_type.get("RDD") or by_type.get("SDD"), by_type.get("DEL")


def _delivery_time(package: Mapping[str, Any], day: date, notes: list[str]) -> datetime:
    """Delivery time from ``deliveryDate`` DEL and ``deliveryTime`` (local, no offset)."""
    block = _optional_mapping(package.get("deliveryTime"), "package.deliveryTime") or {}
    clock = None
    if _text(block.get("type"), "deliveryTime.type") == "DEL":
        clock = _parse_time(_text(block.get("endTime"), "deliveryTime.endTime"))
    notes.append("delivery time taken from deliveryDate DEL, local time read as UTC")
    return datetime(day.year, day.month, day.day, *(clock or (0, 0, 0)), tzinfo=UTC)

