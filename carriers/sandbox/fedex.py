"""
FedEx emulation for the sandbox: ``POST /oauth/token`` and
``POST /track/v1/trackingnumbers`` in FedEx's wire format (carrier-apis.md
section 2), so the FedEx adapter cannot tell it from FedEx.

Scenario steps become FedEx scans (newest first, local times with an offset):

==================  ====  ===========  ============================================
step                code  derived      notes
==================  ====  ===========  ============================================
label               OC    IN           locationType CUSTOMER; label-only answers carry
                                       serviceCommitMessage SHIPMENT_LABEL_CREATED and
                                       ancillary reason IN001
void                CA    CA [INF]     shipment cancelled
pickup              PU    PU           adds ACTUAL_PICKUP / ACTUAL_TENDER
arrival             AR    IT           first at the hub, later at the destination station
departure           DP    IT
out_for_delivery    OD    IT           FedEx flattens OD to derived IT [REAL]
attempt             DE    DE           exceptionCode 08 "Customer not available or
                                       business closed" at DELIVERY_LOCATION [REAL shape];
                                       adds ATTEMPTED_DELIVERY, deliveryAttempts
ready_for_pickup    HP    IT (HL)      scan derived IT as in real data; latest derived HL
delivered           DL    DL           adds ACTUAL_DELIVERY
exception           DE    DE           exceptionCode 03 "Incorrect address" [INF code]
return_to_sender    RS    RS [INF]     return to shipper
==================  ====  ===========  ============================================
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
from aiohttp import web

from carriers.models import Carrier
from carriers.sandbox.scenarios import Scenario, Step
from carriers.sandbox.state import FAULT_MODES, FaultPlan, SandboxState

TOKEN_PATH = "/oauth/token"
TRACK_PATH = "/track/v1/trackingnumbers"
MAX_NUMBERS = 30

#: FedEx's error code and wording per HTTP status (the spec's examples).
_ERRORS_BY_STATUS: dict[int, tuple[str, str]] = {
    400: ("INVALID.INPUT.EXCEPTION", "Invalid field value in the input"),
    401: ("NOT.AUTHORIZED.ERROR", "Access token expired. Please modify your request and try again."),
    403: (
        "FORBIDDEN.ERROR",
        "We could not authorize your credentials. Please check your permissions and try again.",
    ),
    404: (
        "NOT.FOUND.ERROR",
        "The resource you requested is no longer available. Please modify your request and try again.",
    ),
    # The 429 body code is not documented [unverified]; the message is the docs' wording.
    429: ("TOO.MANY.REQUESTS.ERROR", "Too many requests"),
    500: (
        "INTERNAL.SERVER.ERROR",
        "We encountered an unexpected error and are working to resolve the issue. "
        "We apologize for any inconvenience. Please check back at a later time.",
    ),
    503: (
        "SERVICE.UNAVAILABLE.ERROR",
        "The service is currently unavailable and we are working to resolve the issue. "
        "We apologize for any inconvenience. Please check back at a later time.",
    ),
}

_NOT_FOUND = {
    "code": "TRACKING.TRACKINGNUMBER.NOTFOUND",
    "message": "Tracking number cannot be found. Please correct the tracking number and try again.",
}
_EMPTY = ("TRACKING.TRACKINGNUMBER.EMPTY", "Please provide tracking number.")


@dataclass(frozen=True)
class _Place:
    city: str
    state: str
    postal_code: str
    offset_h: int

    def scan_location(self) -> dict[str, Any]:
        return {
            "streetLines": [""],
            "city": self.city,
            "stateOrProvinceCode": self.state,
            "postalCode": self.postal_code,
            "countryCode": "US",
            "residential": False,
            "countryName": "United States",
        }


_PLACES = {
    "DALLAS": _Place("DALLAS", "TX", "75201", -5),
    "BROOKLYN": _Place("BROOKLYN", "NY", "11201", -4),
    "MEMPHIS": _Place("MEMPHIS", "TN", "38118", -5),
}


def _place(city: str) -> _Place:
    return _PLACES.get(city.upper(), _Place(city.upper(), "", "", -5))


@dataclass(frozen=True)
class _StepWire:
    code: str
    description: str
    derived: str
    derived_status: str
    location_type: str
    exception_code: str = ""
    exception_description: str = ""


_WIRE: dict[Step, _StepWire] = {
    Step.label: _StepWire("OC", "Shipment information sent to FedEx", "IN", "Label created", "CUSTOMER"),
    Step.void: _StepWire("CA", "Shipment cancelled", "CA", "Cancelled", "CUSTOMER"),
    Step.pickup: _StepWire("PU", "Picked up", "PU", "Picked up", "PICKUP_LOCATION"),
    Step.arrival: _StepWire("AR", "Arrived at FedEx location", "IT", "In transit", "FEDEX_FACILITY"),
    Step.departure: _StepWire("DP", "Departed FedEx location", "IT", "In transit", "FEDEX_FACILITY"),
    Step.out_for_delivery: _StepWire("OD", "On FedEx vehicle for delivery", "IT", "In transit", "VEHICLE"),
    Step.attempt: _StepWire(
        "DE", "Delivery exception", "DE", "Delivery exception", "DELIVERY_LOCATION",
        "08", "Customer not available or business closed",
    ),
    Step.ready_for_pickup: _StepWire(
        "HP", "Ready for recipient pickup", "IT", "In transit", "DESTINATION_FEDEX_FACILITY",
        "", "Package available for pickup at: 100 FLATBUSH AVE",
    ),
    Step.delivered: _StepWire("DL", "Delivered", "DL", "Delivered", "DELIVERY_LOCATION"),
    Step.exception: _StepWire(
        "DE", "Delivery exception", "DE", "Delivery exception", "DESTINATION_FEDEX_FACILITY",
        "03", "Incorrect address",
    ),
    Step.return_to_sender: _StepWire(
        "RS", "Return to shipper", "RS", "Return to shipper", "DESTINATION_FEDEX_FACILITY"
    ),
}  # fmt: skip

#: What ``latestStatusDetail`` says for a newest step, where it differs from the scan.
_LATEST_DERIVED: dict[Step, tuple[str, str]] = {
    Step.ready_for_pickup: ("HL", "Ready for pickup"),
}


def install(app: web.Application, state: SandboxState) -> None:
    """
    Register the FedEx token and tracking routes.

    Args:
        app: the sandbox application.
        state: the shared sandbox state (scenarios, tokens, faults, counters).
    """

    async def token(request: web.Request) -> web.Response:
        return await _token(request, state)

    async def track(request: web.Request) -> web.StreamResponse:
        return await _track(request, state)

    app.router.add_post(TOKEN_PATH, token)
    app.router.add_post(TRACK_PATH, track)


def _error(status: int, code: str, message: str) -> web.Response:
    body = {"transactionId": str(uuid.uuid4()), "errors": [{"code": code, "message": message}]}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def render_error(status: int, code: str, message: str) -> web.Response:
    """
    A FedEx error envelope for ``status``, in FedEx's own code and words.

    The sandbox core passes neutral codes (``server_error``, ...); FedEx
    would never say those, so its code and message for the status are used.
    """
    fedex_code, fedex_message = _ERRORS_BY_STATUS.get(status, (code, message))
    return _error(status, fedex_code, fedex_message)


async def _token(request: web.Request, state: SandboxState) -> web.Response:
    form = await request.post()
    grant_type = str(form.get("grant_type", ""))
    client_id = str(form.get("client_id", ""))
    client_secret = str(form.get("client_secret", ""))
    if grant_type != "client_credentials":
        # Other grant types exist (csp_credentials, ...) but the sandbox issues only this one.
        return _error(400, "BAD.REQUEST.ERROR", "The given grant_type is not supported.")
    if not state.credentials_ok(Carrier.fedex, client_id, client_secret):
        return _error(
            401,
            "NOT.AUTHORIZED.ERROR",
            "The given client credentials were not valid. Please modify your request and try again.",
        )
    access_token, ttl_s = state.issue_token(Carrier.fedex)
    return web.json_response(
        {"access_token": access_token, "token_type": "bearer", "expires_in": ttl_s, "scope": "CXS"}
    )


async def _track(request: web.Request, state: SandboxState) -> web.StreamResponse:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        body = None
    tracking_info = body.get("trackingInfo") if isinstance(body, dict) else None
    count = len(tracking_info) if isinstance(tracking_info, list) else 0
    early = await state.before_tracking(request, Carrier.fedex, render_error, numbers=count)
    if early is not None:
        return early

    if not isinstance(body, dict) or not isinstance(body.get("includeDetailedScans"), bool):
        return _error(400, *_ERRORS_BY_STATUS[400])
    if not isinstance(tracking_info, list) or not tracking_info:
        return _error(400, *_EMPTY)
    if len(tracking_info) > MAX_NUMBERS:
        # FedEx documents the cap but not the error for exceeding it [INF code].
        return _error(400, *_ERRORS_BY_STATUS[400])
    numbers: list[str] = []
    for entry in tracking_info:
        info = entry.get("trackingNumberInfo") if isinstance(entry, dict) else None
        number = info.get("trackingNumber") if isinstance(info, dict) else None
        if not isinstance(number, str) or not number.strip():
            return _error(400, *_EMPTY)
        numbers.append(number.strip())

    scenarios = [state.scenario(Carrier.fedex, number) for number in numbers]
    for scenario in scenarios:
        if scenario is None or not scenario.fault:
            continue
        if scenario.fault == "malformed":
            # Cut off mid-document: broken JSON for the whole call.
            return web.Response(
                status=200,
                body=b'{"transactionId":"' + str(uuid.uuid4()).encode() + b'","output":{"completeTra',
                content_type="application/json",
            )
        if scenario.fault in FAULT_MODES:
            response = await state.play_fault(
                request, FaultPlan(scenario.fault, 1), render_error, carrier=Carrier.fedex
            )
            if response is not None:
                return response

    now = datetime.now(UTC)
    results = [
        _complete_result(number, scenario, now)
        if scenario is not None and not scenario.not_found
        else {
            "trackingNumber": number,
            "trackResults": [
                {
                    "trackingNumberInfo": {
                        "trackingNumber": number,
                        "trackingNumberUniqueId": "",
                        "carrierCode": "",
                    },
                    "error": dict(_NOT_FOUND),
                }
            ],
        }
        for number, scenario in zip(numbers, scenarios, strict=True)
    ]
    payload: dict[str, Any] = {"transactionId": str(uuid.uuid4())}
    customer_id = request.headers.get("x-customer-transaction-id")
    if customer_id:
        payload["customerTransactionId"] = customer_id
    payload["output"] = {"completeTrackResults": results}
    return web.Response(status=200, body=orjson.dumps(payload), content_type="application/json")


def _iso(moment: datetime, offset_h: int) -> str:
    return moment.astimezone(timezone(timedelta(hours=offset_h))).isoformat(timespec="seconds")


def _day(moment: datetime, offset_h: int) -> str:
    local = moment.astimezone(timezone(timedelta(hours=offset_h)))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.isoformat(timespec="seconds")


def _complete_result(number: str, scenario: Scenario, now: datetime) -> dict[str, Any]:
    origin = _place(scenario.origin_city)
    destination = _place(scenario.destination_city)
    hub = _PLACES["MEMPHIS"]
    ground = len(number) == 15

    events: list[dict[str, Any]] = []
    dates: dict[str, str] = {}
    arrivals = departures = attempts = 0
    steps_seen: set[Step] = set()
    for step, age in scenario.steps:  # oldest first
        moment = now - age
        wire = _WIRE[step]
        location_type = wire.location_type
        description = wire.description
        if step in (Step.label, Step.void, Step.pickup):
            place = origin
        elif step is Step.arrival:
            place = hub if arrivals == 0 else destination
            if arrivals > 0:
                location_type, description = "DESTINATION_FEDEX_FACILITY", "At local FedEx facility"
            arrivals += 1
        elif step is Step.departure:
            place = hub if departures == 0 else destination
            departures += 1
        else:
            place = destination
        event: dict[str, Any] = {
            "date": _iso(moment, place.offset_h),
            "eventType": wire.code,
            "eventDescription": description,
            "exceptionCode": wire.exception_code,
            "exceptionDescription": wire.exception_description,
            "scanLocation": place.scan_location(),
            "locationType": location_type,
            "derivedStatusCode": wire.derived,
            "derivedStatus": wire.derived_status,
        }
        events.append(event)
        steps_seen.add(step)
        if step is Step.label:
            dates.setdefault("SHIP", _day(moment, origin.offset_h))
        elif step is Step.pickup:
            dates["ACTUAL_PICKUP"] = event["date"]
            dates["ACTUAL_TENDER"] = event["date"]
        elif step is Step.attempt:
            attempts += 1
            dates["ATTEMPTED_DELIVERY"] = event["date"]
        elif step is Step.delivered:
            dates["ACTUAL_DELIVERY"] = event["date"]
    events.reverse()  # FedEx lists scans newest first

    newest_step = scenario.steps[-1][0] if scenario.steps else None
    delivered = Step.delivered in steps_seen
    if scenario.eta is not None and not delivered:
        dates["ESTIMATED_DELIVERY"] = _day(now + scenario.eta, destination.offset_h)
    date_order = ("ACTUAL_DELIVERY", "ATTEMPTED_DELIVERY", "ESTIMATED_DELIVERY", "ACTUAL_PICKUP",
                  "SHIP", "ACTUAL_TENDER")  # fmt: skip
    result: dict[str, Any] = {
        "trackingNumberInfo": {
            "trackingNumber": number,
            "trackingNumberUniqueId": f"12029~{number}~{'FDEG' if ground else 'FX'}",
            "carrierCode": "FDXG" if ground else "FDXE",
        },
        "additionalTrackingInfo": {"nickname": "", "packageIdentifiers": [], "hasAssociatedShipments": False},
        "shipperInformation": {"address": _address(origin)},
        "recipientInformation": {"address": _address(destination)},
        "latestStatusDetail": _latest(events, newest_step),
        "dateAndTimes": [{"type": t, "dateTime": dates[t]} for t in date_order if t in dates],
        "availableImages": [{"type": "SIGNATURE_PROOF_OF_DELIVERY"}] if delivered else [],
        "shipmentDetails": {"possessionStatus": Step.pickup in steps_seen},
        "scanEvents": events,
        "availableNotifications": ["ON_DELIVERY", "ON_EXCEPTION", "ON_ESTIMATED_DELIVERY"],
        "deliveryDetails": _delivery_details(attempts, delivered),
        "originLocation": {"locationContactAndAddress": {"address": _address(origin)}},
        "lastUpdatedDestinationAddress": _address(destination),
        "serviceDetail": (
            {"type": "FEDEX_GROUND", "description": "FedEx Ground", "shortDescription": "FG"}
            if ground
            else {"type": "FEDEX_2_DAY", "description": "FedEx 2Day", "shortDescription": "E2"}
        ),
        "estimatedDeliveryTimeWindow": {"window": {}},
        "goodsClassificationCode": "",
        "returnDetail": {},
    }
    if steps_seen <= {Step.label}:
        result["serviceCommitMessage"] = {
            "message": "The delivery date may be updated when FedEx receives the package.",
            "type": "SHIPMENT_LABEL_CREATED",
        }
    if newest_step is Step.ready_for_pickup:
        result["holdAtLocation"] = {
            "locationContactAndAddress": {"address": _address(destination)},
            "locationType": "FEDEX_ONSITE",
        }
    return {"trackingNumber": number, "trackResults": [result]}


def _latest(events: list[dict[str, Any]], newest_step: Step | None) -> dict[str, Any]:
    if not events or newest_step is None:
        return {}
    newest = events[0]
    derived, by_locale = _LATEST_DERIVED.get(
        newest_step, (newest["derivedStatusCode"], newest["derivedStatus"])
    )
    latest: dict[str, Any] = {
        "code": newest["eventType"],
        "derivedCode": derived,
        "statusByLocale": by_locale,
        "description": newest["eventDescription"],
        "scanLocation": newest["scanLocation"],
    }
    if newest_step is Step.label:
        latest["ancillaryDetails"] = [
            {
                "reason": "IN001",
                "reasonDescription": "Please check back later for shipment status "
                "or subscribe for e-mail notifications",
                "action": "",
                "actionDescription": "",
            }
        ]
    return latest


def _address(place: _Place) -> dict[str, Any]:
    return {
        "city": place.city,
        "stateOrProvinceCode": place.state,
        "countryCode": "US",
        "residential": False,
        "countryName": "United States",
    }


def _delivery_details(attempts: int, delivered: bool) -> dict[str, Any]:
    details: dict[str, Any] = {"deliveryAttempts": str(attempts)}
    if delivered:
        details.update(
            {"receivedByName": "J.DOE", "locationType": "RESIDENCE", "locationDescription": "Residence"}
        )
    return details
