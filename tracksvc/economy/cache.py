"""
The Redis cache of carrier answers, one entry per (carrier, tracking number).

Keys are ``tracksvc:track:{carrier:number}``: the braces are a Redis Cluster
hash tag, so every key about one number lives in one slot. Entries expire by
status: fresh within the soft TTL (``ttl_for``); past it and within the hard
TTL (``hard_ttl_for``) served while one background refresh runs; past that
the carrier is asked first. Entries are kept longer still (``keep_s``) so that
a carrier outage can be answered with the last known answer, marked stale.
A Redis failure is logged and treated as a miss, so a lookup still reaches
the carrier; so is a read or write past the request's Redis budget
(:mod:`tracksvc.core.redis_budget`).

Each replica may also keep fresh answers in memory for a short while
(:class:`LocalAnswers`, ``local_ttl_s``), so that a number looked up again
and again costs no Redis round trip. The trade-off: an answer another replica
stores is seen here only once the local copy lapses (at most ``local_ttl_s``
later). A local copy never outlives its soft TTL, is replaced by this
replica's own :meth:`TrackingCache.set`, and keeps its ``fetched_at``, so the
freshness and age reported stay true.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import structlog
from pydantic import BaseModel, ValidationError
from redis.exceptions import RedisError

from tracksvc.core.models import Carrier, CarrierMessage, TrackingResult, TrackingStatus
from tracksvc.core.redis import RedisClient
from tracksvc.core.redis_budget import redis_step
from tracksvc.core.redis_keys import track_key_prefix
from tracksvc.core.settings import Settings

log = structlog.get_logger("cache")


#: Statuses after which nothing more happens at the carrier.
FINAL_STATUSES = frozenset(
    {TrackingStatus.delivered, TrackingStatus.cancelled, TrackingStatus.returned_to_sender}
)


def track_key(carrier: Carrier, number: str) -> str:
    """The cache key of one carrier answer (hash-tagged per number)."""
    return f"{track_key_prefix}{{{carrier.value}:{number}}}"


class CachedAnswer(BaseModel):
    """What the carrier said, and when we asked."""

    result: TrackingResult | None = None
    message: CarrierMessage | None = None
    fetched_at: float
    #: Built from a carrier's push, not from asking it: fresh for the active TTL at most, so
    #: the next carrier fetch soon replaces it (:mod:`tracksvc.freshness.carrier_events`).
    pushed: bool = False

    @property
    def age_s(self) -> float:
        """Seconds since the carrier was asked."""
        return max(0.0, time.time() - self.fetched_at)


class CacheState(StrEnum):
    """What a cached answer's age allows."""

    fresh = "fresh"  # within the soft TTL: serve it, ask nobody
    revalidate = "revalidate"  # past the soft TTL, within the hard one: serve it, refresh in the background
    expired = "expired"  # past the hard TTL: ask the carrier first (serve it as stale if that fails)


