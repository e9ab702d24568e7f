"""The FedEx adapter: batches numbers, sends them through the transport, parses the answers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import aiohttp
import structlog

from carriers.base import RetryPolicy, TrackAnswer, unavailable_message
from carriers.errors import CarrierError
from carriers.fedex.tracking import MAX_NUMBERS, MISSING_CODE, parse_response
from carriers.fedex.transport import FedexTransport
from carriers.models import Carrier, CarrierMessage, Outcome
from carriers.settings import CarrierSettings

log = structlog.get_logger("carriers.fedex")


class Adapter:
    """
    FedEx Track API v1 behind the :class:`carriers.base.CarrierAdapter` protocol.

    Up to :attr:`max_batch` numbers go in one call; longer lists are split
    into batches sent concurrently. When every batch fails, the first
    :class:`~carriers.errors.CarrierError` is raised; when only some fail,
    their numbers are answered with the failure as a :class:`CarrierMessage`
    so the batches that worked are not thrown away.
    """

    carrier = Carrier.fedex
    max_batch = MAX_NUMBERS

    def __init__(
        self,
        session: aiohttp.ClientSession,
        settings: CarrierSettings,
        *,
        retry: RetryPolicy | None = None,
    ) -> None:
        """
        Args:
            session: the app's shared client session.
            settings: FedEx's sub-settings (base URL, credentials, timeouts).
            retry: the retry policy; tests pass a zero-wait one.
        """
        self.transport = FedexTransport(session, settings, retry=retry)

    async def track(self, numbers: Sequence[str]) -> TrackAnswer:
        """
        Ask FedEx about ``numbers``.

        Args:
            numbers: FedEx tracking numbers; duplicates are asked once.

        Returns:
            One entry per distinct number: a result or a message.

        Raises:
            CarrierError: every call failed as a whole (auth, timeout, 5xx, malformed body).
        """
        unique = list(dict.fromkeys(numbers))
        if not unique:
            return {}
        batches = [unique[i : i + self.max_batch] for i in range(0, len(unique), self.max_batch)]
        context = {"carrier": self.carrier.value}
        if len(unique) == 1:
            context["tracking_number"] = unique[0]
        with structlog.contextvars.bound_contextvars(**context):
            started = time.perf_counter()
            outcomes = await asyncio.gather(
                *(self._track_batch(batch) for batch in batches), return_exceptions=True
            )
            answer: TrackAnswer = {}
            failures: list[CarrierError] = []
            for batch, outcome in zip(batches, outcomes, strict=True):
                if isinstance(outcome, CarrierError):
                    failures.append(outcome)
                    answer.update({n: unavailable_message(outcome, n) for n in batch})
                elif isinstance(outcome, BaseException):
                    raise outcome
                else:
                    answer.update(outcome)
            if len(failures) == len(batches):
                raise failures[0]
            log.info(
                "carrier_track_completed",
                numbers=len(unique),
                calls=len(batches),
                failed_calls=len(failures),
                results=sum(1 for v in answer.values() if not isinstance(v, CarrierMessage)),
                elapsed_ms=round((time.perf_counter() - started) * 1000, 1),
            )
            return answer

    async def _track_batch(self, batch: list[str]) -> TrackAnswer:
        response = await self.transport.track(batch)
        results, messages = parse_response(response.status, response.json(self.carrier), batch)
        found: TrackAnswer = {}
        for message in messages:
            if message.tracking_number is not None:
                found[message.tracking_number] = message
        for result in results:
            found[result.tracking_number] = result
        # Only the numbers asked for: parse_response answers each of them (numbers FedEx
        # adds on its own are dropped here).
        return {
            number: found.get(number)
            or CarrierMessage(
                carrier=self.carrier,
                tracking_number=number,
                outcome=Outcome.malformed,
                code=MISSING_CODE,
                message="FedEx's answer did not mention this number",
            )
            for number in batch
        }
