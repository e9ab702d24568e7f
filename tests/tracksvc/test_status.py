"""Status classification and order aggregation (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tracksvc.core.models import Carrier, TrackingEvent, TrackingResult, TrackingStatus
from tracksvc.domain.status import AGE_RULES, NEEDS_ACTION, Limits, aggregate, classify

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
S = TrackingStatus


def _result(status: TrackingStatus, *, label_age_h: float | None = None,
            scan_age_h: float | None = None) -> TrackingResult:
    events = []
    if scan_age_h is not None:
        events.append(TrackingEvent(occurred_at=NOW - timedelta(hours=scan_age_h),
                                    status=S.in_transit, code="AR", physical=True))
    label_at = None if label_age_h is None else NOW - timedelta(hours=label_age_h)
    if label_at is not None:
        events.append(TrackingEvent(occurred_at=label_at, status=S.label_created, code="MP",
                                    physical=False))
    return TrackingResult(carrier=Carrier.ups, tracking_number="1Z", status=status,
                          events=events, label_created_at=label_at)


@pytest.mark.parametrize(
    ("label_age_h", "expected"),
    [(2, S.label_created), (47.9, S.label_created), (48.1, S.not_tendered), (17 * 24, S.not_tendered)],
)
def test_label_only_becomes_not_tendered_after_grace(label_age_h: float, expected: S) -> None:
    """A label-only shipment is not_tendered once the grace period has passed."""
    got = classify(_result(S.label_created, label_age_h=label_age_h), now=NOW, limits=Limits())
    assert got.status is expected
    assert got.since == NOW - timedelta(hours=label_age_h)


def test_registry_label_time_wins_over_carrier_label_event() -> None:
    """The warehouse's label time decides, not the carrier's manifest time."""
    result = _result(S.label_created, label_age_h=2)
    got = classify(result, now=NOW, limits=Limits(), label_created_at=NOW - timedelta(days=3))
    assert got.status is S.not_tendered


def test_grace_is_configurable() -> None:
    """TRACKSVC_TENDER_GRACE_HOURS moves the line."""
    result = _result(S.label_created, label_age_h=30)
    assert classify(result, now=NOW, limits=Limits(tender_grace_hours=24)).status is S.not_tendered
    assert classify(result, now=NOW, limits=Limits(tender_grace_hours=36)).status is S.label_created


def test_label_without_any_time_stays_label_created() -> None:
    """With no label time at all, nothing says the grace period passed."""
    result = TrackingResult(carrier=Carrier.usps, tracking_number="9", status=S.label_created)
    assert classify(result, now=NOW, limits=Limits()).status is S.label_created


@pytest.mark.parametrize(("scan_age_h", "expected"), [(10, S.in_transit), (73, S.stalled)])
def test_in_transit_without_scans_becomes_stalled(scan_age_h: float, expected: S) -> None:
    """No physical scan for TRACKSVC_STALLED_AFTER_HOURS makes a parcel stalled."""
    got = classify(_result(S.in_transit, label_age_h=200, scan_age_h=scan_age_h), now=NOW,
                   limits=Limits())
    assert got.status is expected


def test_label_event_is_not_a_scan_for_stalled() -> None:
    """Only physical scans count as movement: a fresh label event does not reset the clock."""
    result = TrackingResult(
        carrier=Carrier.ups, tracking_number="1Z", status=S.in_transit,
        events=[
            TrackingEvent(occurred_at=NOW - timedelta(hours=1), status=S.label_created,
                          code="MP", physical=False),
            TrackingEvent(occurred_at=NOW - timedelta(hours=100), status=S.in_transit,
                          code="AR", physical=True),
        ],
    )
    assert classify(result, now=NOW, limits=Limits()).status is S.stalled


@pytest.mark.parametrize("status", [s for s in S if s not in AGE_RULES])
def test_statuses_without_age_rule_pass_through(status: TrackingStatus) -> None:
    """Delivered, exception, ... are what the carrier says, whatever the clock."""
    assert classify(_result(status, label_age_h=500, scan_age_h=500), now=NOW,
                    limits=Limits()).status is status


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([], S.awaiting_shipment),
        ([S.delivered, S.delivered], S.delivered),
        ([S.delivered, S.in_transit], S.in_transit),
        ([S.delivered, S.delivered, S.not_tendered], S.not_tendered),
        ([S.out_for_delivery, S.label_created], S.label_created),
        ([S.exception, S.not_tendered], S.not_tendered),
        ([S.cancelled, S.delivered], S.delivered),
        ([S.cancelled], S.cancelled),
        ([S.unknown, S.delivered], S.unknown),
        ([S.stalled, S.in_transit], S.stalled),
    ],
)
def test_order_status_never_hides_a_problem(statuses: list[S], expected: S) -> None:
    """Any shipment needing action decides; else the least advanced; delivered only if all are."""
    assert aggregate(statuses) is expected


def test_needs_action_statuses_are_distinct() -> None:
    """Each urgent status appears once in the priority list."""
    assert len(set(NEEDS_ACTION)) == len(NEEDS_ACTION)