@dataclass(frozen=True)
class TtlPolicy:
    """
    Cache lifetimes per status family, in seconds.

    ``active_s``/``final_s``/``not_found_s`` are the soft TTLs (fresh);
    ``hard_*_s`` the hard TTLs (served while a background refresh runs);
    ``keep_s`` how long an answer is kept at all, to be served as stale
    when the carrier cannot be asked. A hard TTL below its soft TTL counts
    as the soft TTL.
    """

    active_s: int
    final_s: int
    not_found_s: int
    keep_s: int
    hard_active_s: int = 0
    hard_final_s: int = 0
    hard_not_found_s: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> TtlPolicy:
        """The policy the settings describe."""
        return cls(
            active_s=settings.cache_ttl_active_s,
            final_s=settings.cache_ttl_final_s,
            not_found_s=settings.cache_ttl_not_found_s,
            keep_s=settings.cache_hard_ttl_s,
            hard_active_s=settings.cache_hard_ttl_active_s,
            hard_final_s=settings.cache_hard_ttl_final_s,
            hard_not_found_s=settings.cache_hard_ttl_not_found_s,
        )

    def ttl_for(self, answer: CachedAnswer) -> int:
        """How long this answer stays fresh (the soft TTL)."""
        if answer.result is None:
            return self.not_found_s
        if answer.result.status in FINAL_STATUSES and not answer.pushed:
            return self.final_s
        return self.active_s

    def hard_ttl_for(self, answer: CachedAnswer) -> int:
        """How long this answer may be served without asking the carrier first (the hard TTL)."""
        if answer.result is None:
            hard = self.hard_not_found_s
        elif answer.result.status in FINAL_STATUSES:
            hard = self.hard_final_s
        else:
            hard = self.hard_active_s
        return max(hard, self.ttl_for(answer))

    def is_fresh(self, answer: CachedAnswer, *, now: float | None = None) -> bool:
        """Whether the answer is within its soft TTL (at ``now``, epoch seconds; default: the clock)."""
        return _age_s(answer, now) < self.ttl_for(answer)

    def state(self, answer: CachedAnswer, *, now: float | None = None) -> CacheState:
        """Fresh, to revalidate in the background, or expired (at ``now``, epoch seconds)."""
        age_s = _age_s(answer, now)
        if age_s < self.ttl_for(answer):
            return CacheState.fresh
        if age_s < self.hard_ttl_for(answer):
            return CacheState.revalidate
        return CacheState.expired

    def expire_s(self, answer: CachedAnswer) -> int:
        """Redis expiry: how long it is kept, never below its hard TTL."""
        return max(self.hard_ttl_for(answer), self.keep_s)


def _age_s(answer: CachedAnswer, now: float | None) -> float:
    return answer.age_s if now is None else max(0.0, now - answer.fetched_at)


