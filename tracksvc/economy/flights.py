"""
One fetch per (carrier, number) at a time, across the requests of this
process and across replicas; the fetch's answer stored and told.

A lookup's path through here::

    open    the number's first read: this replica's copy, else Redis; when
            Redis holds nothing, the replicas' lock is taken in the same
            round trip and the fetch starts at once
    fetch   join the fetch under way in this process, or start one
    fly     the one fetch of this process: take the replicas' lock (or have
            it from open) and ask the carrier (:mod:`tracksvc.economy.asking`),
            or wait for the replica that holds it (its outcome comes over
            pub/sub); when the holder dies, take over
    land    store the answer, release the lock and publish the outcome, in
            one round trip; tell the listeners

Concurrent lookups of one number in this process share one first read and
one fetch (tasks everyone awaits, shielded: a caller that goes away never
cancels the others'). The Redis side (keys, scripts, waiting) is
:mod:`tracksvc.economy.singleflight`. Redis failures never fail a lookup:
without Redis each replica is its own single flight and nothing is cached.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
import structlog
from pydantic import ValidationError

from tracksvc.core.metrics import Metrics
from tracksvc.core.models import Carrier, CarrierMessage, Outcome
from tracksvc.economy import policy
from tracksvc.economy.asking import CallWindow, CarrierCalls, timed_out
from tracksvc.economy.cache import CachedAnswer, TrackingCache, track_key
from tracksvc.economy.policy import FlightResult
from tracksvc.economy.singleflight import (
    Entry,
    FlightLock,
    InProcessFlights,
    LockOutcome,
    RedisFlights,
    WaitOutcome,
)

log = structlog.get_logger("tracker")

#: Told of every fresh carrier answer a fetch stored: (carrier, number, previous, current).
OnAnswer = Callable[[Carrier, str, "CachedAnswer | None", CachedAnswer], Awaitable[None]]

Key = tuple[Carrier, str]


def encode_flight(result: FlightResult, entry: bytes | None = None) -> bytes:
    """
    A fetch's outcome as published to the replicas waiting for it.

    Args:
        entry: the answer as already encoded for the cache (spares encoding it twice).
    """
    if isinstance(result, CachedAnswer):
        return b'{"answer":' + (entry or TrackingCache.encode(result)) + b"}"
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


@dataclass
class Opened:
    """What a lookup's first read found, shared by the lookups of the number that read at once."""

    #: What the cache holds (None: nothing, or Redis could not be read).
    cached: CachedAnswer | None
    #: The fetch the read started, having found nothing cached and taken the replicas' lock.
    flight: asyncio.Task[FlightResult] | None = None
    #: What trying the lock found when nothing was cached and it was not ours: ``held`` (a
    #: fetch then waits for that replica at once) or ``unavailable`` (it asks without a lock).
    lock: LockOutcome | None = None
    #: A lookup has taken up that fetch as its own (the others count as joining it).
    claimed: bool = False


