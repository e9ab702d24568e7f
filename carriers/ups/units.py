"""
UPS code tables: which UPS code means which :class:`~carriers.models.TrackingStatus`.

Three key namespaces, one table each (carrier-apis.md section 1.5):

* the 3-digit *status/description code* (``activity[].status.statusCode``,
  ``currentStatus.code``, Track Alert ``activityStatus.descriptionCode``): the
  most specific signal, because an attempt, an Access Point pickup, a return
  and a void all arrive with activity type ``X``, ``I`` or ``MV`` and only this
  code tells them apart;
* the ``(type, code)`` pair, for activities that carry no 3-digit code (the
  same 2-letter code means different things under different types: ``M/DP``
  is "manifest processed", ``I/DP`` a departure scan);
* the activity type letter alone, used only for the types that are
  unambiguous on their own.

Tables are written as groups per status and inverted once; a code that is in
no table stays :attr:`TrackingStatus.unknown` and is logged by the parser.
Codes are never matched by description text.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Final, TypeVar

from carriers.models import Outcome, TrackingStatus

S = TrackingStatus
K = TypeVar("K", bound=Hashable)


def _invert(groups: Mapping[TrackingStatus, tuple[K, ...]]) -> dict[K, TrackingStatus]:
    """Turn ``{status: (code, ...)}`` into ``{code: status}`` (duplicates are a test failure)."""
    return {code: status for status, codes in groups.items() for code in codes}


#: 3-digit status/description codes by status (UPS appendix "Status/Description Codes").
STATUS_CODE_GROUPS: Final[Mapping[TrackingStatus, tuple[str, ...]]] = {
    S.label_created: (
        "003",  # Shipment Ready for UPS: label printed, UPS has billing information only
        "157",  # Shipment Ready for UPS
        "080",  # Order Processed: Ready for UPS
        "166",  # Shipment Ready for Roadie
        # UPS came or will come to collect but does not have the parcel yet.
        "065",  # Pickup Attempted
        "077",  # Scheduled for Pickup Today
        "131",  # Final Pickup Attempted
        "135",  # Second Pickup Attempted
    ),
    S.cancelled: (
        "007",  # Shipment Information Voided
    ),
    S.in_transit: (
        # Tendered: UPS or a UPS drop-off point has the parcel (drop-offs are
        # treated as tendered-but-unscanned, carrier-apis.md 1.5 [INF]).
        "038",  # Picked Up by UPS
        "160",  # We Have Your Package
        "044",  # On the Way to UPS
        "045",  # On the Way to UPS
        "079",  # Order Processed: In Transit to UPS
        "167",  # Dropped off at UPS Store by Customer
        "168",  # Dropped off at Retail Location by Customer
        "169",  # Dropped off at a UPS Access Point by Customer
        # Moving through the network.
        "005",  # On the Way
        "010",  # On the Way
        "025",  # On the Way
        "039",  # On the Way
        "047",  # On the Way
        "087",  # On the Way
        "158",  # On the Way
        "159",  # On the Way
        "164",  # On the Way
        "165",  # On the Way
        "016",  # In Warehouse
        "057",  # On the Way to a Local UPS Access Point
        "071",  # Preparing for Delivery
        "075",  # Scheduled for Delivery
        "138",  # Awaiting Scheduled Departure
        # Handed on to a UPS delivery partner, still moving.
        "073",  # In Transit to UPS Delivery Partner
        "074",  # UPS Delivery Partner has Shipment
        "137",  # Transferred to UPS Delivery Partner
        # Routine customs clearance: every international parcel passes it.
        # Clearance that needs someone to act is an exception (058, 124, 125).
        "012",  # Clearance in Progress
        "014",  # Clearance Completed
        "084",  # Cleared
        "092",  # Customs Clearance in Progress
        "123",  # Pending Release From Non-UPS Broker
        "126",  # Pending Government Agency Release
        "134",  # Cleared Import Customs
        # The receiver changed the delivery; the parcel stays in the network.
        "028",  # Delivery Address Changed
        "055",  # Rescheduled Delivery
        "063",  # Delivery Change Completed
        "136",  # Delivery Rescheduled for Saturday
    ),
    S.out_for_delivery: (
        "006",  # Out for Delivery
        "021",  # Out for Delivery
        "037",  # Out for Delivery
        "089",  # Out for Delivery
        "091",  # Out for Delivery
        "146",  # Out for Delivery
        "162",  # Out for Delivery
        "072",  # Loaded on Delivery Vehicle
        "078",  # Your Driver is Arriving Soon!
    ),
    S.delivery_attempted: (
        "022",  # First Attempt Made
        "023",  # Second Delivery Attempted
        "024",  # Final Attempt Made
        "060",  # Delivery Attempted
        "061",  # Delivery Attempted: Adult Signature Required
        "062",  # Delivery Attempted: Funds Required
        "066",  # Post Office Delivery Attempted
        "145",  # Delivery Attempted
    ),
    S.available_for_pickup: (
        "017",  # Held for Customer Pickup
        "040",  # Ready for Customer Pickup
        "144",  # Delivered to Post Office for Pickup
        "161",  # Delivered to UPS Access Point (the receiver still has to collect it)
    ),
    S.delivered: (
        "011",  # Delivered
        "026",  # Delivered by Local Post Office
    ),
    S.exception: (
        "013",  # Exception
        "029",  # Exception: Action Required
        "030",  # Local Post Office Exception
        "076",  # UPS Delivery Partner Exception
        # Delays UPS reports as such.
        "032",  # Adverse Weather May Cause Delay
        "046",  # Delay
        "048",  # Delay
        "049",  # Delay: Action Required
        "051",  # Delay: Emergency Situation or Severe Weather
        "052",  # Delay: Severe Weather
        "053",  # Delay: Severe Weather
        "086",  # Delay
        "090",  # Delay
        "132",  # Airport Security Delay
        # Someone has to act: address, clearance papers, payment, access.
        "050",  # Address Information Required
        "058",  # Clearance Information Required
        "124",  # Clearance Information Needed
        "125",  # Clearance Information Needed
        "141",  # Incomplete Documentation Received
        "139",  # Security Access Required
        "083",  # Held
        "085",  # Held for COD Payment
        # Could not be delivered, damaged or gone.
        "064",  # Delivery Refused
        "069",  # Unable to Deliver
        "059",  # Damage Reported
        "068",  # Sent to Lost and Found
        "147",  # Seized by Law Enforcement, No Longer in UPS possession
        "149",  # Prohibited Contents, Package Destroyed No Longer in UPS possession
    ),
    S.returned_to_sender: (
        "034",  # Returned to Sender
        "035",  # Returning to Sender
        "036",  # Returning to Sender: In Transit
        "067",  # Returned to Sender by Post Office
        "081",  # Returned - Damage Reported
        "118",  # Return to Sender Confirmed
    ),
    # UPS itself says it knows nothing: no status, and not an unmapped code either.
    S.unknown: (
        "000",  # Status Not Available
        "148",  # Package Information Unavailable
        "163",  # Package Information Unavailable
    ),
}

#: ``(activity type, 2-letter code)`` pairs by status, for activities without a 3-digit code.
ACTIVITY_GROUPS: Final[Mapping[TrackingStatus, tuple[tuple[str, str], ...]]] = {
    S.label_created: (
        ("M", "MP"),  # Shipment ready for UPS, billing information received
        ("M", "DP"),  # Manifest processed
        ("M", "RD"),  # Shipper created a label, Roadie has not received the package yet
    ),
    S.cancelled: (
        ("MV", "VP"),  # Manifest cancelled and shipment voided
    ),
    S.in_transit: (
        ("P", "PU"),  # Pickup scan
        ("I", "OR"),  # Origin scan, "We have your package"
        ("I", "AR"),  # Arrival scan
        ("I", "DP"),  # Departure scan
        ("I", "DS"),  # Destination scan
        ("I", "YP"),  # Preparing for delivery
    ),
    S.out_for_delivery: (
        ("I", "OT"),  # Out for delivery
        ("I", "OF"),  # Out for delivery
        ("I", "OD"),  # Loaded on delivery vehicle
    ),
}

#: Activity type letters that mean one status on their own (package activity types).
#: ``I`` and ``X`` are missing on purpose: attempts, Access Point holds, returns and
#: customs steps all share them, so without a code they stay unknown.
TYPE_GROUPS: Final[Mapping[TrackingStatus, tuple[str, ...]]] = {
    S.label_created: ("M",),  # Billing information received (manifest)
    S.cancelled: ("MV",),  # Billing information voided
    S.in_transit: ("P",),  # Pickup
    S.delivered: ("D",),  # Delivered
}

STATUS_BY_CODE: Final[Mapping[str, TrackingStatus]] = _invert(STATUS_CODE_GROUPS)
STATUS_BY_ACTIVITY: Final[Mapping[tuple[str, str], TrackingStatus]] = _invert(ACTIVITY_GROUPS)
STATUS_BY_TYPE: Final[Mapping[str, TrackingStatus]] = _invert(TYPE_GROUPS)

#: Activity types that carry no status of their own (new delivery date or time, photo):
#: they never decide the shipment status and are never reported as unmapped.
STATUS_NEUTRAL_TYPES: Final[frozenset[str]] = frozenset({"U"})

#: Whether an activity of this type is a physical scan (the parcel was in UPS hands).
#: Unlisted types count as not physical; so does any activity flagged ``logicalScan``
#: and any label or void event, whatever its type.
PHYSICAL_BY_TYPE: Final[Mapping[str, bool]] = {
    "M": False,  # manifest: label printed, billing information only
    "MV": False,  # manifest void
    "U": False,  # update: new delivery date/time, delivery photo
    "NA": False,  # not available
    "P": True,  # pickup
    "I": True,  # in transit, including out for delivery
    "X": True,  # exception raised while handling the parcel
    "D": True,  # delivered
    "DO": True,  # delivered origin CFS (freight)
    "DD": True,  # delivered destination CFS (freight)
    "W": True,  # warehousing (freight)
}

#: UPS warning and error codes that are a per-number outcome rather than a failure.
OUTCOME_BY_ERROR_CODE: Final[Mapping[str, Outcome]] = {
    "TW0001": Outcome.not_found,  # Tracking Information Not Found (HTTP 200 warning, or 404)
    "TV1002": Outcome.invalid_number,  # Invalid inquiry number (HTTP 400)
}
