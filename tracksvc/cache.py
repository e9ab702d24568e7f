"""
The Redis cache of carrier answers, one entry per (carrier, tracking number).

Keys are ``tracksvc:track:{carrier:number}``: the braces are a Redis Cluster
hash tag, so every key about one number lives in one slot. Entries expire by
status: fresh within the soft TTL (``ttl_for``), kept until the hard TTL
so that a carrier outage can be answered with the last known answer, marked
stale. A Redis failure is logged and treated as a miss, so a
lookup still reaches the carrier.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

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


@dataclass(frozen=True)
class TtlPolicy:
    """Cache lifetime per status family, in seconds."""

    active_s: int
    final_s: int
    not_found_s: int
    hard_s: int

    @classmethod
    def from_settings(cls, settings: Settings) -> TtlPolicy:
        """The policy the settings describe."""
        return cls(
            active_s=settings.cache_ttl_active_s,
            final_s=settings.cache_ttl_final_s,
            not_found_s=settings.cache_ttl_not_found_s,
            hard_s=settings.cache_hard_ttl_s,
        )

    def ttl_for(self, answer: CachedAnswer) -> int:
        """How long this answer stays fresh (the soft TTL)."""
        if answer.result is None:
            return self.not_found_s
        if answer.result.status in FINAL_STATUSES:
            return self.final_s
        return self.active_s

    def is_fresh(self, answer: CachedAnswer) -> bool:
        """Whether the answer is within its soft TTL."""
        return answer.age_s < self.ttl_for(answer)

    def expire_s(self, answer: CachedAnswer) -> int:
        """Redis expiry: the hard limit, never below the soft TTL."""
        return max(self.ttl_for(answer), self.hard_s)


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