class Flights:
    """
    One fetch per number, in this process and across replicas.

    Args:
        cache: the answer cache.
        calls: asks the carriers.
        redis: the cross-replica half (None: this process only).
        metrics: where coalesced waits are counted.
        on_answer: told of every fresh answer a fetch stored.
    """

    def __init__(
        self,
        cache: TrackingCache,
        calls: CarrierCalls,
        *,
        redis: RedisFlights | None,
        metrics: Metrics,
        on_answer: OnAnswer,
    ) -> None:
        self.cache = cache
        self.calls = calls
        self.redis = redis
        self.metrics = metrics
        self.on_answer = on_answer
        self._reads: InProcessFlights[Key, Opened] = InProcessFlights()
        self._fetches: InProcessFlights[Key, FlightResult] = InProcessFlights()

    # -- what a lookup calls ------------------------------------------------------

    async def open(self, carrier: Carrier, number: str) -> Opened:
        """
        The number's first read: this replica's copy, else Redis, where a miss takes the
        replicas' lock in the same round trip and starts the fetch.
        """
        kept = self.cache.local.get(carrier, number)
        if kept is not None:
            return Opened(kept)
        key = (carrier, number)
        if self.redis is None or self._fetches.get(key) is not None:
            # Nothing to lock (no Redis, or a fetch is already under way here): only read.
            return Opened(await self.cache.get(carrier, number))
        read = self._reads.get(key)
        if read is None:
            read = self._reads.start(key, self._open(self.redis, carrier, number))
        return await asyncio.shield(read)

    async def fetch(self, carrier: Carrier, number: str, opened: Opened) -> FlightResult:
        """Join the fetch under way for this number in this process, or start it; its outcome."""
        if opened.flight is not None:
            flight = opened.flight
            if opened.claimed:
                self.metrics.coalesced_waits.labels(carrier.value, "local").inc()
            opened.claimed = True
        else:
            key = (carrier, number)
            running = self._fetches.get(key)
            if running is None:
                flight = self._start(key, opened.cached, background=False, found=opened.lock)
            else:
                flight = running
                self.metrics.coalesced_waits.labels(carrier.value, "local").inc()
        # shield: a caller that goes away (client disconnect) must not cancel everyone's fetch
        return await asyncio.shield(flight)

    def revalidate(self, carrier: Carrier, number: str, cached: CachedAnswer) -> None:
        """Refresh in the background, unless a fetch for the number is already under way."""
        key = (carrier, number)
        if self._fetches.get(key) is not None:
            return
        self.metrics.background_refreshes.labels(carrier.value).inc()
        self._start(key, cached, background=True)

    # -- the first read -------------------------------------------------------------

    async def _open(self, redis: RedisFlights, carrier: Carrier, number: str) -> Opened:
        first = await redis.open(carrier, number, track_key(carrier, number))
        if first.lock is None:
            # Cached (or unreadable), held by another replica, or Redis down: the lookup decides.
            return Opened(self.cache.seen(carrier, number, first.entry), lock=first.outcome)
        return Opened(None, self._start((carrier, number), None, background=False, lock=first.lock))

    # -- the fetch --------------------------------------------------------------------

    def _start(
        self, key: Key, cached: CachedAnswer | None, *, background: bool, lock: FlightLock | None = None,
        found: LockOutcome | None = None,
    ) -> asyncio.Task[FlightResult]:
        carrier, number = key
        self.calls.expect(carrier, number)
        fly = self._fly(carrier, number, cached, background=background, lock=lock, found=found)
        return self._fetches.start(key, fly)

    async def _fly(
        self, carrier: Carrier, number: str, cached: CachedAnswer | None, *, background: bool,
        lock: FlightLock | None, found: LockOutcome | None,
    ) -> FlightResult:
        try:
            return await self._coordinate(
                carrier, number, cached, background=background, lock=lock, found=found
            )
        except Exception as exc:  # a bug must cost this answer, not the request
            log.exception("carrier_fetch_crashed", carrier=carrier.value, tracking_number=number)
            return CarrierMessage(
                carrier=carrier,
                tracking_number=number,
                outcome=Outcome.unavailable,
                message=f"tracksvc could not ask the carrier ({type(exc).__name__})",
            )
        finally:
            self.calls.arrived(carrier, number)

    async def _coordinate(
        self, carrier: Carrier, number: str, cached: CachedAnswer | None, *, background: bool,
        lock: FlightLock | None, found: LockOutcome | None,
    ) -> FlightResult:
        """
        Ask the carrier holding the replicas' lock, or wait for the replica that holds it.

        Args:
            lock: the lock, taken with the first read (nothing was cached then).
            found: what the first read found of the lock when it did not take it.
        """
        window = self.calls.window(has_cached=cached is not None, background=background)
        if lock is not None or found is LockOutcome.unavailable or self.redis is None:
            return await self._ask(carrier, number, cached, window, lock)
        loop = asyncio.get_running_loop()
        seen = cached.fetched_at if cached is not None else None
        while True:
            if found is LockOutcome.held:  # the first read found it held, and nothing cached
                outcome, found = LockOutcome.held, None
            else:
                outcome, lock, peeked = await self.redis.acquire(
                    carrier, number, peek=track_key(carrier, number)
                )
                # Our cache read may predate an answer another fetch stored just before we tried
                # the lock: then that answer is ours too, and the carrier is not asked again.
                stored = self.cache.decode(carrier, number, peeked)
                if stored is not None and policy.is_news(stored, seen, self.cache.ttl, now=time.time()):
                    if lock is not None:
                        await self.redis.finish(lock, encode_flight(stored))
                    return stored
            if outcome is not LockOutcome.held:
                return await self._ask(carrier, number, cached, window, lock)
            self.metrics.coalesced_waits.labels(carrier.value, "remote").inc()
            waited = await self.redis.wait(carrier, number, window.deadline)
            if waited.outcome is WaitOutcome.timeout:
                return timed_out(
                    carrier, number,
                    f"another replica is asking the carrier; no answer within {self.calls.deadline_s:g} s",
                )
            if waited.outcome is WaitOutcome.unavailable:
                return await self._ask(carrier, number, cached, window, None)
            result = decode_flight(waited.payload)
            if result is not None:
                return result
            # The holder went away without a word (it died, its lock expired): has it stored an
            # answer? If not, take the lock and ask ourselves.
            stored = await self.cache.get(carrier, number)
            if stored is not None and policy.is_newer(stored, seen):
                return stored
            if loop.time() >= window.deadline:
                return timed_out(carrier, number, "no answer within the deadline")

    async def _ask(
        self, carrier: Carrier, number: str, cached: CachedAnswer | None, window: CallWindow,
        lock: FlightLock | None,
    ) -> FlightResult:
        try:
            result = await self.calls.ask(carrier, number, window)
        except BaseException:
            if lock is not None and self.redis is not None:
                await asyncio.shield(self.redis.finish(lock, b""))  # waiters move on at once
            raise
        await self._land(carrier, number, result, lock)
        if isinstance(result, CachedAnswer):
            await self.on_answer(carrier, number, cached, result)
        return result

    async def _land(
        self, carrier: Carrier, number: str, result: FlightResult, lock: FlightLock | None
    ) -> None:
        """Store an answer, release the lock and publish the outcome (one round trip with a lock)."""
        if not isinstance(result, CachedAnswer):
            if lock is not None and self.redis is not None:
                await self.redis.finish(lock, encode_flight(result))
            return
        entry = self.cache.encode(result)
        if lock is None or self.redis is None:
            await self.cache.set(carrier, number, result, encoded=entry)
            return
        store = Entry(track_key(carrier, number), entry, self.cache.ttl.expire_s(result))
        stored = await self.redis.finish(lock, encode_flight(result, entry), store=store)
        self.cache.remember(carrier, number, result, stored=stored)

    # -- lifecycle ------------------------------------------------------------------

    async def settle(self) -> None:
        """Wait until every read and fetch under way, background refreshes included, has ended."""
        while len(self._reads) or len(self._fetches):
            await self._reads.settle()
            await self._fetches.settle()

    async def aclose(self) -> None:
        """Cancel every read and fetch under way (app shutdown)."""
        await self._reads.aclose()
        await self._fetches.aclose()
