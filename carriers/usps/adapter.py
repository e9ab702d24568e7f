"""The USPS adapter: v3 lookups, one number per call, run concurrently."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import aiohttp

from carriers.base import RetryPolicy, TrackAnswer, unavailable_message
from carriers.usps.tracking import parse_response
from carriers.usps.transport import UspsTransport
from tracksvc.errors import CarrierError, CarrierResponseError
from tracksvc.models import Carrier, CarrierMessage, TrackingResult
from tracksvc.settings import CarrierSettings


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
        unique = list(dict.fromkeys(numbers))
        if not unique:
            return {}
        outcomes = await asyncio.gather(
            *(self._track_one(number) for number in unique), return_exceptions=True
        )
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        for failure in failures:
            if not isinstance(failure, CarrierError):
                raise failure
        if len(failures) == len(outcomes):
            raise failures[0]
        answer: TrackAnswer = {}
        for number, outcome in zip(unique, outcomes, strict=True):
            if isinstance(outcome, CarrierError):
                answer[number] = unavailable_message(outcome, number)
            elif not isinstance(outcome, BaseException):
                answer[number] = outcome
        return answer

    async def _track_one(self, number: str) -> TrackingResult | CarrierMessage:
        response = await self.transport.get_tracking(number)
        try:
            payload = response.json(self.carrier)
        except CarrierResponseError as exc:
            exc.tracking_number = number
            raise
        results, messages = parse_response(response.status, payload, number)
        if results:
            return results[0]
        if messages:
            return messages[0]
        raise CarrierResponseError(  # pragma: no cover - parse_response always answers
            "USPS answer held neither a result nor a message",
            carrier=self.carrier,
            tracking_number=number,
            status=response.status,
        )
