"""
Ask carriers, through the cache: one lookup per (carrier, number), and the
fan-out over the candidate carriers of an ambiguous number.

No aiohttp.web here: handlers call :class:`Tracker`; the carrier adapters
do the HTTP.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import structlog

from carriers.base import CarrierAdapter
from tracksvc.cache import CachedAnswer, TrackingCache
from tracksvc.errors import CarrierError, CarrierTimeout
from tracksvc.models import Carrier, CarrierMessage, Outcome, TrackingResult
from tracksvc.references import Candidate

log = structlog.get_logger("tracker")


class Freshness(StrEnum):
    """How current an answer is."""

    live = "live"  # asked the carrier for this request
    cached = "cached"  # from the cache, within its TTL
    stale = "stale"  # past its TTL; the carrier could not be asked


#: Outcomes that mean "the carrier answered: it does not know this number".
UNKNOWN_TO_CARRIER = frozenset({Outcome.not_found, Outcome.invalid_number})


@dataclass(frozen=True)
class Lookup:
    """One (carrier, number) as tracksvc knows it right now."""

    carrier: Carrier
    number: str
    result: TrackingResult | None
    #: Why there is no (fresh) result: the carrier's not-found, or the failure met.
    message: CarrierMessage | None
    as_of: datetime | None
    freshness: Freshness

    @property
    def carrier_knows_it(self) -> bool:
        """The carrier has tracking data for the number."""
        return self.result is not None

    @property
    def carrier_denies_it(self) -> bool:
        """The carrier answered that it has no such number."""
        return (
            self.result is None
            and self.message is not None
            and self.message.outcome in UNKNOWN_TO_CARRIER
        )


#: Called after every fresh carrier answer is stored: (carrier, number, previous, current).
AnswerListener = Callable[[Carrier, str, "CachedAnswer | None", CachedAnswer], Awaitable[None]]


def _as_of(fetched_at: float) -> datetime:
    return datetime.fromtimestamp(fetched_at, tz=UTC)


class Tracker:
    """Looks numbers up: cache first, then the carrier, stale on failure."""

    def __init__(
        self,
        adapters: Mapping[Carrier, CarrierAdapter],
        cache: TrackingCache,
        *,
        deadline_s: float,
    ) -> None:
        self.adapters = adapters
        self.cache = cache
        self.deadline_s = deadline_s
        self.listeners: list[AnswerListener] = []

    def add_listener(self, listener: AnswerListener) -> None:
        """Be told of every fresh carrier answer (push notifications, the refresher, metrics)."""
        self.listeners.append(listener)

    async def _notify(self, carrier: Carrier, number: str, previous: CachedAnswer | None,
                      current: CachedAnswer) -> None:
        for listener in self.listeners:
            try:
                await listener(carrier, number, previous, current)
            except Exception:  # a listener's failure must never fail the lookup
                log.exception("answer_listener_failed", carrier=carrier.value, tracking_number=number)

    async def lookup(self, carrier: Carrier, number: str) -> Lookup:
        """
        What ``carrier`` says about ``number``.

        A fresh cache entry makes no carrier call. Otherwise the carrier is
        asked within the deadline; if it cannot be asked, the last known
        answer is served as stale, or nothing with the reason.
        """
        cached = await self.cache.get(carrier, number)
        if cached is not None and self.cache.ttl.is_fresh(cached):
            return Lookup(
                carrier, number, cached.result, cached.message, _as_of(cached.fetched_at),
                Freshness.cached,
            )
        fetched_at = time.time()
        try:
            answer = await self._ask(carrier, number)
        except CarrierError as exc:
            log.warning(
                "carrier_lookup_failed",
                carrier=carrier.value,
                tracking_number=number,
                outcome=exc.outcome.value,
                error=str(exc),
            )
            failure = CarrierMessage(
                carrier=carrier,
                tracking_number=number,
                outcome=exc.outcome,
                code=str(exc.status or ""),
                message=str(exc),
            )
            if cached is not None:
                return Lookup(
                    carrier, number, cached.result, failure, _as_of(cached.fetched_at),
                    Freshness.stale,
                )
            return Lookup(carrier, number, None, failure, None, Freshness.live)
        entry = CachedAnswer(
            result=answer if isinstance(answer, TrackingResult) else None,
            message=answer if isinstance(answer, CarrierMessage) else None,
            fetched_at=fetched_at,
        )
        await self.cache.set(carrier, number, entry)
        await self._notify(carrier, number, cached, entry)
        return Lookup(carrier, number, entry.result, entry.message, _as_of(fetched_at), Freshness.live)

    async def _ask(self, carrier: Carrier, number: str) -> TrackingResult | CarrierMessage:
        adapter = self.adapters[carrier]
        try:
            async with asyncio.timeout(self.deadline_s):
                answers = await adapter.track([number])
        except TimeoutError as exc:
            raise CarrierTimeout(
                f"no answer within {self.deadline_s:g} s", carrier=carrier, tracking_number=number
            ) from exc
        answer = answers.get(number)
        if answer is None:
            return CarrierMessage(
                carrier=carrier,
                tracking_number=number,
                outcome=Outcome.not_found,
                message="the carrier's answer did not mention this number",
            )
        return answer

    async def lookup_candidates(self, candidates: Sequence[Candidate]) -> Lookup:
        """
        Ask every candidate carrier concurrently; the carrier that knows the number wins.

        Preference: a carrier with data (in candidate order); else, if any
        carrier could not be asked, that failure (the number may be theirs);
        else the first carrier's not-found.
        """
        lookups = await asyncio.gather(*(self.lookup(c.carrier, c.number) for c in candidates))
        for found in lookups:
            if found.carrier_knows_it:
                return found
        for failed in lookups:
            if not failed.carrier_denies_it:
                return failed
        return lookups[0]
