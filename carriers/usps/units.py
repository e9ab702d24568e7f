"""
USPS code tables (carrier-apis.md section 3.5), as data.

Two key namespaces, one table each:

* :data:`STATUS_BY_EVENT_CODE`, keyed on ``trackingEvents[].eventCode``. This
  is what decides a status; the codes are stable, the words are not.
* :data:`STATUS_BY_CATEGORY`, keyed on the top-level ``statusCategory``
  (an open string; Pub 199 G-4/G-5 was not available). Used only when the
  newest event's code is not in the first table.

Lookups are exact (after :func:`category_key` folds case and spaces). Nothing
here matches on a substring of USPS's free text: karrio's USPS mapper does,
and reads "Pre-Shipment ... Awaiting Item" as in transit.
"""

from __future__ import annotations

from collections.abc import Mapping

from carriers.models import TrackingStatus

#: eventCode groups, one status each. Tags: [REAL] seen in a captured USPS
#: v3 payload; [3P] only in an older Web Tools code list (carrier-apis.md 3.5).
EVENT_CODE_GROUPS: Mapping[TrackingStatus, tuple[str, ...]] = {
    # Label / electronic info only; USPS does not hold the parcel yet.
    # GX "Shipping Label Created, USPS Awaiting Item" [REAL], MA "Pre-Shipment,
    # USPS Awaiting Item" [REAL]. 80/81/82 "Picked Up By / Arrived / Departed
    # Shipping Partner Facility, USPS Awaiting Item" [REAL]: a consolidator holds
    # it, so for USPS it is still not tendered.
    TrackingStatus.label_created: ("GX", "MA", "80", "81", "82"),
    # USPS has it and it moves. 03 "USPS in possession of item" (first real
    # acceptance) [REAL]; TM/PA "Shipment Acceptance" [3P]; 10/A1/T1/AD/TL/SF/07
    # facility arrival, departure, transit [REAL]; EF "Departed Sort Facility" and
    # PC "Sorting/Processing Complete" [3P]; 71 "Rescheduled to next delivery
    # day" [3P]: not an attempt, the parcel simply is not on today's route.
    TrackingStatus.in_transit: (
        "03", "TM", "PA", "10", "A1", "T1", "AD", "TL", "SF", "EF", "07", "PC", "71",
    ),
    # On today's vehicle [REAL].
    TrackingStatus.out_for_delivery: ("OF",),
    # A carrier tried and left a notice: 02 "Notice Left", 52-56 receptacle
    # blocked / full / no secure location / no authorized recipient, 30 "no
    # access" [3P].
    TrackingStatus.delivery_attempted: ("02", "52", "53", "54", "55", "56", "30"),
    # Waiting at a counter or locker: 14 "Available for Pickup" (v3r2 spec;
    # the older list says "Arrival at Pickup Point"), 16 "Available for Pickup" [3P].
    TrackingStatus.available_for_pickup: ("14", "16"),
    # Delivered [REAL] or picked up by the addressee (17 by an agent, 43 picked
    # up) [3P]: either way the addressee has it.
    TrackingStatus.delivered: ("01", "17", "43"),
    # 05 "Undeliverable as Addressed" [3P]: an address problem someone can still
    # fix (package intercept, address correction), so an exception, not a return.
    TrackingStatus.exception: ("05",),
    # Going back. 04 "Refused" [3P]: a refusal is the addressee's final answer
    # and USPS sends refused mail back, so it is filed with the returns rather
    # than as an exception. 09 and 21-29, 31 "Return to Sender" with reasons [3P];
    # 44 "Customer recall" [3P]: the mailer asked for the item back.
    TrackingStatus.returned_to_sender: (
        "04", "09", "21", "22", "23", "24", "25", "26", "27", "28", "29", "31", "44",
    ),
}

#: Codes USPS uses that carry no status of their own: the newest event being
#: one of these defers to ``statusCategory`` without a ``carrier_status_unmapped``
#: log. DX "Delivery status not updated" [3P] says a scan is *missing*, not
#: where the parcel is; USPS's own category says more than we could guess.
DEFERRING_EVENT_CODES: frozenset[str] = frozenset({"DX"})

