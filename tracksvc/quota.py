"""
Per-carrier call budgets shared by every replica through Redis.

Each carrier has two limits (calls per second and per hour, 0 = unlimited)
kept as GCRA "theoretical arrival times" (a token bucket in one number per
limit), plus a block set when the carrier answers 429 with a Retry-After.
One Lua script checks the block and both limits and takes one call from each
limit atomically, with Redis's own clock, so replicas agree without trusting
each other's clocks. Keys are ``tracksvc:quota:{<carrier>}:<name>``: one hash
tag per carrier, so a script only touches one slot.

When Redis cannot be reached the same algorithm runs in-process (each
replica then keeps its own budget) and the call is never refused for that
reason alone.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from tracksvc.models import Carrier
from tracksvc.settings import Settings

log = structlog.get_logger("quota")

quota_key_prefix = "tracksvc:quota:"

#: Periods of the two limits, in seconds.
SECOND_S = 1.0
HOUR_S = 3600.0


class RefusalReason(StrEnum):
    """Why a call was not allowed."""

    budget = "budget"  # our own per-second or per-hour budget is spent
    retry_after = "retry_after"  # the carrier said when to come back


@dataclass(frozen=True)
class QuotaLimits:
    """Calls allowed per second and per hour (0 = unlimited)."""

    per_second: float = 0.0
    per_hour: float = 0.0

    @classmethod
    def from_settings(cls, settings: Settings, carrier: Carrier) -> QuotaLimits:
        """The limits ``TRACKSVC_<CARRIER>_QUOTA_PER_SECOND`` / ``_PER_HOUR`` set."""
        return cls(
            per_second=float(getattr(settings, f"{carrier.value}_quota_per_second")),
            per_hour=float(getattr(settings, f"{carrier.value}_quota_per_hour")),
        )

    def describe(self, which: str) -> str:
        """The limit that refused, in words."""
        if which == "second":
            return f"{self.per_second:g} calls per second"
        return f"{self.per_hour:g} calls per hour"


@dataclass(frozen=True)
class Refusal:
    """A call that may not go out now, and when it may."""

    reason: RefusalReason
    retry_after_s: float
    #: ``second`` or ``hour`` for a budget refusal; empty for a Retry-After block.
    limit: str = ""


@dataclass(frozen=True)
class GcraDecision:
    """The outcome of one GCRA step."""

    allowed: bool
    #: The new theoretical arrival time (unchanged when refused).
    tat: float
    retry_after_s: float


def gcra(now: float, tat: float | None, limit: float, period_s: float) -> GcraDecision:
    """
    One step of the generic cell rate algorithm: may one more call go out?

    ``limit`` calls are allowed per ``period_s``, all of them at once if the
    bucket is full (burst = one period).

    Args:
        now: the current time, seconds.
        tat: the stored theoretical arrival time, or None for a full bucket.
        limit: calls per period (> 0).
        period_s: the period, seconds.
    """
    interval = period_s / limit
    burst = max(period_s, interval)
    base = now if tat is None else max(tat, now)
    new_tat = base + interval
    allow_at = new_tat - burst
    if now < allow_at:
        return GcraDecision(False, now if tat is None else tat, allow_at - now)
    return GcraDecision(True, new_tat, 0.0)


# KEYS: block, per-second TAT, per-hour TAT. ARGV: per_second, per_hour (calls, 0 = none).
# Times are Redis's clock in milliseconds. Returns {allowed, wait_ms, which}: which is
# 0 (allowed), 1 (blocked by a Retry-After), 2 (per-second limit), 3 (per-hour limit).
_TAKE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local blocked = redis.call('PTTL', KEYS[1])
if blocked > 0 then
  return {0, blocked, 1}
end
local periods = {1000, 3600000}
local new_tats = {}
for i = 1, 2 do
  local limit = tonumber(ARGV[i])
  if limit > 0 then
    local interval = periods[i] / limit
    local burst = math.max(periods[i], interval)
    local tat = now
    local stored = redis.call('GET', KEYS[i + 1])
    if stored then
      tat = math.max(tonumber(stored), now)
    end
    local new_tat = tat + interval
    local allow_at = new_tat - burst
    if now < allow_at then
      return {0, math.ceil(allow_at - now), i + 1}
    end
    new_tats[i] = new_tat
  end
end
for i = 1, 2 do
  if new_tats[i] then
    redis.call('SET', KEYS[i + 1], string.format('%.3f', new_tats[i]),
               'PX', math.ceil(new_tats[i] - now) + 1000)
  end
end
return {1, 0, 0}
"""

