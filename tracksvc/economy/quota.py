"""
Per-carrier call budgets shared by every replica through Redis.

Each carrier has two limits (calls per second and per hour, 0 = unlimited)
kept as GCRA "theoretical arrival times" (a token bucket in one number per
limit), plus a block set when the carrier answers 429 with a Retry-After.
One Lua script checks the block and every limit that applies and takes one
call from each atomically, with Redis's own clock, so replicas agree without
trusting each other's clocks. Keys are ``tracksvc:quota:{<carrier>}:<name>``:
one hash tag per carrier, so a script only touches one slot.

**Shares.** A share of each limit (``TRACKSVC_QUOTA_RESERVED_SHARE``) is kept
for registered shipments and the refresher: lookups of unregistered numbers
(ad hoc, :mod:`tracksvc.economy.callers`) also take from ``adhoc`` buckets holding
the rest, and from an hourly bucket of their API key holding
``TRACKSVC_QUOTA_PER_KEY_SHARE`` of that (``key:<hash of the key>:hour``).
Every share is a share of the carrier's limit, so a limit of 0 (unlimited)
limits nobody.

**Reservations.** A call that may go out within the caller's wait (at the
latest by its deadline) takes its place in the bucket at once and waits for
its turn; one that may not answers at once with when the next call is
allowed. A lookup never waits only to be refused.

**No limits.** A carrier whose limits are both 0 has only the carrier's own
Retry-After blocks to honour: each replica reads the block at most once per
:data:`BLOCK_READ_EVERY_S` (calls meanwhile share that read) instead of
running the script for every call, so another replica's block is seen at
most that late.

When Redis cannot be reached the same algorithm runs in-process (each
replica then keeps its own budget) and the call is never refused for that
reason alone.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import structlog
from redis.exceptions import RedisError

from tracksvc.core.models import Carrier
from tracksvc.core.redis import RedisClient
from tracksvc.core.redis_budget import redis_step
from tracksvc.core.redis_keys import quota_key_prefix
from tracksvc.core.settings import Settings
from tracksvc.economy.callers import Caller, current_caller

log = structlog.get_logger("quota")


#: How often a budget without limits reads the carrier's Retry-After block from Redis, at most.
BLOCK_READ_EVERY_S = 0.1

#: Periods of the two limits, in seconds.
SECOND_S = 1.0
HOUR_S = 3600.0


class RefusalReason(StrEnum):
    """Why a call was not allowed."""

    budget = "budget"  # our own per-second or per-hour budget is spent
    retry_after = "retry_after"  # the carrier said when to come back


class Scope(StrEnum):
    """Whose part of a carrier's budget a bucket holds."""

    carrier = "carrier"  # the whole budget: every call takes from it
    adhoc = "adhoc"  # what is not reserved: lookups of unregistered numbers
    key = "key"  # one API key's share of the ad-hoc part


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
class QuotaShares:
    """
    How a carrier's budget is shared out.

    Args:
        reserved: share kept for registered shipments and the refresher (0 to below 1).
        per_key: share of the rest one API key may use for unregistered numbers (above 0 to 1).
    """

    reserved: float = 0.0
    per_key: float = 1.0

    @classmethod
    def from_settings(cls, settings: Settings) -> QuotaShares:
        """The shares ``TRACKSVC_QUOTA_RESERVED_SHARE`` and ``_PER_KEY_SHARE`` set."""
        return cls(reserved=settings.quota_reserved_share, per_key=settings.quota_per_key_share)

    def factor(self, scope: Scope) -> float:
        """A scope's part of the carrier's limits."""
        return SCOPE_FACTORS[scope](self)


#: Each scope's part of a carrier's limits, as a function of the shares.
SCOPE_FACTORS: Mapping[Scope, Callable[[QuotaShares], float]] = {
    Scope.carrier: lambda shares: 1.0,
    Scope.adhoc: lambda shares: 1.0 - shares.reserved,
    Scope.key: lambda shares: (1.0 - shares.reserved) * shares.per_key,
}