#: Events in which USPS did not handle the parcel (label data, a shipping
#: partner's scans, a missing-scan notice). Every other *mapped* code is a scan.
NON_PHYSICAL_EVENT_CODES: frozenset[str] = frozenset({"GX", "MA", "80", "81", "82", "DX"})

#: Codes whose time is when the label was created (80-82 are later partner scans).
LABEL_EVENT_CODES: frozenset[str] = frozenset({"GX", "MA"})

#: statusCategory groups, keyed by :func:`category_key`. Only a fallback.
CATEGORY_GROUPS: Mapping[TrackingStatus, tuple[str, ...]] = {
    # Third-party fixture only; label-only items [INF].
    TrackingStatus.label_created: ("Pre-Shipment",),
    # "Accepted" (USPS README) and "Moving Through Network" (omniship) are real;
    # "In Transit" [INF].
    TrackingStatus.in_transit: ("Accepted", "Moving Through Network", "In Transit"),
    # Not seen in any real sample [INF].
    TrackingStatus.out_for_delivery: ("Out for Delivery",),
    TrackingStatus.delivery_attempted: ("Delivery Attempt",),
    TrackingStatus.available_for_pickup: ("Available for Pickup",),
    # Real (karrio, omniship).
    TrackingStatus.delivered: ("Delivered",),
    # Third-party test code; USPS's umbrella for problems [3P].
    TrackingStatus.exception: ("Alert",),
}


def category_key(value: str) -> str:
    """Fold case and runs of whitespace so ``"Moving  through network"`` finds its row."""
    return " ".join(value.split()).casefold()


def _invert(
    groups: Mapping[TrackingStatus, tuple[str, ...]], *, fold: bool
) -> dict[str, TrackingStatus]:
    table: dict[str, TrackingStatus] = {}
    for status, codes in groups.items():
        for code in codes:
            key = category_key(code) if fold else code
            if key in table:
                raise ValueError(f"USPS code {code!r} listed under {table[key]} and {status}")
            table[key] = status
    return table


#: eventCode -> normalized status of that event.
STATUS_BY_EVENT_CODE: Mapping[str, TrackingStatus] = _invert(EVENT_CODE_GROUPS, fold=False)

#: category_key(statusCategory) -> normalized status (fallback only).
STATUS_BY_CATEGORY: Mapping[str, TrackingStatus] = _invert(CATEGORY_GROUPS, fold=True)


def is_physical(code: str) -> bool:
    """
    Whether an event with this code is USPS handling the parcel.

    Unmapped codes count as not physical: we cannot claim USPS ever held a
    parcel from a code we do not know.
    """
    return code in STATUS_BY_EVENT_CODE and code not in NON_PHYSICAL_EVENT_CODES


#: v3 (HTTP 400) and v3r2 (HTTP 404) error sub-codes meaning "USPS has no
#: tracking data for this number yet" (carrier-apis.md 3.6, official Error
#: Inventory): 150001 "12: A status update is not yet available", 150002 "7: may
#: be incorrect or the status update is not yet available", 150003 "16: ...
#: shipped from the Post Office", 150004 "4: Delivery status information is not
#: available", 150006 (v3r2) "not yet available", 150008 "Tracking is unavailable
#: for this product for <country>", 150009 "not yet available", 150010 "may
#: belong to another shipper". A too-early number and a wrong one look the same
#: here, so the service decides with the label's age.
NOT_FOUND_ERROR_CODES: frozenset[str] = frozenset(
    {"150001", "150002", "150003", "150004", "150006", "150008", "150009", "150010"}
)

#: Sub-codes saying this number will never have parcel tracking: 150011 "for a
#: package pickup transaction" (a pickup confirmation, not a parcel), 150012
#: "shipped with fraudulent postage" (the label itself is void). Any other 400
#: sub-code is read the same way: USPS rejected the number as asked.
INVALID_NUMBER_ERROR_CODES: frozenset[str] = frozenset({"150011", "150012"})
