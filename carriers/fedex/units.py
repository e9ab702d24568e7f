"""
FedEx code tables (data only, no logic beyond building the lookups).

Sources are carrier-apis.md section 2.5: the FedEx status-code table
(``Tracking-Status-Codes.html``, [SPEC]) and the derived codes seen in real
responses ([REAL]). Entries tagged ``[INF]`` are our reading of a code whose
meaning FedEx names but does not explain; they are listed so the lead can
review them in one place.

Each table keeps one key namespace:

* :data:`STATUS_BY_CODE` -- ``latestStatusDetail.code`` and
  ``scanEvents[].eventType`` (the fine, two-letter status codes).
* :data:`STATUS_BY_DERIVED_CODE` -- ``latestStatusDetail.derivedCode`` and
  ``scanEvents[].derivedStatusCode``: a coarse fallback only, because FedEx
  flattens detail there (an on-vehicle ``OD`` scan carries derived ``IT``).
* :data:`ATTEMPT_EXCEPTION_CODES` -- ``scanEvents[].exceptionCode`` values that
  turn a ``DE`` "Delivery exception" into a failed delivery attempt.
* :data:`OUTCOME_BY_ERROR_CODE` -- per-number ``trackResults[].error.code``
  and 400 ``errors[].code`` values that are carrier answers, not failures.

A code missing from every table stays ``unknown`` (and is logged as
``carrier_status_unmapped`` by the parser); nothing defaults to in transit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from carriers.models import Outcome, TrackingStatus

_S = TrackingStatus

#: Fine status codes grouped by meaning, one group per status.
STATUS_GROUPS: tuple[tuple[TrackingStatus, tuple[str, ...]], ...] = (
    (
        _S.label_created,
        (
            "OC",  # Order Created: "Shipment information sent to FedEx" (label printed)
            "OX",  # Shipment information sent to USPS (SmartPost label)
            "RP",  # Return label link emailed to the return sender [INF: a return label exists]
            "RG",  # Return label link expiring soon [INF: still only a label]
            # Freight/Custom Critical pickup dispatch: FedEx is on its way, no possession yet [INF]
            "DS",  # Vehicle dispatched
            "EP",  # Enroute to pickup
            "AP",  # At pickup
            "DR",  # Vehicle furnished but not used
        ),
    ),
    (
        _S.cancelled,
        (
            "CA",  # Shipment cancelled
            "LP",  # Return label link cancelled by the shipment originator [INF]
            "RD",  # Return label link expired [INF: the return will not happen on it]
        ),
    ),
    (
        _S.in_transit,
        (
            # Taken into FedEx's hands
            "PU",  # Picked up
            "PX",  # Picked up (see details)
            # Moving through the network
            "IT",  # In transit
            "IX",  # In transit (see details)
            "OW",  # On the way (listed as "Ow" in the table; codes are looked up upper-cased)
            "AR",  # Arrived at FedEx location
            "DP",  # Departed
            "LO",  # Left origin
            "OF",  # At FedEx origin facility
            "AF",  # At local FedEx facility
            "FD",  # At FedEx destination
            "SF",  # At sort facility
            "TR",  # Transfer
            "AA",  # At airport
            "EA",  # Enroute to airport; FedEx also lists EA as "Export approved": both in transit
            "EO",  # Enroute to origin airport
            "PF",  # Plane in flight
            "PL",  # Plane landed
            "AC",  # At Canada Post facility
            "AX",  # At USPS facility
            # Customs steps that are progress, not problems
            "CC",  # Cleared customs
            "CP",  # Clearance in progress
            # Notices about a moving parcel
            "AO",  # Shipment arriving on-time
            "AE",  # Shipment arriving early (seen in real data, not in the table)
            "PM",  # In progress
            "SP",  # Split status (pieces of a multi-piece shipment diverge)
            "CH",  # Location changed [INF: a delivery-location change request]
            "RR",  # CDO (custom delivery option) requested
            "RM",  # CDO modified
            "RC",  # CDO cancelled (the option, not the shipment)
        ),
    ),
    (
        _S.out_for_delivery,
        (
            "OD",  # Out for delivery ("On FedEx vehicle for delivery")
            "ED",  # Enroute to delivery [INF: the Freight/Custom Critical form of OD]
            "AD",  # At delivery [INF: at the door, outcome not yet scanned]
        ),
    ),
    (
        _S.available_for_pickup,
        (
            "HP",  # Ready for recipient pickup
            "HL",  # Hold at location (derived "Ready for pickup" in real data)
        ),
    ),
    (
        _S.delivered,
        ("DL",),  # Delivered
    ),
    (
        _S.exception,
        (
            # DE becomes delivery_attempted when its exceptionCode is in ATTEMPT_EXCEPTION_CODES.
            "DE",  # Delivery exception
            "SE",  # Shipment exception
            "CD",  # Clearance delay
            # Delays: FedEx reports them as their own derived status ("DY"), a carrier-reported
            # problem rather than plain progress [INF: tracksvc has no "delayed" status]
            "DY",  # Delay
            "DD",  # Delivery delay
            "PD",  # Pickup delay
        ),
    ),
    (
        _S.returned_to_sender,
        ("RS",),  # Return to shipper
    ),
)

#: Derived (coarse) codes grouped by meaning; the full list is not published [unverified].
DERIVED_STATUS_GROUPS: tuple[tuple[TrackingStatus, tuple[str, ...]], ...] = (
    (_S.label_created, ("IN",)),  # "Initiated" / "Label created"
    (
        _S.in_transit,
        (
            "PU",  # Picked up
            "IT",  # In transit (also carried by OD and HP scans)
            "RL",  # Running late: still moving, only behind its estimate
        ),
    ),
    (_S.available_for_pickup, ("HL",)),  # "Ready for pickup"
    (_S.delivered, ("DL",)),  # Delivered
    (
        _S.exception,
        (
            "DE",  # Delivery exception
            "DY",  # Delay
        ),
    ),
)

#: Event types that a failed-attempt exception code refines to ``delivery_attempted``.
ATTEMPT_EVENT_TYPES: frozenset[str] = frozenset({"DE"})

#: ``exceptionCode`` values on a ``DE`` scan that mean "we tried, nobody could take it".
#: FedEx publishes no exception-code list; only codes seen in samples are here.
ATTEMPT_EXCEPTION_CODES: Mapping[str, str] = MappingProxyType(
    {
        # [REAL] DE at DELIVERY_LOCATION in karrio's DuplicateTrackingResponse
        "08": "Customer not available or business closed",
        # [SPEC doc example] the same words as an ancillaryDetails reason in FedEx's sample
        "15": "Customer not available or business closed",
    }
)

#: Codes of events that are not a physical handling of the parcel (label data, notices,
#: pickup dispatch before possession). Everything else counts as a physical scan.
NON_PHYSICAL_CODES: frozenset[str] = frozenset(
    {
        "OC", "OX",  # label / shipment information only
        "CA",  # cancellation
        "RP", "RG", "LP", "RD",  # return label links
        "DS", "EP", "AP", "DR",  # pickup dispatch, no possession yet
        "AO", "AE",  # arrival estimates
        "RR", "RM", "RC", "CH",  # delivery option and location requests
        "DY", "DD", "PD",  # delay notices
    }
)  # fmt: skip

#: Derived codes that are never physical (used when an event carries no eventType).
NON_PHYSICAL_DERIVED_CODES: frozenset[str] = frozenset({"IN"})

#: Event types whose time is the label creation time.
LABEL_CODES: frozenset[str] = frozenset({"OC", "OX"})

#: Per-number and 400 error codes that are answers about the number.
OUTCOME_BY_ERROR_CODE: Mapping[str, Outcome] = MappingProxyType(
    {
        # [REAL] unknown number (HTTP 200, per number)
        "TRACKING.TRACKINGNUMBER.NOTFOUND": Outcome.not_found,
        # [SPEC] 400 "Please provide tracking number."
        "TRACKING.TRACKINGNUMBER.EMPTY": Outcome.invalid_number,
        # [INF] the natural sibling of EMPTY; not seen in any sample
        "TRACKING.TRACKINGNUMBER.INVALID": Outcome.invalid_number,
    }
)


def _table(groups: Iterable[tuple[TrackingStatus, tuple[str, ...]]]) -> Mapping[str, TrackingStatus]:
    table: dict[str, TrackingStatus] = {}
    for status, codes in groups:
        for code in codes:
            if code in table:
                raise ValueError(f"FedEx code {code!r} listed under {table[code]} and {status}")
            table[code] = status
    return MappingProxyType(table)


#: ``latestStatusDetail.code`` / ``scanEvents[].eventType`` -> normalized status.
STATUS_BY_CODE: Mapping[str, TrackingStatus] = _table(STATUS_GROUPS)

#: ``derivedCode`` / ``derivedStatusCode`` -> normalized status (coarse fallback).
STATUS_BY_DERIVED_CODE: Mapping[str, TrackingStatus] = _table(DERIVED_STATUS_GROUPS)
