"""The USPS code tables: one status per code, typed values, consistent sets."""

from __future__ import annotations

from collections import Counter

import pytest

from carriers.usps import units
from tracksvc.core.models import TrackingStatus


@pytest.mark.parametrize(
    ("groups", "fold"),
    [(units.EVENT_CODE_GROUPS, False), (units.CATEGORY_GROUPS, True)],
    ids=["eventCode", "statusCategory"],
)
def test_no_code_under_two_statuses(
    groups: dict[TrackingStatus, tuple[str, ...]], fold: bool
) -> None:
    """Within one table every code is listed under exactly one status."""
    counts = Counter(
        units.category_key(code) if fold else code for codes in groups.values() for code in codes
    )
    assert [code for code, n in counts.items() if n > 1] == []


@pytest.mark.parametrize(
    "table", [units.STATUS_BY_EVENT_CODE, units.STATUS_BY_CATEGORY], ids=["event", "category"]
)
def test_table_values_are_tracking_statuses(table: dict[str, TrackingStatus]) -> None:
    """Every mapped value is a TrackingStatus, and never the catch-all unknown."""
    assert all(isinstance(v, TrackingStatus) for v in table.values())
    assert TrackingStatus.unknown not in table.values()


def test_duplicate_code_is_refused_at_import() -> None:
    """Building a table from groups that repeat a code raises instead of picking one."""
    with pytest.raises(ValueError, match="'05'"):
        units._invert(
            {TrackingStatus.exception: ("05",), TrackingStatus.returned_to_sender: ("05",)},
            fold=False,
        )


def test_label_side_codes_are_label_created_and_not_scans() -> None:
    """GX, MA and the shipping-partner 80/81/82 mean label_created and are not USPS scans."""
    for code in ("GX", "MA", "80", "81", "82"):
        assert TrackingStatus.label_created == units.STATUS_BY_EVENT_CODE[code]
        assert not units.is_physical(code)


def test_acceptance_and_later_codes_are_scans() -> None:
    """03 (first acceptance), facility, delivery and return codes are physical scans."""
    for code in ("03", "10", "A1", "T1", "OF", "01", "02", "16", "05", "09"):
        assert units.is_physical(code)


def test_unknown_and_deferring_codes_are_not_scans() -> None:
    """An unmapped code, or DX (a missing-scan notice), never counts as USPS handling the parcel."""
    assert not units.is_physical("ZZ")
    assert not units.is_physical("DX")
    assert "DX" not in units.STATUS_BY_EVENT_CODE


def test_every_non_physical_code_is_known() -> None:
    """The non-physical set only names codes the tables know about."""
    known = set(units.STATUS_BY_EVENT_CODE) | units.DEFERRING_EVENT_CODES
    assert known >= units.NON_PHYSICAL_EVENT_CODES
    assert units.LABEL_EVENT_CODES <= units.NON_PHYSICAL_EVENT_CODES


def test_error_code_sets_are_disjoint() -> None:
    """No USPS error sub-code means both not_found and invalid_number."""
    assert set() == units.NOT_FOUND_ERROR_CODES & units.INVALID_NUMBER_ERROR_CODES


def test_category_lookup_folds_case_and_spaces() -> None:
    """statusCategory is matched whole, ignoring case and extra spaces."""
    key = units.category_key("  moving   THROUGH network ")
    assert TrackingStatus.in_transit == units.STATUS_BY_CATEGORY[key]
    assert units.category_key("Moving") not in units.STATUS_BY_CATEGORY