#: The limits (``second``, ``hour``) each scope has a bucket for. A key's share is of the
#: hourly budget only: per-second budgets refill every second, so no key can spend them for
#: everyone, and a key's pasted batch should not crawl at a fraction of a call per second.
SCOPE_LIMITS: Mapping[Scope, frozenset[str]] = {
    Scope.carrier: frozenset({"second", "hour"}),
    Scope.adhoc: frozenset({"second", "hour"}),
    Scope.key: frozenset({"hour"}),
}

#: Each scope's bucket name under the carrier's keys, given the limit and the caller's key id.
SCOPE_NAMES: Mapping[Scope, Callable[[str, str | None], str]] = {
    Scope.carrier: lambda which, key_id: which,
    Scope.adhoc: lambda which, key_id: f"adhoc:{which}",
    Scope.key: lambda which, key_id: f"key:{key_id}:{which}",
}

#: The two limits: (name, period, QuotaLimits field).
PERIODS: tuple[tuple[str, float, str], ...] = (
    ("second", SECOND_S, "per_second"),
    ("hour", HOUR_S, "per_hour"),
)


@dataclass(frozen=True)
class Bucket:
    """One GCRA bucket a call takes from."""

    scope: Scope
    #: ``second`` or ``hour``.
    which: str
    #: Calls per period (> 0).
    limit: float
    period_s: float
    #: Its name under the carrier's keys (``hour``, ``adhoc:hour``, ``key:<id>:hour``).
    name: str

    def describe(self) -> str:
        """The limit, in words."""
        return f"{self.limit:g} calls per {self.which}"


def buckets_for(limits: QuotaLimits, shares: QuotaShares, caller: Caller) -> list[Bucket]:
    """
    The buckets a call for ``caller`` takes from: the carrier's, and for an
    ad-hoc caller the ad-hoc ones and its key's (:data:`SCOPE_LIMITS`). A limit
    of 0 (unlimited) gives no bucket at all.
    """
    scopes = [Scope.carrier] if caller.reserved else [Scope.carrier, Scope.adhoc]
    if not caller.reserved and caller.key_id is not None:
        scopes.append(Scope.key)
    buckets = []
    for which, period_s, field in PERIODS:
        total = float(getattr(limits, field))
        if total <= 0:
            continue
        for scope in scopes:
            factor = shares.factor(scope)
            if which not in SCOPE_LIMITS[scope] or (scope is not Scope.carrier and factor >= 1.0):
                continue  # no such bucket, or the same limit as the one above
            name = SCOPE_NAMES[scope](which, caller.key_id)
            buckets.append(Bucket(scope, which, total * factor, period_s, name))
    return buckets


@dataclass(frozen=True)
class Refusal:
    """A call that may not go out now, and when it may."""

    reason: RefusalReason
    retry_after_s: float
    #: ``second`` or ``hour`` for a budget refusal; empty for a Retry-After block.
    limit: str = ""
    #: The bucket that refused (None for a Retry-After block).
    bucket: Bucket | None = None


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


@dataclass(frozen=True)
class Plan:
    """When a call may go out across several buckets, and what it takes from them."""

    #: Seconds from now until the call's turn (the next allowed call when refused).
    wait_s: float
    #: The bucket that decides the turn (None when every bucket allows a call now).
    binding: Bucket | None
    #: New theoretical arrival time per bucket name (the call's turn taken).
    tats: dict[str, float]


def plan(now: float, tats: Mapping[str, float], buckets: Sequence[Bucket]) -> Plan:
    """
    The earliest turn at which every bucket allows one more call (GCRA, burst =
    one period), and each bucket's arrival time once the call has taken it.

    Args:
        now: the current time, seconds.
        tats: stored theoretical arrival times by bucket name (missing: a full bucket).
        buckets: the buckets the call takes from.
    """
    turn, binding = now, None
    bases: dict[str, float] = {}
    for bucket in buckets:
        interval = bucket.period_s / bucket.limit
        base = max(tats.get(bucket.name, now), now)
        bases[bucket.name] = base
        allow_at = base + interval - max(bucket.period_s, interval)
        if allow_at > turn:
            turn, binding = allow_at, bucket
    new_tats = {
        b.name: max(bases[b.name], turn) + b.period_s / b.limit for b in buckets
    }
    return Plan(turn - now, binding, new_tats)


