"""
Ask carriers, through the cache: one lookup per (carrier, number), and the
fan-out over the candidate carriers of an ambiguous number.

:class:`Tracker` is the front of the carrier economy; each step of a lookup
is one piece of its own:

1. **first read** (:mod:`tracksvc.economy.flights`): this replica's copy,
   else Redis; on a miss the replicas' lock is taken in the same round trip.
2. **cache policy** (:mod:`tracksvc.economy.policy`, pure): a fresh answer
   is served; one past its soft TTL but within its hard TTL is served and
   refreshed in the background; otherwise the carrier is asked first.
3. **single flight** (:mod:`tracksvc.economy.flights`): one fetch per
   (carrier, number): concurrent lookups in this process await the same
   task; replicas take a Redis lock, so one replica asks and the others
   receive its answer through Redis (:mod:`tracksvc.economy.singleflight`).
4. **the carrier call** (:mod:`tracksvc.economy.asking`): the carrier's
   circuit breaker and shared budget (:mod:`tracksvc.economy.gate`), FedEx's
   batching (:mod:`tracksvc.economy.batching`), within the lookup's deadline.
   The budget knows whom the call is for (:mod:`tracksvc.economy.callers`).
5. **landing** (:mod:`tracksvc.economy.flights`): the answer is stored, the
   lock released and the outcome published in one round trip; the listeners
   are told (webhooks, the answer cache).
6. **the answer** (:mod:`tracksvc.economy.policy`): live; when the carrier
   could not be asked (down, over budget, breaker open), the last known answer
   marked stale with the reason, or only the reason.

Every Redis step counts against the request's Redis budget
(:mod:`tracksvc.core.redis_budget`); past it the lookup goes on without Redis
(in-process single flight and budgets, no cache). No aiohttp.web here:
handlers call :class:`Tracker`; the carrier adapters do the HTTP.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

import structlog

from carriers.base import CarrierAdapter
from tracksvc.core.metrics import Metrics
from tracksvc.core.models import Carrier
from tracksvc.core.redis import RedisClient
from tracksvc.core.settings import Settings
from tracksvc.domain.references import Candidate
from tracksvc.economy import policy
from tracksvc.economy.asking import CarrierCalls, gates_from_settings, unlimited_gates
from tracksvc.economy.cache import CachedAnswer, TrackingCache
from tracksvc.economy.flights import Flights
from tracksvc.economy.gate import CarrierGate
from tracksvc.economy.policy import SERVED, Freshness, Lookup, Mode, Verdict
from tracksvc.economy.singleflight import RedisFlights

__all__ = ["AnswerListener", "Freshness", "Lookup", "Tracker"]

log = structlog.get_logger("tracker")

#: Called after every fresh carrier answer is stored: (carrier, number, previous, current).
AnswerListener = Callable[[Carrier, str, "CachedAnswer | None", CachedAnswer], Awaitable[None]]


class Tracker:
    """
    Looks numbers up: cache first, then the carrier (coalesced, batched,
    within budget), stale on failure.

    Args:
        adapters: one adapter per carrier.
        cache: the answer cache.
        deadline_s: how long a lookup waits for a carrier.
        flights: the cross-replica single flight (None: this process only).
        gates: breaker and budget per carrier (None: no limits, a breaker that never opens).
        metrics: where to count (None: a registry of its own).
        batch_window_s: how long fetches wait to be merged, for carriers that batch (0: off).
        quota_max_wait_s: longest wait for budget when a cached answer can be served instead.
    """

    def __init__(
        self,
        adapters: Mapping[Carrier, CarrierAdapter],
        cache: TrackingCache,
        *,
        deadline_s: float,
        flights: RedisFlights | None = None,
        gates: Mapping[Carrier, CarrierGate] | None = None,
        metrics: Metrics | None = None,
        batch_window_s: float = 0.0,
        quota_max_wait_s: float = 1.0,
    ) -> None:
        self.cache = cache
        self.metrics = metrics or Metrics()
        self.listeners: list[AnswerListener] = []
        self.calls = CarrierCalls(
            gates if gates is not None else unlimited_gates(adapters, self.metrics),
            deadline_s=deadline_s,
            batch_window_s=batch_window_s,
            quota_max_wait_s=quota_max_wait_s,
        )
        self.flights = Flights(cache, self.calls, redis=flights, metrics=self.metrics, on_answer=self._notify)

    @classmethod
    def from_settings(
        cls,
        adapters: Mapping[Carrier, CarrierAdapter],
        cache: TrackingCache,
        redis: RedisClient,
        settings: Settings,
        *,
        metrics: Metrics | None = None,
    ) -> Tracker:
        """A tracker with the budgets, breakers, single flight and batching the settings describe."""
        metrics = metrics or Metrics()
        return cls(
            adapters,
            cache,
            deadline_s=settings.carrier_timeout_s,
            flights=RedisFlights(redis, lock_ttl_s=settings.flight_lock_ttl_s),
            gates=gates_from_settings(adapters, redis, settings, metrics),
            metrics=metrics,
            batch_window_s=settings.batch_window_s,
            quota_max_wait_s=settings.quota_max_wait_s,
        )

    # -- listeners -----------------------------------------------------------------

    def add_listener(self, listener: AnswerListener) -> None:
        """Be told of every fresh carrier answer and every stored push answer."""
        self.listeners.append(listener)

    async def _notify(self, carrier: Carrier, number: str, previous: CachedAnswer | None,
                      current: CachedAnswer) -> None:
        for listener in self.listeners:
            try:
                await listener(carrier, number, previous, current)
            except Exception:  # a listener's failure must never fail the lookup
                log.exception("answer_listener_failed", carrier=carrier.value, tracking_number=number)

    # -- lookups -------------------------------------------------------------------

    async def lookup(self, carrier: Carrier, number: str) -> Lookup:
        """
        What ``carrier`` says about ``number``.

        A fresh cache entry makes no carrier call; one within its hard TTL is
        served and refreshed in the background. Otherwise the carrier is
        asked within the deadline (one fetch per number across requests and
        replicas); if it cannot be asked, the last known answer is served as
        stale, or nothing with the reason.
        """
        return await self._lookup(carrier, number, Mode.lookup)

    async def refresh(self, carrier: Carrier, number: str) -> Lookup:
        """
        Like :meth:`lookup`, but an answer past its soft TTL is refreshed before
        answering rather than in the background (for the background refresher),
        and a pushed answer is confirmed with the carrier.
        """
        return await self._lookup(carrier, number, Mode.refresh)

    async def _lookup(self, carrier: Carrier, number: str, mode: Mode) -> Lookup:
        opened = await self.flights.open(carrier, number)
        cached = opened.cached
        verdict = policy.verdict(cached, self.cache.ttl, now=time.time(), mode=mode)
        self.metrics.cache_lookups.labels(carrier.value, verdict.value).inc()
        if cached is not None and verdict in SERVED:
            if verdict is Verdict.revalidate:
                self.flights.revalidate(carrier, number, cached)
            return policy.served(carrier, number, cached)
        outcome = await self.flights.fetch(carrier, number, opened)
        answer = policy.answered(carrier, number, cached, outcome)
        if answer.freshness is Freshness.stale and answer.message is not None:
            self.metrics.stale_answers.labels(carrier.value, answer.message.outcome.value).inc()
        return answer

    async def lookup_candidates(self, candidates: Sequence[Candidate]) -> Lookup:
        """
        Ask every candidate carrier concurrently; the carrier that knows the number wins.

        Preference: a carrier with data (in candidate order); else, if any
        carrier could not be asked, that failure (the number may be theirs);
        else the first carrier's not-found.
        """
        if len(candidates) == 1:  # the usual case: no task to start
            return await self.lookup(candidates[0].carrier, candidates[0].number)
        lookups = await asyncio.gather(*(self.lookup(c.carrier, c.number) for c in candidates))
        for found in lookups:
            if found.carrier_knows_it:
                return found
        for failed in lookups:
            if not failed.carrier_denies_it:
                return failed
        return lookups[0]

    async def store(
        self, carrier: Carrier, number: str, answer: CachedAnswer, *, previous: CachedAnswer | None = None
    ) -> bool:
        """
        Store an answer learned without asking the carrier (a push event) and tell the listeners.

        Returns:
            False when the cache (Redis) could not store it (listeners are not told then).
        """
        if not await self.cache.set(carrier, number, answer):
            return False
        await self._notify(carrier, number, previous, answer)
        return True

    # -- state and lifecycle -------------------------------------------------------

    def breaker_states(self) -> dict[str, str]:
        """Each carrier's circuit breaker state (``closed``, ``half_open``, ``open``)."""
        return self.calls.breaker_states()

    async def settle(self) -> None:
        """Wait until every fetch under way, background refreshes included, has ended."""
        await self.flights.settle()

    async def aclose(self) -> None:
        """Stop background refreshes and batches (app shutdown)."""
        await self.flights.aclose()
        await self.calls.aclose()
