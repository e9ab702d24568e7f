"""The UPS carrier adapter: one Track API call per number, run concurrently."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import aiohttp
import structlog

from carriers.base import RetryPolicy, TrackAnswer, unavailable_message
from carriers.ups.tracking import parse_response
from carriers.ups.transport import UpsTransport
from tracksvc.errors import CarrierError, CarrierResponseError
from tracksvc.models import Carrier, CarrierMessage, TrackingResult
from tracksvc.settings import CarrierSettings

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
        unique = list(dict.fromkeys(numbers))
        outcomes = await asyncio.gather(
            *(self._track_one(number) for number in unique), return_exceptions=True
        )
        answer: TrackAnswer = {}
        failures: list[CarrierError] = []
        for number, outcome in zip(unique, outcomes, strict=True):
            if isinstance(outcome, CarrierError):
                failures.append(outcome)
                answer[number] = unavailable_message(outcome, number)
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                answer[number] = outcome
        if failures and len(failures) == len(unique):
            # Nothing came back: the carrier, not one number, is the problem.
            raise failures[0]
        return answer

    async def _track_one(self, number: str) -> TrackingResult | CarrierMessage:
        with structlog.contextvars.bound_contextvars(
            carrier=self.carrier.value, tracking_number=number
        ):
            raw = await self.transport.track(number, uuid.uuid4().hex)
            try:
                payload = raw.json(self.carrier)
            except CarrierResponseError as exc:
                exc.tracking_number = number
                raise
            results, messages = parse_response(raw.status, payload, number)
            if results:
                result = next((r for r in results if r.tracking_number == number), results[0])
                log.debug("carrier_tracking_parsed", status=result.status.value)
                return result
            if messages:
                message = next((m for m in messages if m.tracking_number == number), messages[0])
                log.debug("carrier_tracking_message", outcome=message.outcome.value)
                return message
            raise CarrierResponseError(
                "UPS answer held neither a package nor a message",
                carrier=self.carrier,
                tracking_number=number,
                status=raw.status,
            )