# KEYS: block, then one key per bucket. ARGV: the longest wait for a turn (ms), then per
# bucket its calls per period and its period (ms). Times are Redis's clock in ms; the same
# steps as plan(). Returns {allowed, wait_ms, which}: allowed 1 with the wait for the
# call's turn; allowed 0 with the wait for the next allowed call and which = -1 (a
# Retry-After block) or the refusing bucket's position (1-based).
_TAKE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local blocked = redis.call('PTTL', KEYS[1])
if blocked > 0 then
  return {0, blocked, -1}
end
local max_wait = tonumber(ARGV[1])
local turn = now
local which = 0
local bases = {}
local intervals = {}
for i = 2, #KEYS do
  local limit = tonumber(ARGV[2 * i - 2])
  local period = tonumber(ARGV[2 * i - 1])
  local interval = period / limit
  local base = now
  local stored = redis.call('GET', KEYS[i])
  if stored then
    base = math.max(tonumber(stored), now)
  end
  bases[i] = base
  intervals[i] = interval
  local allow_at = base + interval - math.max(period, interval)
  if allow_at > turn then
    turn = allow_at
    which = i - 1
  end
end
if turn - now > max_wait then
  return {0, math.ceil(turn - now), which}
end
for i = 2, #KEYS do
  local new_tat = math.max(bases[i], turn) + intervals[i]
  redis.call('SET', KEYS[i], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1000)
end
return {1, math.ceil(turn - now), 0}
"""

# KEYS: block. ARGV: ms, reason. Extends the block, never shortens it.
_BLOCK_SCRIPT = """
local left = redis.call('PTTL', KEYS[1])
if left < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[1])
end
return 1
"""


def quota_key(carrier: Carrier, name: str) -> str:
    """One of a carrier's quota keys (hash-tagged per carrier)."""
    return f"{quota_key_prefix}{{{carrier.value}}}:{name}"


def _refusal(bucket: Bucket, wait_s: float) -> Refusal:
    return Refusal(RefusalReason.budget, wait_s, bucket.which, bucket)


