"""The UPS code tables: one status per code, statuses only."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping

import pytest

from carriers.ups import units
from tracksvc.core.models import Outcome, TrackingStatus

GROUPS: dict[str, Mapping[TrackingStatus, tuple[Hashable, ...]]] = {
    "STATUS_CODE_GROUPS": units.STATUS_CODE_GROUPS,
    "ACTIVITY_GROUPS": units.ACTIVITY_GROUPS,
    "TYPE_GROUPS": units.TYPE_GROUPS,
}


@pytest.mark.parametrize("name", sorted(GROUPS))
def test_no_code_is_listed_under_two_statuses(name: str) -> None:
    """Every code of a table appears in exactly one status group."""
    counts = Counter(code for codes in GROUPS[name].values() for code in codes)
    assert [code for code, n in counts.items() if n > 1] == []


@pytest.mark.parametrize("name", sorted(GROUPS))
def test_every_group_key_is_a_tracking_status(name: str) -> None:
    """Group keys are TrackingStatus members, not look-alike strings."""
    assert all(type(status) is TrackingStatus for status in GROUPS[name])


@pytest.mark.parametrize(
    "table",
    [units.STATUS_BY_CODE, units.STATUS_BY_ACTIVITY, units.STATUS_BY_TYPE],
    ids=["by_code", "by_activity", "by_type"],
)
def test_every_table_value_is_a_tracking_status(table: Mapping[object, object]) -> None:
    """The inverted lookup tables only ever answer with a TrackingStatus."""
    assert table
    assert all(type(status) is TrackingStatus for status in table.values())


def test_inverted_tables_keep_every_code() -> None:
    """Inverting the groups loses no code (a duplicate would shrink the table)."""
    for groups, table in [
        (units.STATUS_CODE_GROUPS, units.STATUS_BY_CODE),
        (units.ACTIVITY_GROUPS, units.STATUS_BY_ACTIVITY),
        (units.TYPE_GROUPS, units.STATUS_BY_TYPE),
    ]:
        assert len(table) == sum(len(codes) for codes in groups.values())


def test_status_codes_are_three_digit_strings() -> None:
    """Status/description codes are stored zero-padded, as UPS sends them ("003")."""
    assert all(len(code) == 3 and code.isdigit() for code in units.STATUS_BY_CODE)


def test_types_that_need_a_code_are_not_in_the_type_table() -> None:
    """Types I and X cover attempts, holds, returns and customs, so alone they decide nothing."""
    assert "I" not in units.STATUS_BY_TYPE
    assert "X" not in units.STATUS_BY_TYPE


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("003", TrackingStatus.label_created),
        ("007", TrackingStatus.cancelled),
        ("011", TrackingStatus.delivered),
        ("013", TrackingStatus.exception),
        ("017", TrackingStatus.available_for_pickup),
        ("021", TrackingStatus.out_for_delivery),
        ("022", TrackingStatus.delivery_attempted),
        ("034", TrackingStatus.returned_to_sender),
        ("038", TrackingStatus.in_transit),
        ("040", TrackingStatus.available_for_pickup),
        ("160", TrackingStatus.in_transit),
    ],
)
def test_documented_codes_map_to_their_meaning(code: str, status: TrackingStatus) -> None:
    """The codes carrier-apis.md 1.5 names map to the status they mean."""
    assert units.STATUS_BY_CODE[code] is status


def test_physical_table_marks_manifest_and_updates_as_not_physical() -> None:
    """Label, void and update activities are not scans; pickup and transit are."""
    assert {t for t, physical in units.PHYSICAL_BY_TYPE.items() if not physical} >= {"M", "MV", "U"}
    assert all(units.PHYSICAL_BY_TYPE[t] for t in ("P", "I", "X", "D"))


def test_error_outcomes_are_outcomes() -> None:
    """TW0001 is not found and TV1002 an invalid number."""
    expected = {"TW0001": Outcome.not_found, "TV1002": Outcome.invalid_number}
    assert dict(units.OUTCOME_BY_ERROR_CODE) == expected
