"""
Ask carriers, through the cache: one lookup per (carrier, number), and the
fan-out over the candidate carriers of an ambiguous number.

What a lookup does (design.md section 4):

- **cache**: a fresh answer (soft TTL) is served as it is; one past its soft
  TTL but within its hard TTL is served too, and refreshed in the background
  (at most one refresh per number at a time); past the hard TTL, or nothing
  cached, the carrier is asked first.
- **single flight**: one fetch per (carrier, number): concurrent lookups in
  this process await the same task, and replicas take a Redis lock, so one
  replica asks and the others receive its answer through Redis
  (:mod:`tracksvc.economy.singleflight`).
- **batching**: carriers that take several numbers per call (FedEx) get
  concurrent fetches merged into one call (:mod:`tracksvc.economy.batching`).
- **gate**: every call passes the carrier's circuit breaker and shared
  budget first (:mod:`tracksvc.economy.gate`); a refused call is never sent. The
  budget knows whom the call is for (:mod:`tracksvc.economy.callers`): lookups of
  unregistered numbers get only their share. A call whose turn comes after
  the lookup's deadline is refused at once, never waited for.
- **Redis budget**: every Redis step counts against the request's Redis
  budget (:mod:`tracksvc.core.redis_budget`); past it the lookup goes on without
  Redis (in-process single flight and budgets, no cache).
- **stale on failure**: when the carrier cannot be asked (down, over budget,
  breaker open), the last known answer is served, marked stale, with the reason.

No aiohttp.web here: handlers call :class:`Tracker`; the carrier adapters
do the HTTP.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import orjson
import redis.asyncio as aioredis
import structlog
from pydantic import ValidationError

from carriers.base import CarrierAdapter
from tracksvc.core.errors import CarrierError, CarrierTimeout
from tracksvc.core.metrics import Metrics
from tracksvc.core.models import Carrier, CarrierMessage, Outcome, TrackingResult
from tracksvc.core.settings import Settings
from tracksvc.domain.references import Candidate
from tracksvc.economy.batching import Batcher
from tracksvc.economy.breaker import BreakerState, CircuitBreaker
from tracksvc.economy.cache import CachedAnswer, CacheState, TrackingCache, track_key
from tracksvc.economy.gate import CarrierGate
from tracksvc.economy.quota import Budget, QuotaLimits, QuotaShares
from tracksvc.economy.singleflight import FlightLock, InProcessFlights, LockOutcome, RedisFlights, WaitOutcome

log = structlog.get_logger("tracker")


class Freshness(StrEnum):
    """How current an answer is."""

    live = "live"  # asked the carrier for this request
    cached = "cached"  # from the cache: within its soft TTL, or its hard TTL while being refreshed
    stale = "stale"  # the last known answer: the carrier could not be asked (down, budget, breaker)


#: Outcomes that mean "the carrier answered: it does not know this number".
UNKNOWN_TO_CARRIER = frozenset({Outcome.not_found, Outcome.invalid_number})

#: Share of a lookup's deadline kept for the carrier call itself: a budget turn later
#: than the rest is not waited for (the call would have too little time to answer).
CALL_SHARE_OF_DEADLINE = 0.25

#: Extra time a batched ask waits past its deadline before giving up on its own,
#: so that the call's own deadline (which counts for the breaker) fires first.
BATCH_GRACE_S = 0.05


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

#: What one fetch ends with: the carrier's answer as stored, or why the carrier could not be asked.
FlightResult = CachedAnswer | CarrierMessage


def _as_of(fetched_at: float) -> datetime:
    return datetime.fromtimestamp(fetched_at, tz=UTC)


def failure_message(error: CarrierError, number: str) -> CarrierMessage:
    """Why the carrier could not be asked about ``number``, as data."""
    return CarrierMessage(
        carrier=error.carrier,
        tracking_number=number,
        outcome=error.outcome,
        code=str(error.status or ""),
        message=str(error),
    )


def _show_breaker(metrics: Metrics, carrier: str, state: BreakerState) -> None:
    metrics.set_breaker_state(carrier, state.value)


def encode_flight(result: FlightResult) -> bytes:
    """A fetch's outcome as published to the replicas waiting for it."""
    if isinstance(result, CachedAnswer):
        return orjson.dumps({"answer": result.model_dump(mode="json")})
    return orjson.dumps({"failure": result.model_dump(mode="json")})


