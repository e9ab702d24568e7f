"""The UPS adapter: the shared tracking flow over UPS's Track API v1."""

from __future__ import annotations

from typing import ClassVar

from carriers.base import TokenEndpoint, TrackingAdapter
from carriers.models import Carrier
from carriers.ups import tracking


class Adapter(TrackingAdapter):
    """
    UPS Track API v1 behind the :class:`carriers.base.CarrierAdapter` protocol.

    UPS takes one inquiry number per call; several numbers are asked with
    concurrent calls over one shared token.
    """

    carrier: Carrier = tracking.CARRIER
    max_batch: int = tracking.MAX_NUMBERS
    token_endpoint: ClassVar[TokenEndpoint] = tracking.TOKEN
    build_request = staticmethod(tracking.build_request)
    parse_response = staticmethod(tracking.parse_response)
