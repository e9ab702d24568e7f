"""The USPS adapter: the shared tracking flow over USPS Tracking v3."""

from __future__ import annotations

from typing import ClassVar

from carriers.base import TokenEndpoint, TrackingAdapter
from carriers.models import Carrier
from carriers.usps import tracking


class Adapter(TrackingAdapter):
    """
    USPS Tracking v3 behind the :class:`carriers.base.CarrierAdapter` protocol.

    v3 takes one number per GET (v3r2's 35-number POST is not used), so
    several numbers are looked up with concurrent calls over one shared token.
    """

    carrier: Carrier = tracking.CARRIER
    max_batch: int = tracking.MAX_NUMBERS
    token_endpoint: ClassVar[TokenEndpoint] = tracking.TOKEN
    build_request = staticmethod(tracking.build_request)
    parse_response = staticmethod(tracking.parse_response)
