"""
USPS Tracking v3: build the request, parse the answer. Pure functions.

No HTTP and no Redis here (``transport.py`` does the HTTP); the only side
effect is a ``carrier_status_unmapped`` log line when USPS sends a code the
tables in :mod:`carriers.usps.units` do not know.

What a v3 answer can be (carrier-apis.md sections 3.3-3.6):

* HTTP 200 with ``TrackingDetails`` (``trackingEvents`` newest first);
* HTTP 400 with the error envelope ``{"apiVersion", "error": {"code",
  "message", "errors": [{"code": "150001", ...}]}}``: "no data yet" or a
  rejected number, told apart by the sub-code;
* HTTP 404 (v3r2 style, sub-code 150006): no data yet;
* 401/403/429/5xx: whole-call failures, normally raised by the transport
  before parsing; :func:`parse_response` raises the same errors if fed one.
"""

from __future__ import annotations

import html
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
    Outcome,
    TrackingEvent,
    TrackingResult,
    TrackingStatus,
)
from carriers.usps import units

log = structlog.get_logger("carriers.usps")

CARRIER = Carrier.usps

#: v3 single-number lookup; DETAIL returns the events (the default SUMMARY does not).
TRACKING_PATH = "/tracking/v3/tracking/{number}"
TRACKING_PARAMS: Mapping[str, str] = {"expand": "DETAIL"}

#: eventTimestamp has minute resolution, GMTTimestamp seconds: closer than this agrees.
_GMT_AGREEMENT = timedelta(seconds=120)

_OFFSET_RE = re.compile(r"^([+-])(\d{2}):?(\d{2})$")
_TAG_RE = re.compile(r"<[^>]*>")
_SUP_ENTITY_RE = re.compile(r"<SUP>\s*(#?\w+;)\s*</SUP>", re.IGNORECASE)


def build_request(number: str) -> tuple[str, str, dict[str, str]]:
    """
    The v3 DETAIL lookup of one tracking number.

    Args:
        number: the tracking number, already normalized by the caller.

    Returns:
        ``(method, path, query params)`` relative to the USPS base URL.
    """
    return "GET", TRACKING_PATH.format(number=quote(number, safe="")), dict(TRACKING_PARAMS)


def parse_response(
    status: int, payload: Any, requested: str
) -> tuple[list[TrackingResult], list[CarrierMessage]]:
    """
    Turn one v3 answer into a result or a carrier message.

    Args:
        status: the HTTP status of the answer.
        payload: the decoded JSON body.
        requested: the tracking number that was asked for; results and
            messages are keyed on it.

    Returns:
        ``([result], [])`` for tracking data, ``([], [message])`` when USPS
        says it has none (``not_found``) or rejects the number
        (``invalid_number``).

    Raises:
        CarrierAuthError: 401/403.
        CarrierRateLimited: 429.
        CarrierUnavailable: 5xx.
        CarrierResponseError: any shape other than the documented ones.
    """
    _raise_for_status(status, requested)
    if not isinstance(payload, Mapping):
        raise _malformed(f"expected a JSON object, got {type(payload).__name__}", requested, status)
    error = payload.get("error")
    if error is not None:
        return [], [_error_message(status, error, requested)]
    if not 200 <= status < 300:
        raise _malformed(f"HTTP {status} without the USPS error envelope", requested, status)
    if "trackingNumber" not in payload and "trackingEvents" not in payload:
        raise _malformed("neither tracking details nor an error envelope", requested, status)
    return [_result(payload, requested, status)], []


# -- errors -----------------------------------------------------------------


def _raise_for_status(status: int, requested: str) -> None:
    failure = error_for_status(status, carrier=CARRIER, detail=f"HTTP {status}", tracking_number=requested)
    if failure is not None:
        raise failure


def _error_message(status: int, error: Any, requested: str) -> CarrierMessage:
    if not isinstance(error, Mapping):
        raise _malformed("'error' is not an object", requested, status)
    items = error.get("errors") or []
    if not isinstance(items, list) or not all(isinstance(item, Mapping) for item in items):
        raise _malformed("'error.errors' is not a list of objects", requested, status)
    # The envelope repeats the HTTP status as a string; trust it only when the
    # HTTP status itself says success (a proxy may have rewritten that).
    http = status
    envelope_code = _text(error, "code", requested, status)
    if 200 <= status < 300 and envelope_code and envelope_code.isdigit():
        http = int(envelope_code)
    _raise_for_status(http, requested)

    sub_codes = [_text(item, "code", requested, status) or "" for item in items]
    not_found = [i for i, code in enumerate(sub_codes) if code in units.NOT_FOUND_ERROR_CODES]
    index: int | None = not_found[0] if not_found else (0 if items else None)
    if not_found:
        outcome = Outcome.not_found
    elif http == 404:
        # v3r2's "status update is not yet available" (150006) comes as 404;
        # a 404 never means a rejected number.
        outcome = Outcome.not_found
    elif http == 400:
        # USPS rejected the number as asked (150011 pickup transaction, 150012
        # fraudulent postage, or a sub-code we do not know).
        outcome = Outcome.invalid_number
    else:
        raise _malformed(
            f"unexpected HTTP {http} error envelope (codes {', '.join(sub_codes) or 'none'})",
            requested,
            status,
        )
    code = sub_codes[index] if index is not None and sub_codes[index] else str(http)
    words = [error.get("message")]
    if index is not None:
        words = [items[index].get("title"), items[index].get("detail"), *words]
    message = next((_clean(w) for w in words if isinstance(w, str) and _clean(w)), "")
    return CarrierMessage(
        carrier=CARRIER, tracking_number=requested, outcome=outcome, code=code, message=message
    )


