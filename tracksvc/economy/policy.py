"""
The cache policy of one lookup, pure (no I/O, the clock passed in).

Given what the cache holds for a number and the time, :func:`verdict` says
what a lookup does (design.md section 4):

==============  ====================================================  ===============
verdict         when                                                  the lookup
==============  ====================================================  ===============
``hit``         within the soft TTL                                   serves it
``revalidate``  past the soft TTL, within the hard TTL                serves it and
                                                                      refreshes in the
                                                                      background
``expired``     past the hard TTL (or refreshing, see :class:`Mode`)  asks the carrier
``miss``        nothing cached                                        asks the carrier
==============  ====================================================  ===============

and, once a fetch has ended, :func:`answered` says what the lookup answers:
the carrier's answer (``live``); when the carrier could not be asked, the last
known answer marked ``stale`` with the reason, or nothing but the reason
(``unavailable``: an answer the carrier did not give is never ``live``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from tracksvc.core.models import Carrier, CarrierMessage, Outcome, TrackingResult
from tracksvc.economy.cache import CachedAnswer, CacheState, TtlPolicy


class Freshness(StrEnum):
    """How current an answer is."""

    live = "live"  # asked the carrier for this request
    cached = "cached"  # from the cache: within its soft TTL, or its hard TTL while being refreshed
    stale = "stale"  # the last known answer: the carrier could not be asked (down, budget, breaker)
    unavailable = "unavailable"  # no answer at all: the carrier could not be asked, nothing is kept


class Mode(StrEnum):
    """Who looks up, which decides what a cached answer is good for."""

    #: A request: an answer within its hard TTL is served (refreshed in the background).
    lookup = "lookup"
    #: The background refresher: past the soft TTL the carrier is asked first, and a pushed
    #: answer is confirmed with the carrier before it is believed (a pushed 'delivered' must
    #: not stop the polling).
    refresh = "refresh"


class Verdict(StrEnum):
    """What a lookup does with what the cache holds (also the ``cache_lookups`` metric's label)."""

    hit = "hit"  # fresh: serve it, ask nobody
    revalidate = "revalidate"  # serve it, refresh it in the background
    expired = "expired"  # ask the carrier first; serve it as stale if that fails
    miss = "miss"  # nothing cached: ask the carrier


#: Verdicts answered from the cache at once.
SERVED = frozenset({Verdict.hit, Verdict.revalidate})

#: The verdict per (cache state, mode).
VERDICTS: Mapping[tuple[CacheState, Mode], Verdict] = {
    (CacheState.fresh, Mode.lookup): Verdict.hit,
    (CacheState.fresh, Mode.refresh): Verdict.hit,
    (CacheState.revalidate, Mode.lookup): Verdict.revalidate,
    (CacheState.revalidate, Mode.refresh): Verdict.expired,
    (CacheState.expired, Mode.lookup): Verdict.expired,
    (CacheState.expired, Mode.refresh): Verdict.expired,
}

#: Outcomes that mean "the carrier answered: it does not know this number".
UNKNOWN_TO_CARRIER = frozenset({Outcome.not_found, Outcome.invalid_number})

#: What one fetch ends with: the carrier's answer as stored, or why the carrier could not be asked.
FlightResult = CachedAnswer | CarrierMessage


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


def verdict(cached: CachedAnswer | None, ttl: TtlPolicy, *, now: float, mode: Mode) -> Verdict:
    """
    What a lookup does with ``cached`` at ``now``.

    Args:
        cached: what the cache holds (None: nothing).
        ttl: the soft and hard TTLs.
        now: epoch seconds.
        mode: a request's lookup or the refresher's.
    """
    if cached is None:
        return Verdict.miss
    state = ttl.state(cached, now=now)
    if cached.pushed and mode is Mode.refresh:
        state = CacheState.expired  # the carrier's own answer wins over a push
    return VERDICTS[state, mode]


def as_of(fetched_at: float) -> datetime:
    """When an answer was fetched, as a time."""
    return datetime.fromtimestamp(fetched_at, tz=UTC)


def served(carrier: Carrier, number: str, cached: CachedAnswer) -> Lookup:
    """The lookup answered from the cache."""
    return Lookup(carrier, number, cached.result, cached.message, as_of(cached.fetched_at), Freshness.cached)


def answered(carrier: Carrier, number: str, cached: CachedAnswer | None, outcome: FlightResult) -> Lookup:
    """
    The lookup answered after a fetch: the carrier's answer, else the last known
    answer marked stale with the reason, else only the reason.

    Args:
        cached: what the cache held before the fetch.
        outcome: the fetch's end.
    """
    if isinstance(outcome, CachedAnswer):
        return Lookup(
            carrier, number, outcome.result, outcome.message, as_of(outcome.fetched_at), Freshness.live
        )
    if cached is not None:
        return Lookup(carrier, number, cached.result, outcome, as_of(cached.fetched_at), Freshness.stale)
    return Lookup(carrier, number, None, outcome, None, Freshness.unavailable)


def is_newer(stored: CachedAnswer | None, seen: float | None) -> bool:
    """
    Whether ``stored`` was fetched after what the lookup read first.

    Args:
        stored: the entry read now.
        seen: ``fetched_at`` of what the lookup read first (None: it read nothing).
    """
    return stored is not None and (seen is None or stored.fetched_at > seen)


def is_news(stored: CachedAnswer | None, seen: float | None, ttl: TtlPolicy, *, now: float) -> bool:
    """
    Whether ``stored`` (read just before asking the carrier) is a fresh answer another
    fetch stored since this lookup read the cache: then it is this lookup's answer too,
    and the carrier is not asked again.

    Args:
        stored: the entry read now.
        seen: ``fetched_at`` of what the lookup read first (None: it read nothing).
        ttl: the soft and hard TTLs.
        now: epoch seconds.
    """
    return (
        stored is not None and is_newer(stored, seen) and ttl.state(stored, now=now) is CacheState.fresh
    )
