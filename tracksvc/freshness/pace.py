"""
The refresher's part of each carrier's budget, spread over time and over replicas.

**How much.** Each carrier's budget (:mod:`tracksvc.economy.quota`) keeps
``TRACKSVC_QUOTA_RESERVED_SHARE`` of every limit for registered shipments and
the refresher; lookups of unregistered numbers (agents pasting numbers) get
the rest. The refresher spends that reserved share of the tighter of the
carrier's two limits (per second, and per hour over 3,600 s), in carrier
calls; a FedEx call asks about up to 30 numbers. With nothing reserved (a
share of 0) the refresher may spend the whole budget. A carrier without
limits is not paced: only ``TRACKSVC_REFRESHER_BATCH_SIZE`` bounds a cycle.

**Spread.** One GCRA bucket per carrier in Redis holds the refresher's
calls: every cycle of every replica takes the calls that have accrued since
the last take, at most two cycles' worth (at least one call), and gives back
what it could not use (nothing due, or another replica held the claims). So
the replicas together never go faster than the share, whoever cycles first
does the work, and cycles a few seconds apart spread the calls over the
refresher period instead of spending a period's worth at once. The carrier's
own budget still counts every call (the refresher is a registered caller),
so even with agents using their part at the same time nothing goes past it.

Keys::

    tracksvc:refresh:pace:{<carrier>}   the refresher's theoretical arrival time, ms (one slot each)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from redis.exceptions import RedisError

from tracksvc.core.errors import RegistryUnavailable
from tracksvc.core.models import Carrier
from tracksvc.core.redis import RedisClient
from tracksvc.core.redis_keys import pace_key_prefix
from tracksvc.core.settings import Settings
from tracksvc.economy.quota import QuotaLimits

#: Numbers per carrier call the refresher counts on when asking in batches (FedEx: 30).
BATCH_NUMBERS: Mapping[Carrier, int] = {Carrier.ups: 1, Carrier.fedex: 30, Carrier.usps: 1}

#: A take holds at most this many cycles' calls: a cycle that ran late (a slow carrier, a
#: busy replica) is made up by the next, yet a backlog never spends a period's worth at once.
BURST_CYCLES = 2

# KEYS: the bucket. ARGV: ms per call, burst ms, calls wanted. Redis's clock. Returns the calls
# taken now (0 to wanted): the calls accrued, at most a burst's worth.
_TAKE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or now), now)
local n = math.floor((now + burst - tat) / interval)
if n > want then n = want end
if n <= 0 then return 0 end
tat = tat + n * interval
redis.call('SET', KEYS[1], string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 1000)
return n
"""

# KEYS: the bucket. ARGV: ms per call, calls given back. Never earlier than now.
_GIVE_BACK_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local stored = redis.call('GET', KEYS[1])
if not stored then return 0 end
local tat = math.max(tonumber(stored) - tonumber(ARGV[1]) * tonumber(ARGV[2]), now)
redis.call('SET', KEYS[1], string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 1000)
return 1
"""


def pace_key(carrier: Carrier) -> str:
    """The refresher's bucket for one carrier (hash-tagged per carrier, as its quota keys)."""
    return f"{pace_key_prefix}{{{carrier.value}}}"


def refresher_share(settings: Settings) -> float:
    """The part of each carrier budget the refresher spends: the reserved share, or all of it."""
    return settings.quota_reserved_share or 1.0


def calls_per_second(limits: QuotaLimits, share: float) -> float | None:
    """The refresher's calls per second for a carrier's limits (None: the carrier has no limit)."""
    rates = [rate for rate in (limits.per_second, limits.per_hour / 3600) if rate > 0]
    return share * min(rates) if rates else None


def numbers_per_call(settings: Settings, carrier: Carrier) -> int:
    """How many shipments one refresher call covers (FedEx batches only when batching is on)."""
    return BATCH_NUMBERS[carrier] if settings.batch_window_s > 0 else 1


@dataclass(frozen=True)
class CarrierPace:
    """One carrier's pace: calls per second (None: unlimited) and numbers per call."""

    carrier: Carrier
    rate: float | None
    per_call: int

    def calls_for(self, shipments: int) -> int:
        """Calls needed to ask about ``shipments`` shipments."""
        return math.ceil(shipments / self.per_call)


class Pace:
    """
    The refresher's share of the carrier budgets, shared by every replica through Redis.

    Args:
        redis: the app's Redis client.
        settings: budgets, shares, batching and the refresher period.
        cycle_s: how often each replica cycles (a take holds at most this long's calls).
    """

    def __init__(self, redis: RedisClient, settings: Settings, *, cycle_s: float) -> None:
        share = refresher_share(settings)
        self.carriers = {
            c: CarrierPace(c, calls_per_second(QuotaLimits.from_settings(settings, c), share),
                           numbers_per_call(settings, c))
            for c in Carrier
        }
        self.cycle_s = cycle_s
        self._take = redis.register_script(_TAKE_SCRIPT)
        self._give_back = redis.register_script(_GIVE_BACK_SCRIPT)

    def most_per_cycle(self, batch_size: int) -> int:
        """The most shipments one cycle can be granted, all carriers together (at most a batch)."""
        most = 0
        for pace in self.carriers.values():
            if pace.rate is None:
                return batch_size
            calls = max(1, math.ceil(BURST_CYCLES * self.cycle_s * pace.rate))
            most += calls * pace.per_call
        return min(batch_size, most)

    async def take(self, carrier: Carrier, calls: int) -> int | None:
        """
        Up to ``calls`` refresher calls to ``carrier`` allowed now (None: no limit applies).

        Raises:
            RegistryUnavailable: Redis could not be reached.
        """
        pace = self.carriers[carrier]
        if pace.rate is None:
            return None
        if calls <= 0:
            return 0
        interval_ms = 1000 / pace.rate
        burst_ms = max(BURST_CYCLES * self.cycle_s * 1000, interval_ms)
        try:
            taken = await self._take(keys=[pace_key(carrier)], args=[interval_ms, burst_ms, calls])
        except (RedisError, OSError) as exc:
            raise RegistryUnavailable(f"the registry (Redis) is not reachable: {exc}") from exc
        return int(taken)

    async def give_back(self, carrier: Carrier, calls: int) -> None:
        """Return calls taken but not made (best effort: a failure only slows the refresher)."""
        pace = self.carriers[carrier]
        if pace.rate is None or calls <= 0:
            return
        try:
            await self._give_back(keys=[pace_key(carrier)], args=[1000 / pace.rate, calls])
        except (RedisError, OSError):
            return