def _malformed(message: str, requested: str, status: int) -> CarrierResponseError:
    return CarrierResponseError(
        f"USPS tracking answer not understood: {message}",
        carrier=CARRIER,
        tracking_number=requested,
        status=status,
    )


# -- tracking details ---------------------------------------------------------


def _result(payload: Mapping[str, Any], requested: str, status: int) -> TrackingResult:
    warnings: list[str] = []
    number = _text(payload, "trackingNumber", requested, status)
    if number and _squash(number) != _squash(requested):
        warnings.append(f"USPS answered for {number!r}, not {requested!r}")

    raw_events = payload.get("trackingEvents")
    if raw_events is None:
        raw_events = []
    if not isinstance(raw_events, list) or not all(isinstance(e, Mapping) for e in raw_events):
        raise _malformed("'trackingEvents' is not a list of objects", requested, status)

    offsets = [
        _offset(_text(raw, "GMTOffset", requested, status), warnings, i)
        for i, raw in enumerate(raw_events)
    ]
    # USPS sends events newest first; their order is kept because some of
    # their times are repaired or guessed below and must not reorder history.
    events = [
        _event(raw, i, offsets, warnings, requested, status) for i, raw in enumerate(raw_events)
    ]

    category = _text(payload, "statusCategory", requested, status)
    newest = events[0] if events else None
    result_status = units.STATUS_BY_EVENT_CODE.get(newest.code) if newest else None
    if result_status is None and category:
        result_status = units.STATUS_BY_CATEGORY.get(units.category_key(category))
    result_status = result_status or TrackingStatus.unknown

    unmapped = sorted(
        {
            e.code
            for e in events
            if e.code not in units.STATUS_BY_EVENT_CODE
            and e.code not in units.DEFERRING_EVENT_CODES
        }
    )
    if unmapped or result_status is TrackingStatus.unknown:
        log.warning(
            "carrier_status_unmapped",
            carrier=CARRIER.value,
            tracking_number=requested,
            event_codes=unmapped,
            newest_event_code=newest.code if newest else None,
            status_category=category,
            status=result_status.value,
        )

    detail = (_text(payload, "status", requested, status) or "").strip()
    # The label's own event (GX/MA); failing that, the oldest label-side event
    # (a shipping partner's 80/81/82), so the tender grace clock still runs.
    label_created_at = next(
        (
            e.occurred_at
            for e in reversed(events)
            if e.code in units.LABEL_EVENT_CODES and e.occurred_at is not None
        ),
        None,
    ) or next(
        (
            e.occurred_at
            for e in reversed(events)
            if e.status is TrackingStatus.label_created and e.occurred_at is not None
        ),
        None,
    )
    delivered_at = None
    if result_status is TrackingStatus.delivered:
        delivered_at = next(
            (
                e.occurred_at
                for e in events
                if e.status is TrackingStatus.delivered and e.occurred_at is not None
            ),
            None,
        )
    return TrackingResult(
        carrier=CARRIER,
        tracking_number=requested,
        status=result_status,
        carrier_status_code=newest.code if newest else None,
        status_detail=detail or (newest.description if newest and newest.description else None),
        events=events,
        label_created_at=label_created_at,
        estimated_delivery=_estimated_delivery(payload, warnings, requested, status),
        delivered_at=delivered_at,
        parse_warnings=warnings,
    )


def _event(
    raw: Mapping[str, Any],
    index: int,
    offsets: Sequence[timezone | None],
    warnings: list[str],
    requested: str,
    status: int,
) -> TrackingEvent:
    def text(key: str) -> str | None:
        value = _text(raw, key, requested, status)
        return value.strip() or None if value is not None else None

    code = text("eventCode") or ""
    place = {
        "city": text("eventCity"),
        "state": text("eventState"),
        "postal_code": text("eventZIP"),
        "country": text("eventCountry"),
    }
    return TrackingEvent(
        occurred_at=_event_time(
            text("eventTimestamp"), text("GMTTimestamp"), index, offsets, warnings, code
        ),
        status=units.STATUS_BY_EVENT_CODE.get(code, TrackingStatus.unknown),
        code=code,
        description=text("eventType") or "",
        location=Location(**place) if any(place.values()) else None,
        physical=units.is_physical(code),
    )


