"""The FedEx adapter: the shared tracking flow over FedEx's Track API v1."""

from __future__ import annotations

from typing import ClassVar

from carriers.base import TokenEndpoint, TrackingAdapter
from carriers.fedex import tracking
from carriers.models import Carrier


class Adapter(TrackingAdapter):
    """
    FedEx Track API v1 behind the :class:`carriers.base.CarrierAdapter` protocol.

    Up to 30 numbers go in one call; longer lists are split into calls sent
    concurrently over one shared token.
    """

    carrier: Carrier = tracking.CARRIER
    max_batch: int = tracking.MAX_NUMBERS
    token_endpoint: ClassVar[TokenEndpoint] = tracking.TOKEN
    build_request = staticmethod(tracking.build_request)
    parse_response = staticmethod(tracking.parse_response)