class LocalAnswers:
    """
    A replica's short memory of fresh answers: bounded, each kept at most
    ``ttl_s`` seconds and never past its soft TTL (pure, no I/O).

    Args:
        policy: the TTLs that say how long an answer stays fresh.
        ttl_s: how long a copy is kept here (0: nothing is kept).
        max_entries: how many numbers are remembered; the oldest copy goes first.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(self, policy: TtlPolicy, *, ttl_s: float, max_entries: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock
        self._entries: dict[tuple[Carrier, str], tuple[float, CachedAnswer]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, carrier: Carrier, number: str) -> CachedAnswer | None:
        """The copy kept of a fresh answer, or None when there is none (or it lapsed)."""
        key = (carrier, number)
        entry = self._entries.get(key)
        if entry is None:
            return None
        until, answer = entry
        if self.clock() < until and self.policy.is_fresh(answer):
            return answer
        del self._entries[key]
        return None

    def put(self, carrier: Carrier, number: str, answer: CachedAnswer, *, newer_only: bool = False) -> None:
        """
        Keep a copy of ``answer``, replacing any other; an answer no longer fresh is not kept.

        With ``newer_only``, a copy of a more recent answer is kept instead (a Redis read
        that started before this replica stored a newer answer must not replace it).
        """
        key = (carrier, number)
        if newer_only:
            kept = self.get(carrier, number)
            if kept is not None and kept.fetched_at > answer.fetched_at:
                return
        self._entries.pop(key, None)  # re-inserted last: the newest copy is evicted last
        if self.ttl_s <= 0 or self.max_entries <= 0 or not self.policy.is_fresh(answer):
            return
        now = self.clock()
        # Copies are in the order they lapse (one ttl_s for all): drop the lapsed ones and,
        # when full, the oldest, so memory holds at most the last ttl_s seconds of answers.
        while self._entries:
            first = next(iter(self._entries))
            if self._entries[first][0] > now and len(self._entries) < self.max_entries:
                break
            del self._entries[first]
        self._entries[key] = (now + self.ttl_s, answer)

    def discard(self, carrier: Carrier, number: str) -> None:
        """Forget the copy of one answer."""
        self._entries.pop((carrier, number), None)

    def clear(self) -> None:
        """Forget every copy."""
        self._entries.clear()


class TrackingCache:
    """
    Get and set carrier answers in Redis; never raises on Redis trouble.

    Args:
        redis: the Redis client.
        ttl: soft and hard TTLs.
        local_ttl_s: how long this replica keeps a fresh answer in memory (0: off; see
            :class:`LocalAnswers` for the trade-off).
        local_max_entries: how many answers it keeps in memory at most.
    """

    def __init__(self, redis: RedisClient, ttl: TtlPolicy, *, local_ttl_s: float = 0.0,
                 local_max_entries: int = 10_000) -> None:
        self.redis = redis
        self.ttl = ttl
        self.local = LocalAnswers(ttl, ttl_s=local_ttl_s, max_entries=local_max_entries)

    @classmethod
    def from_settings(cls, redis: RedisClient, settings: Settings) -> TrackingCache:
        """The cache the settings describe."""
        return cls(
            redis,
            TtlPolicy.from_settings(settings),
            local_ttl_s=settings.cache_local_ttl_s,
            local_max_entries=settings.cache_local_max_entries,
        )

    async def get(self, carrier: Carrier, number: str) -> CachedAnswer | None:
        """The cached answer, or None on a miss (or when Redis is down)."""
        kept = self.local.get(carrier, number)
        if kept is not None:
            return kept
        try:
            async with redis_step("cache get"):
                raw = await self.redis.get(track_key(carrier, number))
        except (RedisError, OSError) as exc:
            log.warning("cache_unavailable", op="get", error=str(exc))
            return None
        return self.seen(carrier, number, raw)

    @staticmethod
    def encode(answer: CachedAnswer) -> bytes:
        """An answer as stored in Redis (what :meth:`decode` reads back)."""
        return CachedAnswer.__pydantic_serializer__.to_json(answer)  # the bytes orjson made of model_dump

    def remember(self, carrier: Carrier, number: str, answer: CachedAnswer, *, stored: bool) -> None:
        """
        Keep this replica's copy in step with a write made elsewhere (a flight's landing script).

        Args:
            stored: whether Redis took the write; when it did not, no copy is served.
        """
        if stored:
            self.local.put(carrier, number, answer)
        else:
            self.local.discard(carrier, number)

    def seen(self, carrier: Carrier, number: str, raw: bytes | str | None) -> CachedAnswer | None:
        """An entry read from Redis by another step (a flight's open): decoded and kept as a copy."""
        answer = self.decode(carrier, number, raw)
        if answer is not None and self.local.ttl_s > 0:
            self.local.put(carrier, number, answer, newer_only=True)
        return answer

    def decode(self, carrier: Carrier, number: str, raw: bytes | str | None) -> CachedAnswer | None:
        """A stored entry (as read from Redis) as an answer; None when absent or unreadable."""
        if raw is None:
            return None
        try:
            return CachedAnswer.model_validate_json(raw)  # one pass from bytes, no dict in between
        except ValidationError:  # invalid JSON too
            log.warning("cache_entry_unreadable", carrier=carrier.value, tracking_number=number)
            return None

    async def set(
        self, carrier: Carrier, number: str, answer: CachedAnswer, *, encoded: bytes | None = None
    ) -> bool:
        """
        Store an answer until its hard limit; False when Redis is down.

        Args:
            encoded: the answer as :meth:`encode` made it, when the caller has it already.
        """
        try:
            async with redis_step("cache set"):
                await self.redis.set(
                    track_key(carrier, number),
                    encoded if encoded is not None else self.encode(answer),
                    ex=self.ttl.expire_s(answer),
                )
        except (RedisError, OSError) as exc:
            log.warning("cache_unavailable", op="set", error=str(exc))
            self.remember(carrier, number, answer, stored=False)  # never serve what Redis does not hold
            return False
        self.remember(carrier, number, answer, stored=True)
        return True