def _event_time(
    local_text: str | None,
    gmt_text: str | None,
    index: int,
    offsets: Sequence[timezone | None],
    warnings: list[str],
    code: str,
) -> datetime | None:
    """
    When an event happened, always timezone-aware.

    1. ``GMTTimestamp`` (UTC), shown in the event's ``GMTOffset``. Real USPS
       payloads sometimes carry the *local* date on it (an event at 18:31
       local, -06:00, with GMTTimestamp 00:31Z the same day, a day early): when
       it disagrees with ``eventTimestamp + GMTOffset`` the latter wins.
    2. ``eventTimestamp`` (local wall time, no offset in v3) + ``GMTOffset``.
       An explicit non-UTC offset on eventTimestamp counts as its GMTOffset; a
       ``Z`` does not (the USPS README puts ``Z`` on a local time).
    3. ``eventTimestamp`` alone: the GMTOffset of the nearest event in the same
       answer (label events often lack it), else UTC; either with a warning.
    """
    where = f"event {index} ({code or 'no code'})"
    offset = offsets[index]
    local = _parse_datetime(local_text)
    if local_text and local is None:
        warnings.append(f"{where}: eventTimestamp {local_text!r} is not a date-time")
    if local is not None and local.tzinfo is not None:
        own = local.utcoffset()
        if offset is None and own:
            offset = timezone(own)
        local = local.replace(tzinfo=None)

    gmt = _parse_datetime(gmt_text)
    if gmt_text and gmt is None:
        warnings.append(f"{where}: GMTTimestamp {gmt_text!r} is not a date-time")
    if gmt is not None:
        gmt = gmt.replace(tzinfo=UTC) if gmt.tzinfo is None else gmt.astimezone(UTC)
        if local is not None and offset is not None:
            from_local = local.replace(tzinfo=offset)
            if abs(from_local - gmt) > _GMT_AGREEMENT:
                warnings.append(
                    f"{where}: GMTTimestamp {gmt_text} disagrees with eventTimestamp "
                    f"{local_text} at {_offset_text(offset)}; used the local time"
                )
                return from_local
        return gmt.astimezone(offset or UTC)

    if local is None:
        return None
    if offset is not None:
        return local.replace(tzinfo=offset)
    borrowed = _nearest_offset(offsets, index)
    if borrowed is not None:
        warnings.append(
            f"{where}: no GMT time or offset; assumed {_offset_text(borrowed)} "
            "from a neighbouring event"
        )
        return local.replace(tzinfo=borrowed)
    warnings.append(f"{where}: no GMT time or offset; assumed UTC")
    return local.replace(tzinfo=UTC)


def _nearest_offset(offsets: Sequence[timezone | None], index: int) -> timezone | None:
    for distance in range(1, len(offsets)):
        for j in (index - distance, index + distance):
            if 0 <= j < len(offsets) and offsets[j] is not None:
                return offsets[j]
    return None


def _offset(value: str | None, warnings: list[str], index: int) -> timezone | None:
    if not value or not value.strip():
        return None
    match = _OFFSET_RE.match(value.strip())
    if match is None:
        warnings.append(f"event {index}: GMTOffset {value!r} not understood")
        return None
    sign, hours, minutes = match.groups()
    delta = timedelta(hours=int(hours), minutes=int(minutes))
    if delta >= timedelta(hours=24):
        warnings.append(f"event {index}: GMTOffset {value!r} out of range")
        return None
    return timezone(-delta if sign == "-" else delta)


def _offset_text(offset: timezone) -> str:
    return datetime(2000, 1, 1, tzinfo=offset).strftime("%z")


def _parse_datetime(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        return None


def _estimated_delivery(
    payload: Mapping[str, Any], warnings: list[str], requested: str, status: int
) -> date | None:
    for key in ("expectedDeliveryTimeStamp", "predictedDeliveryDate"):
        value = (_text(payload, key, requested, status) or "").strip()
        if not value:
            continue
        parsed = _parse_datetime(value)
        if parsed is not None:
            return parsed.date()
        warnings.append(f"{key} {value!r} is not a date")
    return None


# -- small helpers ------------------------------------------------------------


def _text(obj: Mapping[str, Any], key: str, requested: str, status: int) -> str | None:
    """A string field; numbers are accepted as text (ZIP codes), other types are malformed."""
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise _malformed(f"{key!r} is a {type(value).__name__}, not text", requested, status)


def _clean(value: str) -> str:
    """USPS words for display: tags (``<SUP>&reg;</SUP>``) and entities out, spaces folded."""
    # USPS sometimes drops the '&' of an entity inside <SUP> ("<SUP>reg;</SUP>").
    text = _SUP_ENTITY_RE.sub(r"&\1", value)
    text = html.unescape(_TAG_RE.sub("", text))
    return " ".join(text.split()).rstrip(" -")


def _squash(number: str) -> str:
    return "".join(ch for ch in number if ch.isalnum()).upper()
