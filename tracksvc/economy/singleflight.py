"""
Single flight: one carrier fetch per (carrier, number) at a time, across
concurrent requests (an in-process task everyone awaits) and across replicas
(a Redis lock with expiry).

Across replicas, per number (one hash tag, so one slot)::

    tracksvc:flight:{<carrier>:<number>}:lock     SET NX PX; the holder's token; renewed while it works
    tracksvc:flight:{<carrier>:<number>}:result   the last flight's outcome, kept a few seconds
    tracksvc:flight:{<carrier>:<number>}:done     pub/sub channel: the outcome, as it is known

The number's cache entry (``tracksvc:track:{<carrier>:<number>}``,
:mod:`tracksvc.economy.cache`) carries the same hash tag, so one script may
touch all of them and a cold lookup costs two round trips of its own besides
the budget's: :meth:`RedisFlights.open` reads the cache entry and, when there
is none, takes the lock in the same script; :meth:`RedisFlights.land` stores
the answer in the cache, deletes the lock, keeps the outcome and publishes it,
again in one script.

The holder asks the carrier, then in one script deletes its lock, stores the
outcome and publishes it. A replica that finds the lock held subscribes to
the channel, then looks at the lock once more: gone means the outcome is
already in the result key; still there means the outcome will be published
to it. No polling: it wakes on the message, or when the lock would expire
unrenewed, to see whether the holder died, in which case it asks the carrier
itself.

Redis failures never fail a lookup: without Redis every replica is its own
single flight. Each round trip counts against the request's Redis budget
(:mod:`tracksvc.core.redis_budget`); waiting for another replica's outcome does
not, since that is the carrier's time, not Redis's.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Coroutine, Hashable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar

import structlog
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from tracksvc.core.models import Carrier
from tracksvc.core.redis import RedisClient, open_pubsub
from tracksvc.core.redis_budget import redis_step
from tracksvc.core.redis_keys import flight_key_prefix

log = structlog.get_logger("singleflight")


#: Waiters look at the lock again this long after it would have expired unrenewed.
LOCK_EXPIRY_SLACK_S = 0.02

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class InProcessFlights(Generic[K, T]):
    """One task per key; everyone who asks meanwhile awaits the same task."""

    def __init__(self) -> None:
        self._running: dict[K, asyncio.Task[T]] = {}

    def get(self, key: K) -> asyncio.Task[T] | None:
        """The flight under way for ``key``, if any."""
        return self._running.get(key)

    def start(self, key: K, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run ``work`` as the flight for ``key`` (there must be none under way)."""
        task = asyncio.get_running_loop().create_task(work)
        self._running[key] = task

        def done(finished: asyncio.Task[T]) -> None:
            if self._running.get(key) is finished:
                del self._running[key]
            if not finished.cancelled():
                finished.exception()  # retrieved here, so a flight nobody awaited logs nothing

        task.add_done_callback(done)
        return task

    def __len__(self) -> int:
        return len(self._running)

    async def settle(self) -> None:
        """Wait until no flight is under way (tests, shutdown)."""
        while self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def aclose(self) -> None:
        """Cancel every flight under way."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def flight_key(carrier: Carrier, number: str, name: str) -> str:
    """One of a number's flight keys (hash-tagged like its cache key)."""
    return f"{flight_key_prefix}{{{carrier.value}:{number}}}:{name}"


class LockOutcome(StrEnum):
    """What trying to take a number's lock found."""

    acquired = "acquired"  # ours: ask the carrier
    held = "held"  # another replica is asking: wait for its outcome
    unavailable = "unavailable"  # Redis is down: ask the carrier (in-process single flight only)


class WaitOutcome(StrEnum):
    """How waiting for another replica's flight ended."""

    published = "published"  # its outcome arrived (payload set)
    released = "released"  # its lock is gone; payload is the stored outcome, if any
    timeout = "timeout"  # still running at our deadline
    unavailable = "unavailable"  # Redis failed while waiting


@dataclass
class FlightLock:
    """A lock this replica holds, and the task that keeps renewing it."""

    carrier: Carrier
    number: str
    token: str
    #: The next renewal: a timer until it is due, then the task renewing.
    renewer: asyncio.TimerHandle | asyncio.Task[None] | None = field(default=None, repr=False)
    finished: bool = False


