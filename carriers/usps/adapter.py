"""The USPS adapter: v3 lookups, one number per call, run concurrently."""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp

from carriers.base import RetryPolicy, TrackAnswer, decode_for, one_answer, track_each
from carriers.models import Carrier, CarrierMessage, TrackingResult
from carriers.settings import CarrierSettings
from carriers.usps.tracking import parse_response
from carriers.usps.transport import UspsTransport


class Adapter:
    """
    USPS Tracking v3 behind the :class:`carriers.base.CarrierAdapter` protocol.

    v3 takes one number per GET (v3r2's 35-number POST is not used), so
    :attr:`max_batch` is 1; several numbers are looked up concurrently over
    one shared token.
    """

    carrier: Carrier = Carrier.usps
    max_batch: int = 1

    def __init__(
        self,
        session: aiohttp.ClientSession,
        settings: CarrierSettings,
        *,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.transport = UspsTransport(session, settings, retry=retry)

    async def track(self, numbers: Sequence[str]) -> TrackAnswer:
        """
        Look up ``numbers`` at USPS.

        Returns:
            Per number: a :class:`TrackingResult`, or a :class:`CarrierMessage`
            (not found, invalid number; or, when only some lookups of a
            multi-number call failed, why that one failed).

        Raises:
            CarrierError: every lookup failed (for one number: that lookup).
        """
        return await track_each(numbers, self._track_one)

    async def _track_one(self, number: str) -> TrackingResult | CarrierMessage:
        response = await self.transport.get_tracking(number)
        payload = decode_for(response, self.carrier, number)
        results, messages = parse_response(response.status, payload, number)
        return one_answer(self.carrier, number, response.status, results, messages)
