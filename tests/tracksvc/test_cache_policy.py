"""The cache policy of one lookup, as a table: pure, the clock passed in."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tracksvc.core.models import Carrier, CarrierMessage, Outcome, TrackingResult, TrackingStatus
from tracksvc.economy.cache import CachedAnswer, TtlPolicy
from tracksvc.economy.policy import (
    Freshness,
    Mode,
    Verdict,
    answered,
    is_news,
    served,
    verdict,
)

TTL = TtlPolicy(active_s=60, final_s=3600, not_found_s=30, keep_s=86400,
                hard_active_s=600, hard_final_s=7200, hard_not_found_s=30)
NOW = 1_800_000_000.0
NUMBER = "1ZPOLICY"


def _answer(age_s: float, status: TrackingStatus = TrackingStatus.in_transit, *,
            pushed: bool = False) -> CachedAnswer:
    result = TrackingResult(carrier=Carrier.ups, tracking_number=NUMBER, status=status)
    return CachedAnswer(result=result, fetched_at=NOW - age_s, pushed=pushed)


def _unknown(age_s: float) -> CachedAnswer:
    message = CarrierMessage(carrier=Carrier.ups, tracking_number=NUMBER, outcome=Outcome.not_found)
    return CachedAnswer(message=message, fetched_at=NOW - age_s)


FAILURE = CarrierMessage(carrier=Carrier.ups, tracking_number=NUMBER, outcome=Outcome.unavailable,
                         message="carrier server error")


@pytest.mark.parametrize(
    ("cached", "mode", "expected"),
    [
        (None, Mode.lookup, Verdict.miss),
        (None, Mode.refresh, Verdict.miss),
        (_answer(10), Mode.lookup, Verdict.hit),
        (_answer(10), Mode.refresh, Verdict.hit),
        (_answer(120), Mode.lookup, Verdict.revalidate),
        (_answer(120), Mode.refresh, Verdict.expired),
        (_answer(900), Mode.lookup, Verdict.expired),
        (_answer(900), Mode.refresh, Verdict.expired),
        (_answer(120, TrackingStatus.delivered), Mode.lookup, Verdict.hit),
        (_answer(5000, TrackingStatus.delivered), Mode.lookup, Verdict.revalidate),
        (_unknown(10), Mode.lookup, Verdict.hit),
        (_unknown(40), Mode.lookup, Verdict.expired),
        (_answer(10, pushed=True), Mode.lookup, Verdict.hit),
        (_answer(10, pushed=True), Mode.refresh, Verdict.expired),
        (_answer(120, TrackingStatus.delivered, pushed=True), Mode.lookup, Verdict.revalidate),
    ],
    ids=[
        "miss", "miss-refresh", "fresh", "fresh-refresh", "past-soft", "past-soft-refresh",
        "past-hard", "past-hard-refresh", "delivered-fresh", "delivered-past-soft",
        "not-found-fresh", "not-found-past", "pushed-fresh", "pushed-refresh-asks",
        "pushed-delivered-is-active",
    ],
)
def test_verdicts(cached: CachedAnswer | None, mode: Mode, expected: Verdict) -> None:
    """Each age, status and mode gets the verdict of design.md section 4."""
    assert verdict(cached, TTL, now=NOW, mode=mode) is expected


def test_a_carrier_answer_is_live() -> None:
    """After a fetch that got an answer, the lookup is live with the answer's time, whatever was cached."""
    fresh = _answer(0)
    lookup = answered(Carrier.ups, NUMBER, _answer(900), fresh)
    assert (lookup.freshness, lookup.result, lookup.message) == (Freshness.live, fresh.result, None)
    assert lookup.as_of == datetime.fromtimestamp(NOW, tz=UTC)


def test_a_failure_serves_the_last_answer_stale_with_the_reason() -> None:
    """The carrier could not be asked: the cached answer, marked stale, carries the failure."""
    cached = _answer(900)
    lookup = answered(Carrier.ups, NUMBER, cached, FAILURE)
    assert (lookup.freshness, lookup.result, lookup.message) == (Freshness.stale, cached.result, FAILURE)
    assert lookup.as_of == datetime.fromtimestamp(NOW - 900, tz=UTC)


def test_a_failure_with_nothing_cached_is_only_the_reason() -> None:
    """Nothing cached and the carrier not asked: no result, the reason, no time; never a not-found."""
    lookup = answered(Carrier.ups, NUMBER, None, FAILURE)
    assert (lookup.result, lookup.message, lookup.as_of) == (None, FAILURE, None)
    assert lookup.freshness is Freshness.unavailable, "an answer the carrier did not give is never live"
    assert not lookup.carrier_denies_it


def test_served_keeps_the_time_of_the_fetch() -> None:
    """An answer served from the cache says cached, as of when the carrier was asked."""
    lookup = served(Carrier.ups, NUMBER, _answer(42))
    assert lookup.freshness is Freshness.cached
    assert lookup.as_of == datetime.fromtimestamp(NOW - 42, tz=UTC)


@pytest.mark.parametrize(
    ("stored", "seen", "expected"),
    [
        (None, None, False),
        (_answer(1), None, True),
        (_answer(1), NOW - 900, True),
        (_answer(900), NOW - 1000, False),  # newer, but no longer fresh: ask
        (_answer(1), NOW - 1, False),  # the very answer we read
    ],
    ids=["nothing", "fresh-after-a-miss", "fresh-and-newer", "newer-but-expired", "same"],
)
def test_an_answer_stored_meanwhile_is_taken_instead_of_asking(
    stored: CachedAnswer | None, seen: float | None, expected: bool
) -> None:
    """Only a fresh answer newer than what the lookup read spares the carrier call."""
    assert is_news(stored, seen, TTL, now=NOW) is expected
