"""
The service's view of the carrier contract: the models live in
:mod:`carriers.models` (the carrier library owns them); the service imports
them from here or from there alike.
"""

from __future__ import annotations

from carriers.models import (
    Carrier,
    CarrierMessage,
    Location,
    Outcome,
    TrackingEvent,
    TrackingResult,
    TrackingStatus,
)

__all__ = [
    "Carrier",
    "CarrierMessage",
    "Location",
    "Outcome",
    "TrackingEvent",
    "TrackingResult",
    "TrackingStatus",
]
