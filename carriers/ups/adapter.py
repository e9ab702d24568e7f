"""The UPS carrier adapter: one Track API call per number, run concurrently."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import aiohttp
import structlog

from carriers.base import RetryPolicy, TrackAnswer, decode_for, one_answer, track_each
from carriers.models import Carrier, CarrierMessage, TrackingResult
from carriers.settings import CarrierSettings
from carriers.ups.tracking import parse_response
from carriers.ups.transport import UpsTransport

log = structlog.get_logger(__name__)


class Adapter:
    """
    UPS Track API v1 behind the :class:`carriers.base.CarrierAdapter` protocol.

    Args:
        session: the app's shared HTTP session.
        settings: the UPS carrier settings.
        retry: how the transport retries (tests pass a zero wait).
    """

    carrier: Carrier = Carrier.ups
    #: UPS takes one inquiry number per call.
    max_batch: int = 1

    def __init__(
        self,
        session: aiohttp.ClientSession,
        settings: CarrierSettings,
        *,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.transport = UpsTransport(session, settings, retry=retry)

    async def track(self, numbers: Sequence[str]) -> TrackAnswer:
        """
        Track each number with its own call, all at once.

        Args:
            numbers: UPS tracking numbers (duplicates are asked once).

        Returns:
            Per number, its result or a :class:`CarrierMessage` (not found,
            invalid number; with several numbers, also the failure of that
            one number's call).

        Raises:
            CarrierError: every call failed (for a single number: its call failed).
        """
        return await track_each(numbers, self._track_one)

    async def _track_one(self, number: str) -> TrackingResult | CarrierMessage:
        with structlog.contextvars.bound_contextvars(
            carrier=self.carrier.value, tracking_number=number
        ):
            raw = await self.transport.track(number, uuid.uuid4().hex)
            payload = decode_for(raw, self.carrier, number)
            results, messages = parse_response(raw.status, payload, number)
            answer = one_answer(self.carrier, number, raw.status, results, messages)
            log.debug("carrier_tracking_parsed", answer=type(answer).__name__)
            return answer
