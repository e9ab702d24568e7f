"""
The Redis cache of carrier answers, one entry per (carrier, tracking number).

Keys are ``tracksvc:track:{carrier:number}``: the braces are a Redis Cluster
hash tag, so every key about one number lives in one slot. Entries expire by
status: fresh within the soft TTL (``ttl_for``); past it and within the hard
TTL (``hard_ttl_for``) served while one background refresh runs; past that
the carrier is asked first. Entries are kept longer still (``keep_s``) so that
a carrier outage can be answered with the last known answer, marked stale.
A Redis failure is logged and treated as a miss, so a lookup still reaches
the carrier.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

import orjson
import redis.asyncio as aioredis
import structlog
from pydantic import BaseModel, ValidationError
from redis.exceptions import RedisError

from tracksvc.models import Carrier, CarrierMessage, TrackingResult, TrackingStatus
from tracksvc.settings import Settings

log = structlog.get_logger("cache")

track_key_prefix = "tracksvc:track:"

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
        if answer.result.status in FINAL_STATUSES:
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

    def is_fresh(self, answer: CachedAnswer) -> bool:
        """Whether the answer is within its soft TTL."""
        return answer.age_s < self.ttl_for(answer)

    def state(self, answer: CachedAnswer) -> CacheState:
        """Fresh, to revalidate in the background, or expired."""
        age_s = answer.age_s
        if age_s < self.ttl_for(answer):
            return CacheState.fresh
        if age_s < self.hard_ttl_for(answer):
            return CacheState.revalidate
        return CacheState.expired

    def expire_s(self, answer: CachedAnswer) -> int:
        """Redis expiry: how long it is kept, never below its hard TTL."""
        return max(self.hard_ttl_for(answer), self.keep_s)


class TrackingCache:
    """Get and set carrier answers in Redis; never raises on Redis trouble."""

    def __init__(self, redis: aioredis.Redis, ttl: TtlPolicy) -> None:
        self.redis = redis
        self.ttl = ttl

    async def get(self, carrier: Carrier, number: str) -> CachedAnswer | None:
        """The cached answer, or None on a miss (or when Redis is down)."""
        try:
            raw = await self.redis.get(track_key(carrier, number))
        except (RedisError, OSError) as exc:
            log.warning("cache_unavailable", op="get", error=str(exc))
            return None
        return self.decode(carrier, number, raw)

    def decode(self, carrier: Carrier, number: str, raw: bytes | str | None) -> CachedAnswer | None:
        """A stored entry (as read from Redis) as an answer; None when absent or unreadable."""
        if raw is None:
            return None
        try:
            return CachedAnswer.model_validate(orjson.loads(raw))
        except (orjson.JSONDecodeError, ValidationError):
            log.warning("cache_entry_unreadable", carrier=carrier.value, tracking_number=number)
            return None

    async def set(self, carrier: Carrier, number: str, answer: CachedAnswer) -> bool:
        """Store an answer until its hard limit; False when Redis is down."""
        try:
            await self.redis.set(
                track_key(carrier, number),
                orjson.dumps(answer.model_dump(mode="json")),
                ex=self.ttl.expire_s(answer),
            )
        except (RedisError, OSError) as exc:
            log.warning("cache_unavailable", op="set", error=str(exc))
            return False
        return True