class LocalBudget:
    """
    The same budget kept in this process only: the fallback while Redis is down.

    Args:
        limits: the carrier's calls per second and per hour.
        shares: how the budget is shared out (default: not at all).
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        limits: QuotaLimits,
        *,
        shares: QuotaShares | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits
        self.shares = shares or QuotaShares()
        self._clock = clock
        self._tats: dict[str, float] = {}
        self._blocked_until = 0.0

    def reserve(self, caller: Caller, max_wait_s: float) -> float | Refusal:
        """
        Take the next turn of ``caller`` if it comes within ``max_wait_s``.

        Returns:
            Seconds to wait for the turn, or the refusal with when the next call is allowed.
        """
        now = self._clock()
        if self._blocked_until > now:
            return Refusal(RefusalReason.retry_after, self._blocked_until - now)
        buckets = buckets_for(self.limits, self.shares, caller)
        turn = plan(now, self._tats, buckets)
        if turn.binding is not None and turn.wait_s > max_wait_s:
            return _refusal(turn.binding, turn.wait_s)
        self._tats.update(turn.tats)
        return turn.wait_s

    def take(self, caller: Caller | None = None) -> Refusal | None:
        """Take one call now, or say why not and for how long."""
        taken = self.reserve(caller or current_caller(), 0.0)
        return taken if isinstance(taken, Refusal) else None

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
        shares: how the budget is shared out between registered and ad-hoc lookups.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        redis: RedisClient,
        carrier: Carrier,
        limits: QuotaLimits,
        shares: QuotaShares | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.redis = redis
        self.carrier = carrier
        self.limits = limits
        self.shares = shares or QuotaShares()
        self.local = LocalBudget(limits, shares=self.shares, clock=clock)
        self._clock = clock
        self._block_key = quota_key(carrier, "block")
        self._take = redis.register_script(_TAKE_SCRIPT)
        self._block = redis.register_script(_BLOCK_SCRIPT)
        #: Without limits: when the block was last read, until when it holds, the read under way.
        self._block_read_at = -math.inf
        self._blocked_until = 0.0
        self._block_read: asyncio.Task[None] | None = None

    async def reserve(self, caller: Caller, max_wait_s: float) -> float | Refusal:
        """
        Take ``caller``'s next turn from the shared budget if it comes within ``max_wait_s``.

        Returns:
            Seconds to wait for the turn, or the refusal with when the next call is allowed.
        """
        blocked_s = self.local.blocked_for_s()
        if blocked_s > 0:  # this replica met the 429 itself: no need to ask Redis
            return Refusal(RefusalReason.retry_after, blocked_s)
        buckets = buckets_for(self.limits, self.shares, caller)
        if not buckets:  # no limits: only another replica's Retry-After block can refuse
            blocked_s = await self._blocked_elsewhere_s()
            return Refusal(RefusalReason.retry_after, blocked_s) if blocked_s > 0 else 0.0
        args: list[float] = [max(0, math.floor(max_wait_s * 1000))]
        for bucket in buckets:
            args += (bucket.limit, bucket.period_s * 1000)
        try:
            async with redis_step("quota"):
                allowed, wait_ms, which = await self._take(
                    keys=[self._block_key, *(quota_key(self.carrier, b.name) for b in buckets)],
                    args=args,
                )
        except (RedisError, OSError) as exc:
            log.warning("quota_redis_unavailable", carrier=self.carrier.value, error=str(exc))
            return self.local.reserve(caller, max_wait_s)
        wait_s = int(wait_ms) / 1000
        if int(allowed):
            return wait_s
        which = int(which)
        if which < 0 or which > len(buckets):
            return Refusal(RefusalReason.retry_after, wait_s)
        return _refusal(buckets[which - 1], wait_s)

    async def _blocked_elsewhere_s(self) -> float:
        """Seconds the carrier's shared block has left, read at most every :data:`BLOCK_READ_EVERY_S`."""
        if self._clock() - self._block_read_at >= BLOCK_READ_EVERY_S:
            if self._block_read is None:
                self._block_read = asyncio.get_running_loop().create_task(self._read_block())
            await asyncio.shield(self._block_read)
        return max(0.0, self._blocked_until - self._clock())

    async def _read_block(self) -> None:
        try:
            async with redis_step("quota block read"):
                left_ms = int(await self.redis.pttl(self._block_key))
        except (RedisError, OSError) as exc:
            log.warning("quota_redis_unavailable", carrier=self.carrier.value, error=str(exc))
            left_ms = 0  # as without Redis: never refused for that alone
        finally:
            self._block_read = None
        now = self._clock()
        self._block_read_at = now
        self._blocked_until = now + left_ms / 1000 if left_ms > 0 else 0.0

    async def take(self, caller: Caller | None = None) -> Refusal | None:
        """Take one call now from the shared budget, or say why not and for how long."""
        taken = await self.reserve(caller or current_caller(), 0.0)
        return taken if isinstance(taken, Refusal) else None

    async def acquire(self, wait_until: float, caller: Caller | None = None) -> Refusal | None:
        """
        Take one call for ``caller`` (by default the current one, :mod:`tracksvc.economy.callers`),
        waiting for its turn if that comes by ``wait_until`` (event-loop time).

        A turn later than ``wait_until`` is refused at once: the lookup answers
        (stale, or with when the next call is allowed) instead of waiting.

        Returns:
            None when the call may go out; the refusal when it may not before ``wait_until``.
        """
        loop = asyncio.get_running_loop()
        taken = await self.reserve(caller or current_caller(), wait_until - loop.time())
        if isinstance(taken, Refusal):
            return taken
        if taken > 0:
            await asyncio.sleep(taken)
        return None

    async def block(self, seconds: float, reason: str) -> None:
        """Refuse every replica's calls to this carrier for ``seconds`` (a Retry-After)."""
        self.local.block(seconds)
        ms = max(1, math.ceil(seconds * 1000))
        try:
            async with redis_step("quota block"):
                await self._block(keys=[self._block_key], args=[ms, reason])
        except (RedisError, OSError) as exc:
            log.warning("quota_redis_unavailable", carrier=self.carrier.value, error=str(exc))
        log.warning("carrier_blocked", carrier=self.carrier.value, seconds=round(seconds, 1), reason=reason)