def decode_flight(payload: bytes | None) -> FlightResult | None:
    """The outcome another replica published, or None when there is none or it is unreadable."""
    if not payload:
        return None
    try:
        body = orjson.loads(payload)
        if "answer" in body:
            return CachedAnswer.model_validate(body["answer"])
        return CarrierMessage.model_validate(body["failure"])
    except (orjson.JSONDecodeError, ValidationError, KeyError, TypeError):
        log.warning("flight_payload_unreadable")
        return None


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
        self.adapters = adapters
        self.cache = cache
        self.deadline_s = deadline_s
        self.listeners: list[AnswerListener] = []
        self.metrics = metrics or Metrics()
        self.flights = flights
        self.quota_max_wait_s = quota_max_wait_s
        self.gates: dict[Carrier, CarrierGate] = dict(gates) if gates is not None else {
            carrier: CarrierGate(
                adapter,
                budget=None,
                breaker=CircuitBreaker(failure_threshold=0, cooldown_s=0),
                metrics=self.metrics,
            )
            for carrier, adapter in adapters.items()
        }
        self.batchers: dict[Carrier, Batcher] = {
            carrier: Batcher(carrier, gate.track, max_batch=gate.max_batch, window_s=batch_window_s)
            for carrier, gate in self.gates.items()
            if gate.max_batch > 1 and batch_window_s > 0
        }
        self._flights: InProcessFlights[tuple[Carrier, str], FlightResult] = InProcessFlights()
        #: Fetches started for a batching carrier that have not asked their batcher yet.
        self._expected: set[tuple[Carrier, str]] = set()

    @classmethod
    def from_settings(
        cls,
        adapters: Mapping[Carrier, CarrierAdapter],
        cache: TrackingCache,
        redis: aioredis.Redis,
        settings: Settings,
        *,
        metrics: Metrics | None = None,
    ) -> Tracker:
        """A tracker with the budgets, breakers, single flight and batching the settings describe."""
        metrics = metrics or Metrics()
        gates = {}
        for carrier, adapter in adapters.items():
            metrics.set_breaker_state(carrier.value, BreakerState.closed.value)
            breaker = CircuitBreaker(
                failure_threshold=settings.breaker_failure_threshold,
                cooldown_s=settings.breaker_cooldown_s,
                on_change=functools.partial(_show_breaker, metrics, carrier.value),
            )
            gates[carrier] = CarrierGate(
                adapter,
                budget=Budget(
                    redis,
                    carrier,
                    QuotaLimits.from_settings(settings, carrier),
                    QuotaShares.from_settings(settings),
                ),
                breaker=breaker,
                metrics=metrics,
                rate_limited_block_s=settings.rate_limited_block_s,
            )
        return cls(
            adapters,
            cache,
            deadline_s=settings.carrier_timeout_s,
            flights=RedisFlights(redis, lock_ttl_s=settings.flight_lock_ttl_s),
            gates=gates,
            metrics=metrics,
            batch_window_s=settings.batch_window_s,
            quota_max_wait_s=settings.quota_max_wait_s,
        )

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

    # -- lookups -------------------------------------------------------------

    async def lookup(self, carrier: Carrier, number: str) -> Lookup:
        """
        What ``carrier`` says about ``number``.

        A fresh cache entry makes no carrier call; one within its hard TTL is
        served and refreshed in the background. Otherwise the carrier is
        asked within the deadline (one fetch per number across requests and
        replicas); if it cannot be asked, the last known answer is served as
        stale, or nothing with the reason.
        """
        return await self._lookup(carrier, number, revalidate_in_background=True)

    async def refresh(self, carrier: Carrier, number: str) -> Lookup:
        """
        Like :meth:`lookup`, but an answer past its soft TTL is refreshed before
        answering rather than in the background (for the background refresher).
        """
        return await self._lookup(carrier, number, revalidate_in_background=False)

    async def _lookup(self, carrier: Carrier, number: str, *, revalidate_in_background: bool) -> Lookup:
        cached = await self.cache.get(carrier, number)
        counted = self.metrics.cache_lookups
        if cached is None:
            counted.labels(carrier.value, "miss").inc()
        else:
            state = self.cache.ttl.state(cached)
            # The refresher confirms a pushed answer with the carrier before it believes it
            # (a pushed 'delivered' must not stop the polling): the carrier's answer wins.
            if state is CacheState.fresh and not (cached.pushed and not revalidate_in_background):
                counted.labels(carrier.value, "hit").inc()
                return self._from_cache(carrier, number, cached)
            if state is CacheState.revalidate and revalidate_in_background:
                counted.labels(carrier.value, "revalidate").inc()
                self._revalidate(carrier, number, cached)
                return self._from_cache(carrier, number, cached)
            counted.labels(carrier.value, "expired").inc()
        result = await self._fetch(carrier, number, cached)
        return self._answer(carrier, number, cached, result)

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

    @staticmethod
    def _from_cache(carrier: Carrier, number: str, cached: CachedAnswer) -> Lookup:
        return Lookup(
            carrier, number, cached.result, cached.message, _as_of(cached.fetched_at), Freshness.cached
        )

    def _answer(
        self, carrier: Carrier, number: str, cached: CachedAnswer | None, result: FlightResult
    ) -> Lookup:
        if isinstance(result, CachedAnswer):
            return Lookup(
                carrier, number, result.result, result.message, _as_of(result.fetched_at), Freshness.live
            )
        if cached is not None:
            self.metrics.stale_answers.labels(carrier.value, result.outcome.value).inc()
            return Lookup(
                carrier, number, cached.result, result, _as_of(cached.fetched_at), Freshness.stale
            )
        return Lookup(carrier, number, None, result, None, Freshness.live)

    # -- fetching ------------------------------------------------------------

    async def _fetch(self, carrier: Carrier, number: str, cached: CachedAnswer | None) -> FlightResult:
        """Join the fetch under way for this number in this process, or start it."""
        key = (carrier, number)
        flight = self._flights.get(key)
        if flight is None:
            flight = self._start(key, cached, background=False)
        else:
            self.metrics.coalesced_waits.labels(carrier.value, "local").inc()
        # shield: a caller that goes away (client disconnect) must not cancel everyone's fetch
        return await asyncio.shield(flight)

    def _revalidate(self, carrier: Carrier, number: str, cached: CachedAnswer) -> None:
        """Refresh in the background, unless a fetch for the number is already under way."""
        key = (carrier, number)
        if self._flights.get(key) is not None:
            return
        self.metrics.background_refreshes.labels(carrier.value).inc()
        self._start(key, cached, background=True)

    def _start(
        self, key: tuple[Carrier, str], cached: CachedAnswer | None, *, background: bool
    ) -> asyncio.Task[FlightResult]:
        carrier, number = key
        batcher = self.batchers.get(carrier)
        if batcher is not None:
            batcher.expect()  # it will ask the batcher shortly, after the replicas' lock
            self._expected.add(key)
        return self._flights.start(key, self._fly(carrier, number, cached, background=background))

    def _arrived(self, key: tuple[Carrier, str]) -> None:
        """The fetch for ``key`` asked its batcher, or ended without asking."""
        if key in self._expected:
            self._expected.discard(key)
            self.batchers[key[0]].expected()

    async def _fly(
        self, carrier: Carrier, number: str, cached: CachedAnswer | None, *, background: bool
    ) -> FlightResult:
        """
        The one fetch of this process: take the replicas' lock and ask the
        carrier, or wait for the replica that holds it.
        """
        try:
            return await self._coordinate(carrier, number, cached, background=background)
        except Exception as exc:  # a bug must cost this answer, not the request
            log.exception("carrier_fetch_crashed", carrier=carrier.value, tracking_number=number)
            return CarrierMessage(
                carrier=carrier,
                tracking_number=number,
                outcome=Outcome.unavailable,
                message=f"tracksvc could not ask the carrier ({type(exc).__name__})",
            )
        finally:
            self._arrived((carrier, number))

    async def _coordinate(
        self, carrier: Carrier, number: str, cached: CachedAnswer | None, *, background: bool
    ) -> FlightResult:
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadline = now + self.deadline_s
        last_turn = deadline - self.deadline_s * CALL_SHARE_OF_DEADLINE
        if background:
            wait_until = now  # a background refresh never waits for budget
        elif cached is not None:
            wait_until = min(last_turn, now + self.quota_max_wait_s)
        else:
            wait_until = last_turn
        seen = cached.fetched_at if cached is not None else None
        while True:
            if self.flights is None:
                outcome, lock, peeked = LockOutcome.unavailable, None, None
            else:
                outcome, lock, peeked = await self.flights.acquire(
                    carrier, number, peek=track_key(carrier, number)
                )
            # Our cache read may predate an answer another fetch stored just before we tried
            # the lock: then that answer is ours too, and the carrier is not asked again.
            stored = self.cache.decode(carrier, number, peeked)
            if stored is not None and (seen is None or stored.fetched_at > seen) and (
                self.cache.ttl.state(stored) is CacheState.fresh
            ):
                if lock is not None and self.flights is not None:
                    await self.flights.finish(lock, encode_flight(stored))
                return stored
            if outcome is not LockOutcome.held or self.flights is None:
                return await self._ask_and_store(carrier, number, cached, deadline, wait_until, lock)
            self.metrics.coalesced_waits.labels(carrier.value, "remote").inc()
            waited = await self.flights.wait(carrier, number, deadline)
            if waited.outcome is WaitOutcome.timeout:
                return failure_message(
                    CarrierTimeout(
                        f"another replica is asking the carrier; no answer within {self.deadline_s:g} s",
                        carrier=carrier,
                        tracking_number=number,
                    ),
                    number,
                )
            if waited.outcome is WaitOutcome.unavailable:
                return await self._ask_and_store(carrier, number, cached, deadline, wait_until, None)
            result = decode_flight(waited.payload)
            if result is not None:
                return result
            # The holder went away without a word (it died, its lock expired): has it stored an
            # answer? If not, take the lock and ask ourselves.
            stored = await self.cache.get(carrier, number)
            if stored is not None and (seen is None or stored.fetched_at > seen):
                return stored
            if loop.time() >= deadline:
                return failure_message(
                    CarrierTimeout("no answer within the deadline", carrier=carrier), number
                )

    async def _ask_and_store(
        self,
        carrier: Carrier,
        number: str,
        cached: CachedAnswer | None,
        deadline: float,
        wait_until: float,
        lock: FlightLock | None,
    ) -> FlightResult:
        fetched_at = time.time()
        result: FlightResult
        try:
            answer = await self._ask(carrier, number, deadline, wait_until)
        except CarrierError as exc:
            log.warning(
                "carrier_lookup_failed",
                carrier=carrier.value,
                tracking_number=number,
                outcome=exc.outcome.value,
                error=str(exc),
            )
            result = failure_message(exc, number)
        except BaseException:
            if lock is not None and self.flights is not None:
                await asyncio.shield(self.flights.finish(lock, b""))  # waiters move on at once
            raise
        else:
            result = CachedAnswer(
                result=answer if isinstance(answer, TrackingResult) else None,
                message=answer if isinstance(answer, CarrierMessage) else None,
                fetched_at=fetched_at,
            )
            await self.cache.set(carrier, number, result)
        if lock is not None and self.flights is not None:
            await self.flights.finish(lock, encode_flight(result))
        if isinstance(result, CachedAnswer):
            await self._notify(carrier, number, cached, result)
        return result

    async def _ask(
        self, carrier: Carrier, number: str, deadline: float, wait_until: float
    ) -> TrackingResult | CarrierMessage:
        batcher = self.batchers.get(carrier)
        if batcher is not None:
            self._arrived((carrier, number))
            try:
                async with asyncio.timeout_at(deadline + BATCH_GRACE_S):
                    return await batcher.ask(number, deadline=deadline, wait_until=wait_until)
            except TimeoutError as exc:
                raise CarrierTimeout(
                    f"no answer within {self.deadline_s:g} s", carrier=carrier, tracking_number=number
                ) from exc
        answers = await self.gates[carrier].track([number], deadline=deadline, wait_until=wait_until)
        answer = answers.get(number)
        if answer is None:
            return CarrierMessage(
                carrier=carrier,
                tracking_number=number,
                outcome=Outcome.not_found,
                message="the carrier's answer did not mention this number",
            )
        return answer

    # -- state and lifecycle ---------------------------------------------------

    def breaker_states(self) -> dict[str, str]:
        """Each carrier's circuit breaker state (``closed``, ``half_open``, ``open``)."""
        return {carrier.value: gate.state().value for carrier, gate in self.gates.items()}

    async def settle(self) -> None:
        """Wait until every fetch under way, background refreshes included, has ended."""
        await self._flights.settle()

    async def aclose(self) -> None:
        """Stop background refreshes and batches (app shutdown)."""
        await self._flights.aclose()
        for batcher in self.batchers.values():
            await batcher.aclose()

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