# KEYS: block. ARGV: ms, reason. Extends the block, never shortens it.
_BLOCK_SCRIPT = """
local left = redis.call('PTTL', KEYS[1])
if left < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[1])
end
return 1
"""

_WHICH = {1: "", 2: "second", 3: "hour"}


def quota_key(carrier: Carrier, name: str) -> str:
    """One of a carrier's quota keys (hash-tagged per carrier)."""
    return f"{quota_key_prefix}{{{carrier.value}}}:{name}"


class LocalBudget:
    """The same budget kept in this process only: the fallback while Redis is down."""

    def __init__(self, limits: QuotaLimits, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._tats: dict[str, float] = {}
        self._blocked_until = 0.0

    def take(self) -> Refusal | None:
        """Take one call, or say why not and for how long."""
        now = self._clock()
        if self._blocked_until > now:
            return Refusal(RefusalReason.retry_after, self._blocked_until - now)
        decisions: dict[str, GcraDecision] = {}
        for name, limit, period in (
            ("second", self.limits.per_second, SECOND_S),
            ("hour", self.limits.per_hour, HOUR_S),
        ):
            if limit > 0:
                decision = gcra(now, self._tats.get(name), limit, period)
                if not decision.allowed:
                    return Refusal(RefusalReason.budget, decision.retry_after_s, name)
                decisions[name] = decision
        for name, decision in decisions.items():
            self._tats[name] = decision.tat
        return None

    def blocked_for_s(self) -> float:
        """Seconds left of a Retry-After block (0 when none)."""
        return max(0.0, self._blocked_until - self._clock())

    def block(self, seconds: float) -> None:
        """Refuse every call for ``seconds`` (a Retry-After)."""
        self._blocked_until = max(self._blocked_until, self._clock() + seconds)


class Budget:
    """
    One carrier's budget, shared through Redis, local while Redis is down.

    Args:
        redis: the app's Redis client.
        carrier: whose budget.
        limits: calls per second and per hour.
    """

    def __init__(self, redis: aioredis.Redis, carrier: Carrier, limits: QuotaLimits) -> None:
        self.redis = redis
        self.carrier = carrier
        self.limits = limits
        self.local = LocalBudget(limits)
        self._keys = [quota_key(carrier, "block"), quota_key(carrier, "second"), quota_key(carrier, "hour")]
        self._take = redis.register_script(_TAKE_SCRIPT)
        self._block = redis.register_script(_BLOCK_SCRIPT)

    async def take(self) -> Refusal | None:
        """Take one call from the shared budget, or say why not and for how long."""
        blocked_s = self.local.blocked_for_s()
        if blocked_s > 0:  # this replica met the 429 itself: no need to ask Redis
            return Refusal(RefusalReason.retry_after, blocked_s)
        try:
            allowed, wait_ms, which = await self._take(
                keys=self._keys, args=[self.limits.per_second, self.limits.per_hour]
            )
        except (RedisError, OSError) as exc:
            log.warning("quota_redis_unavailable", carrier=self.carrier.value, error=str(exc))
            return self.local.take()
        if int(allowed):
            return None
        which = int(which)
        reason = RefusalReason.retry_after if which == 1 else RefusalReason.budget
        return Refusal(reason, int(wait_ms) / 1000, _WHICH.get(which, ""))

    async def acquire(self, wait_until: float) -> Refusal | None:
        """
        Take one call, waiting for budget until ``wait_until`` (event-loop time).

        Returns:
            None when the call may go out; the refusal when it may not before ``wait_until``.
        """
        loop = asyncio.get_running_loop()
        while True:
            refusal = await self.take()
            if refusal is None:
                return None
            if loop.time() + refusal.retry_after_s > wait_until:
                return refusal
            await asyncio.sleep(refusal.retry_after_s)

    async def block(self, seconds: float, reason: str) -> None:
        """Refuse every replica's calls to this carrier for ``seconds`` (a Retry-After)."""
        self.local.block(seconds)
        ms = max(1, math.ceil(seconds * 1000))
        try:
            await self._block(keys=[self._keys[0]], args=[ms, reason])
        except (RedisError, OSError) as exc:
            log.warning("quota_redis_unavailable", carrier=self.carrier.value, error=str(exc))
        log.warning("carrier_blocked", carrier=self.carrier.value, seconds=round(seconds, 1), reason=reason)
