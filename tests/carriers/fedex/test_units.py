"""The FedEx code tables: one status per code, values are statuses, groups are documented."""

from __future__ import annotations

from collections import Counter

import pytest

from carriers.fedex import units
from tracksvc.core.models import Outcome, TrackingStatus

GROUP_TABLES = {
    "STATUS_GROUPS": units.STATUS_GROUPS,
    "DERIVED_STATUS_GROUPS": units.DERIVED_STATUS_GROUPS,
}


@pytest.mark.parametrize("name", sorted(GROUP_TABLES))
def test_no_code_under_two_statuses(name: str) -> None:
    """No code is listed twice within one table (a dict would silently keep the last)."""
    groups = GROUP_TABLES[name]
    counts = Counter(code for _, codes in groups for code in codes)
    assert {code: n for code, n in counts.items() if n > 1} == {}


@pytest.mark.parametrize("name", sorted(GROUP_TABLES))
def test_each_status_is_one_group(name: str) -> None:
    """Each status appears as one group, so a table reads as one list per status."""
    statuses = [status for status, _ in GROUP_TABLES[name]]
    assert len(statuses) == len(set(statuses))


def test_values_are_tracking_statuses() -> None:
    """Every lookup value is a TrackingStatus and every key an upper-case code."""
    for table in (units.STATUS_BY_CODE, units.STATUS_BY_DERIVED_CODE):
        assert all(isinstance(status, TrackingStatus) for status in table.values())
        assert all(code == code.strip().upper() and code for code in table)


def test_tables_hold_every_grouped_code() -> None:
    """The lookups are exactly the groups."""
    assert len(units.STATUS_BY_CODE) == sum(len(codes) for _, codes in units.STATUS_GROUPS)
    assert len(units.STATUS_BY_DERIVED_CODE) == sum(len(codes) for _, codes in units.DERIVED_STATUS_GROUPS)


def test_duplicate_code_in_groups_is_refused() -> None:
    """Building a table from groups that repeat a code fails loudly."""
    with pytest.raises(ValueError, match="'DL'"):
        units._table([(TrackingStatus.delivered, ("DL",)), (TrackingStatus.in_transit, ("DL",))])


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("OC", TrackingStatus.label_created),
        ("OX", TrackingStatus.label_created),
        ("CA", TrackingStatus.cancelled),
        ("PU", TrackingStatus.in_transit),
        ("AR", TrackingStatus.in_transit),
        ("OD", TrackingStatus.out_for_delivery),
        ("HP", TrackingStatus.available_for_pickup),
        ("DL", TrackingStatus.delivered),
        ("DE", TrackingStatus.exception),
        ("SE", TrackingStatus.exception),
        ("CD", TrackingStatus.exception),
        ("RS", TrackingStatus.returned_to_sender),
    ],
)
def test_documented_codes(code: str, status: TrackingStatus) -> None:
    """The label, void, out-for-delivery and pickup codes land where carrier-apis.md 2.5 puts them."""
    assert units.STATUS_BY_CODE[code] == status


def test_derived_codes_are_coarse_fallback() -> None:
    """Derived codes seen in real data are all mapped; RL (running late) is still in transit."""
    assert set(units.STATUS_BY_DERIVED_CODE) == {"IN", "PU", "IT", "DL", "DE", "DY", "HL", "RL"}
    assert units.STATUS_BY_DERIVED_CODE["RL"] == TrackingStatus.in_transit


def test_label_events_are_not_physical() -> None:
    """OC and OX are label data, never a physical scan; pickup is."""
    assert units.LABEL_CODES <= units.NON_PHYSICAL_CODES
    assert "PU" not in units.NON_PHYSICAL_CODES
    assert units.NON_PHYSICAL_CODES - set(units.STATUS_BY_CODE) == set()


def test_attempt_refines_only_mapped_codes() -> None:
    """The attempt refinement applies to DE, a mapped exception code."""
    assert units.ATTEMPT_EVENT_TYPES - set(units.STATUS_BY_CODE) == set()
    assert all(units.STATUS_BY_CODE[c] == TrackingStatus.exception for c in units.ATTEMPT_EVENT_TYPES)


def test_error_codes_are_outcomes() -> None:
    """Per-number error codes map to outcomes; NOTFOUND is not_found."""
    assert all(isinstance(o, Outcome) for o in units.OUTCOME_BY_ERROR_CODE.values())
    assert units.OUTCOME_BY_ERROR_CODE["TRACKING.TRACKINGNUMBER.NOTFOUND"] == Outcome.not_found