@dataclass(frozen=True)
class Entry:
    """A cache entry a flight's landing stores (its key shares the number's hash tag)."""

    key: str
    value: bytes
    ttl_s: int


@dataclass(frozen=True)
class FirstRead:
    """A number's first read: its cache entry, and, when there was none, whether we took its lock."""

    outcome: LockOutcome | None  # None: something was cached, the lock was not tried
    lock: FlightLock | None
    entry: bytes | None


@dataclass(frozen=True)
class Waited:
    """The end of a wait, with the outcome's payload when there is one."""

    outcome: WaitOutcome
    payload: bytes | None = None


def _as_bytes(value: object) -> bytes | None:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return None


# KEYS: lock, result, then the cache entry to store (optional). ARGV: token, payload,
# result ttl ms, channel, then the entry and its ttl in seconds (with the entry).
_FINISH_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
if KEYS[3] then
  redis.call('SET', KEYS[3], ARGV[5], 'EX', ARGV[6])
end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[2])
return 1
"""

# KEYS: cache entry, lock. ARGV: token, lock ttl ms. Returns {entry or nil, 1 when the lock
# was taken}: the lock is tried only when nothing is cached.
_OPEN_SCRIPT = """
local entry = redis.call('GET', KEYS[1])
if entry then
  return {entry, 0}
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {false, 1}
end
return {false, 0}
"""

# KEYS: lock. ARGV: token, ttl ms.
_RENEW_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


class RedisFlights:
    """
    The cross-replica half of single flight.

    Args:
        redis: the app's Redis client.
        lock_ttl_s: lock expiry; the holder renews it every third of it, so a
            holder that died is noticed within about this long.
        result_ttl_s: how long a flight's outcome stays readable after it ended.
    """

    def __init__(self, redis: RedisClient, *, lock_ttl_s: float = 2.0, result_ttl_s: float = 5.0) -> None:
        self.redis = redis
        self.lock_ttl_s = lock_ttl_s
        self.result_ttl_s = result_ttl_s
        self._finish = redis.register_script(_FINISH_SCRIPT)
        self._renew = redis.register_script(_RENEW_SCRIPT)
        self._open = redis.register_script(_OPEN_SCRIPT)

    @property
    def _lock_ttl_ms(self) -> int:
        return max(1, int(self.lock_ttl_s * 1000))

    async def open(self, carrier: Carrier, number: str, entry_key: str) -> FirstRead:
        """
        Read the number's cache entry and, when there is none, try its lock, in one round trip.

        Args:
            entry_key: the number's cache key (same hash tag as its flight keys).

        Returns:
            The entry read; with no entry, what trying the lock found (``unavailable``
            when Redis failed: nothing was read then either).
        """
        token = secrets.token_hex(8)
        try:
            async with redis_step("cache get and flight lock"):
                raw, taken = await self._open(
                    keys=[entry_key, flight_key(carrier, number, "lock")], args=[token, self._lock_ttl_ms]
                )
        except (RedisError, OSError) as exc:
            log.warning("flight_lock_unavailable", carrier=carrier.value, error=str(exc))
            return FirstRead(LockOutcome.unavailable, None, None)
        entry = _as_bytes(raw)
        if entry is not None:
            return FirstRead(None, None, entry)
        if not int(taken):
            return FirstRead(LockOutcome.held, None, None)
        return FirstRead(LockOutcome.acquired, self._held(carrier, number, token), None)

    def _held(self, carrier: Carrier, number: str, token: str) -> FlightLock:
        lock = FlightLock(carrier, number, token)
        self._renew_later(lock)
        return lock

    def _renew_later(self, lock: FlightLock) -> None:
        # A timer, not a task: most flights end before their first renewal is due.
        lock.renewer = asyncio.get_running_loop().call_later(self.lock_ttl_s / 3, self._renew_due, lock)

    def _renew_due(self, lock: FlightLock) -> None:
        if not lock.finished:
            lock.renewer = asyncio.get_running_loop().create_task(self._renew_once(lock))

    async def acquire(
        self, carrier: Carrier, number: str, *, peek: str | None = None
    ) -> tuple[LockOutcome, FlightLock | None, bytes | None]:
        """
        Try to become the one replica asking the carrier about ``number``.

        Args:
            peek: a key of the same hash tag to read in the same round trip
                (the number's cache entry: what a fetch that just ended stored).

        Returns:
            What was found, our lock when we took it, and the peeked value.
        """
        token = secrets.token_hex(8)
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(flight_key(carrier, number, "lock"), token, nx=True, px=self._lock_ttl_ms)
        if peek is not None:
            pipe.get(peek)
        try:
            async with redis_step("flight lock"):
                replies = await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("flight_lock_unavailable", carrier=carrier.value, error=str(exc))
            return LockOutcome.unavailable, None, None
        peeked = _as_bytes(replies[1]) if peek is not None else None
        if not replies[0]:
            return LockOutcome.held, None, peeked
        return LockOutcome.acquired, self._held(carrier, number, token), peeked

    async def _renew_once(self, lock: FlightLock) -> None:
        key = flight_key(lock.carrier, lock.number, "lock")
        try:
            async with redis_step("flight lock renewal"):
                renewed = await self._renew(keys=[key], args=[lock.token, self._lock_ttl_ms])
        except (RedisError, OSError):
            return
        # The flag, not only cancellation, ends the renewals: on Python 3.11 redis-py's
        # wait_for() around socket writes can swallow a cancellation.
        if renewed and not lock.finished:
            self._renew_later(lock)
        # not renewed: lost it (expired while Redis was away), nothing left to keep

    async def finish(self, lock: FlightLock, payload: bytes, *, store: Entry | None = None) -> bool:
        """
        Release the lock, keep the outcome and publish it to whoever waits, in one round trip.

        Args:
            payload: the outcome, as waiters read it.
            store: a cache entry to write in the same script (the answer the flight got).

        Returns:
            False when Redis could not be reached (nothing was written).
        """
        lock.finished = True
        if lock.renewer is not None:
            lock.renewer.cancel()
        keys = [
            flight_key(lock.carrier, lock.number, "lock"),
            flight_key(lock.carrier, lock.number, "result"),
        ]
        args: list[bytes | str | int] = [
            lock.token,
            payload,
            max(1, int(self.result_ttl_s * 1000)),
            flight_key(lock.carrier, lock.number, "done"),
        ]
        if store is not None:
            keys.append(store.key)
            args += [store.value, max(1, store.ttl_s)]
        try:
            async with redis_step("flight finish"):
                await self._finish(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            # The lock expires by itself; waiters notice and ask the carrier.
            log.warning("flight_finish_unavailable", carrier=lock.carrier.value, error=str(exc))
            return False
        return True

    async def wait(self, carrier: Carrier, number: str, until: float) -> Waited:
        """
        Wait for another replica's flight to end, until ``until`` (event-loop time).

        Subscribes first, then checks the lock, so an outcome published in
        between is either received or already stored.
        """
        loop = asyncio.get_running_loop()
        lock_key = flight_key(carrier, number, "lock")
        result_key = flight_key(carrier, number, "result")
        pubsub: PubSub | None = None
        try:
            async with redis_step("flight subscribe"):
                pubsub = await open_pubsub(self.redis)
                await pubsub.subscribe(flight_key(carrier, number, "done"))
            while True:
                pipe = self.redis.pipeline(transaction=False)
                pipe.pttl(lock_key)
                pipe.get(result_key)
                async with redis_step("flight check"):
                    left_ms, stored = await pipe.execute()
                if left_ms == -2:  # no lock: the holder is done (or gone)
                    return Waited(WaitOutcome.released, _as_bytes(stored))
                # Wake when the lock would expire unless renewed: a holder that died is seen at once.
                lock_left_s = left_ms / 1000 if left_ms > 0 else self.lock_ttl_s
                while True:
                    remaining = until - loop.time()
                    if remaining <= 0:
                        return Waited(WaitOutcome.timeout)
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True,
                        timeout=min(remaining, lock_left_s + LOCK_EXPIRY_SLACK_S),
                    )
                    if message is None:
                        break  # quiet until the lock's expiry (or a subscribe notice): holder alive?
                    if message.get("type") == "message":
                        return Waited(WaitOutcome.published, _as_bytes(message["data"]))
        except (RedisError, OSError) as exc:
            log.warning("flight_wait_unavailable", carrier=carrier.value, error=str(exc))
            return Waited(WaitOutcome.unavailable)
        finally:
            if pubsub is not None:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
