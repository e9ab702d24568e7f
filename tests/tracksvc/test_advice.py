"""The advice tables: which situation speaks, and every template fills (pure)."""

from __future__ import annotations

import string

import pytest

from tracksvc.core.models import TrackingStatus as S
from tracksvc.domain.advice import (
    FLAG_ADVICE,
    LONG_NOT_TENDERED_HOURS,
    PRECEDENCE,
    PREFACE_ADVICE,
    STATUS_ADVICE,
    advice_for,
    situations,
)
from tracksvc.domain.status import NEEDS_ACTION

FACTS: dict[str, object] = {
    "carrier": "UPS", "tracking_number": "1ZTRKSVC0100000024", "age": "5 days ago",
    "label_age_hours": 120.0, "last_scan": "6 days ago", "when": "2 hours ago", "detail": "address problem",
    "problem": "UPS's tracking service is failing; asked at 10:41 UTC; tracksvc will retry by itself.",
    "origin": "DAL1", "promised": "2026-11-20", "order_number": "S-2",
    "replaced_from": "W-1", "ship_by": "2026-11-19", "grace_hours": 48.0,
}


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_status_has_advice() -> None:
    """No order status is left without words for the agent and the customer."""
    assert set(STATUS_ADVICE) == set(S)


def test_every_situation_in_the_precedence_has_advice_once() -> None:
    """Each situation named in the precedence has a template, and none is listed twice."""
    assert len(PRECEDENCE) == len(set(PRECEDENCE))
    for name in PRECEDENCE:
        assert name in FLAG_ADVICE or S(name) in STATUS_ADVICE


def test_needs_action_statuses_outrank_a_missed_promise() -> None:
    """A problem to fix speaks before lateness, which speaks before the plain status."""
    rank = {name: i for i, name in enumerate(PRECEDENCE)}
    assert all(rank[s.value] < rank["promise_missed"] for s in NEEDS_ACTION)


@pytest.mark.parametrize(
    "template",
    [t for a in (*FLAG_ADVICE.values(), *STATUS_ADVICE.values(), *PREFACE_ADVICE.values())
     for t in (a.agent, a.customer)],
)
def test_every_template_uses_only_known_facts(template: str) -> None:
    """A template names only facts the service provides, so nothing reads 'unknown' by mistake."""
    assert _fields(template) <= set(FACTS)


@pytest.mark.parametrize(
    ("status", "flags", "starts"),
    [
        (S.not_tendered, ["not_tendered", "internal_mismatch", "promise_missed"], "Our system says"),
        (S.not_tendered, ["not_tendered", "promise_missed"], "UPS never received this package"),
        (S.exception, ["promise_missed"], "UPS reports a problem"),
        (S.stalled, ["stalled", "promise_missed"], "No UPS scan since"),
        (S.in_transit, ["promise_missed"], "The promised delivery date (2026-11-20) has passed"),
        (S.in_transit, [], "Moving with UPS"),
        (S.awaiting_shipment, ["ship_by_missed", "promise_missed"], "This order was never shipped"),
        (S.delivered, ["delivered_disputed"], "UPS shows this parcel delivered 2 hours ago"),
        (S.returned_to_sender, ["stale"], "UPS is returning this parcel"),
    ],
)
def test_the_most_specific_situation_speaks(status: S, flags: list[str], starts: str) -> None:
    """Flags naming a specific story first, then statuses needing action, then lateness."""
    assert advice_for(status, flags, FACTS).agent.startswith(starts)


@pytest.mark.parametrize(
    ("age_h", "long"),
    [(LONG_NOT_TENDERED_HOURS - 1, False), (LONG_NOT_TENDERED_HOURS, True), (17 * 24, True)],
)
def test_a_label_far_past_the_grace_period_says_cancel_or_refund_now(age_h: float, long: bool) -> None:
    """After a week without a scan the parcel is lost: the advice is to cancel or refund now."""
    facts = {**FACTS, "label_age_hours": age_h, "age": "17 days ago"}
    advice = advice_for(S.not_tendered, ["not_tendered"], facts)
    assert ("not_tendered_long" in situations(S.not_tendered, ["not_tendered"], facts)) is long
    assert ("refund the customer now" in advice.agent) is long
    if long:
        assert "17 days ago" in advice.agent
        assert "will refund you" in advice.customer


def test_the_long_rule_is_only_for_not_tendered() -> None:
    """An old label that did ship is not advised as lost."""
    assert "not_tendered_long" not in situations(S.in_transit, [], {**FACTS, "label_age_hours": 999.0})


def test_replaced_order_prefaces_the_advice_never_replaces_it() -> None:
    """The new number is said first, then what to do about the order's real state."""
    advice = advice_for(S.not_tendered, ["not_tendered", "replaced_order"], FACTS)
    assert advice.agent.startswith("Order W-1 was cancelled and re-placed as order S-2")
    assert "UPS never received this package" in advice.agent
    assert advice.customer.startswith("Your order W-1 now has a new order number, S-2. ")
    assert "has not received it yet" in advice.customer


def test_missing_facts_read_as_unknown_rather_than_failing() -> None:
    """A template whose fact is missing still renders."""
    assert "unknown" in advice_for(S.not_found, [], {}).agent
