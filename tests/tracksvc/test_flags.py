"""The flags: one enum, one table of rules, and the advice, contract and UI kept in step with it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.contract import spec
from tests.tracksvc.registry_helpers import now, register, shipment, track_ok
from tracksvc.core.models import TrackingStatus as S
from tracksvc.domain.advice import (
    ADVICE_BY_FLAG,
    FLAG_ADVICE,
    PRECEDENCE,
    PREFACE_ADVICE,
    STATUS_ADVICE,
    Advice,
    Clocked,
    NoAdviceOfItsOwn,
    Preface,
    StatusSpeaks,
    advice_for,
)
from tracksvc.domain.flags import (
    RULES,
    Flag,
    OrderFacts,
    ShipmentFacts,
    order_flags,
    shipment_flags,
)

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
PAST = NOW - timedelta(hours=1)
FUTURE = NOW + timedelta(hours=1)

FACTS: dict[str, object] = {
    "carrier": "UPS", "tracking_number": "1ZTRKSVC0100000024", "age": "5 days ago",
    "label_age_hours": 120.0, "last_scan": "6 days ago", "when": "2 hours ago", "detail": "address problem",
    "problem": "UPS's tracking service is failing; asked at 10:41 UTC; tracksvc will retry by itself.",
    "origin": "DAL1", "promised": "2026-11-20", "order_number": "S-2",
    "replaced_from": "W-1", "ship_by": "2026-11-19", "grace_hours": 48.0,
}

F = Flag


# -- the rules -----------------------------------------------------------------------


def test_every_flag_has_exactly_one_rule_in_flag_order() -> None:
    """The table names each flag once, in the enum's order, and each rule looks at some level."""
    assert list(RULES) == list(Flag)
    assert all(rule.shipment is not None or rule.order is not None for rule in RULES.values())


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        ({"status": S.in_transit}, []),
        ({"status": S.in_transit, "stale": True}, [F.stale]),
        ({"status": S.not_tendered}, [F.not_tendered]),
        ({"status": S.stalled}, [F.stalled]),
        ({"status": S.label_created}, []),
        ({"status": S.label_created, "claims_shipped": True}, [F.internal_mismatch]),
        ({"status": S.not_found, "claims_shipped": True}, [F.internal_mismatch]),
        ({"status": S.not_tendered, "claims_shipped": True}, [F.not_tendered, F.internal_mismatch]),
        ({"status": S.in_transit, "claims_shipped": True}, []),  # scanned: no mismatch
        ({"status": S.in_transit, "promised": PAST}, [F.promise_missed]),
        ({"status": S.in_transit, "promised": FUTURE}, []),
        ({"status": S.in_transit, "promised": NOW}, []),  # the promised moment itself is not past
        ({"status": S.delivered, "promised": PAST}, []),
        ({"status": S.cancelled, "promised": PAST}, []),
        ({"status": S.returned_to_sender, "promised": PAST}, []),
        ({"status": S.exception, "promised": PAST}, [F.promise_missed]),
        (
            {"status": S.not_tendered, "stale": True, "claims_shipped": True, "promised": PAST},
            [F.stale, F.not_tendered, F.internal_mismatch, F.promise_missed],
        ),
    ],
)
def test_shipment_rules(facts: dict[str, Any], expected: list[Flag]) -> None:
    """Each shipment rule raises its flag exactly when its facts hold, listed in Flag order."""
    assert shipment_flags(ShipmentFacts(now=NOW, **facts)) == expected


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        ({"status": S.in_transit, "has_shipments": True}, []),
        ({"status": S.in_transit, "has_shipments": True, "replaced": True}, [F.replaced_order]),
        ({"status": S.awaiting_shipment, "has_shipments": False, "ship_by": PAST}, [F.ship_by_missed]),
        ({"status": S.awaiting_shipment, "has_shipments": False, "ship_by": FUTURE}, []),
        ({"status": S.in_transit, "has_shipments": True, "ship_by": PAST}, []),  # it shipped
        ({"status": S.awaiting_shipment, "has_shipments": False, "promised": PAST}, [F.promise_missed]),
        ({"status": S.awaiting_shipment, "has_shipments": False, "promised": FUTURE}, []),
        # Shipped: each shipment answers for the promise, not the order.
        ({"status": S.in_transit, "has_shipments": True, "promised": PAST}, []),
        (
            {"status": S.awaiting_shipment, "has_shipments": False, "ship_by": PAST, "promised": PAST},
            [F.ship_by_missed, F.promise_missed],
        ),
        ({"status": S.in_transit, "has_shipments": True, "registry_unavailable": True},
         [F.registry_unavailable]),
        ({"status": S.delivered, "has_shipments": True, "claims": frozenset({"not_received"})},
         [F.delivered_disputed]),
        ({"status": S.delivered, "has_shipments": True}, []),
        ({"status": S.in_transit, "has_shipments": True, "claims": frozenset({"not_received"})}, []),
    ],
)
def test_order_rules(facts: dict[str, Any], expected: list[Flag]) -> None:
    """Each order rule raises its flag exactly when the order's facts hold."""
    assert order_flags([], OrderFacts(now=NOW, **facts)) == expected


@pytest.mark.parametrize("status", list(S))
@pytest.mark.parametrize("promised", [None, PAST, NOW, FUTURE])
def test_promise_missed_is_one_rule_at_both_levels(status: S, promised: datetime | None) -> None:
    """A shipment and an unshipped order with the same status and promise agree on promise_missed."""
    shipment = ShipmentFacts(status=status, now=NOW, promised=promised)
    shipment_level = F.promise_missed in shipment_flags(shipment)
    order = OrderFacts(status=status, now=NOW, has_shipments=False, promised=promised)
    assert (F.promise_missed in order_flags([], order)) is shipment_level


def test_an_order_lists_each_flag_once_shipments_first() -> None:
    """The shipments' flags come first, first seen first; a flag raised twice is listed once."""
    order = OrderFacts(status=S.not_tendered, now=NOW, has_shipments=True, replaced=True)
    shipments = [[F.promise_missed], [F.not_tendered, F.promise_missed], [F.stale]]
    assert order_flags(shipments, order) == [F.promise_missed, F.not_tendered, F.stale, F.replaced_order]


async def test_a_late_order_with_two_late_shipments_says_promise_missed_once(service: Any) -> None:
    """Through the service: each late shipment carries promise_missed, the order lists it once."""
    yesterday = (now() - timedelta(days=1)).date().isoformat()
    await register(service, shipment("shp-l1", "ups-in-transit", order_number="W-L"),
                   shipment("shp-l2", "fedex-in-transit", order_number="W-L"),
                   order={"order_number": "W-L", "promised_delivery_date": yesterday})
    body = await track_ok(service, "W-L")
    assert [s["flags"] for s in body["shipments"]] == [["promise_missed"], ["promise_missed"]]
    assert body["flags"] == ["promise_missed"]


# -- the advice ----------------------------------------------------------------------


def test_every_flag_has_an_advice_entry_in_flag_order() -> None:
    """No flag is left out of the advice: each has words, a preface, its status's words, or a stated none."""
    assert list(ADVICE_BY_FLAG) == list(Flag)
    for said in ADVICE_BY_FLAG.values():
        assert isinstance(said, Advice | Preface | StatusSpeaks | NoAdviceOfItsOwn)
        if isinstance(said, NoAdviceOfItsOwn):
            assert said.why.strip()


def test_advice_names_only_situations_that_exist() -> None:
    """The advice tables are keyed by Flag, TrackingStatus or Clocked members, never by loose strings."""
    for situation in (*FLAG_ADVICE, *PREFACE_ADVICE, *PRECEDENCE, *ADVICE_BY_FLAG):
        assert type(situation) in (Flag, S, Clocked), situation


def test_every_flag_with_words_can_speak() -> None:
    """A flag with words of its own, or standing for a status, is ranked in the precedence."""
    for flag, said in ADVICE_BY_FLAG.items():
        if isinstance(said, Advice):
            assert flag in PRECEDENCE, flag
        if isinstance(said, StatusSpeaks):
            assert said.status in PRECEDENCE, flag


@pytest.mark.parametrize("flag", list(Flag))
def test_each_flag_does_to_the_advice_what_its_entry_says(flag: Flag) -> None:
    """On an in-transit order a flag's entry decides the words: its own, prefaced, its status's, or none."""
    said = ADVICE_BY_FLAG[flag]
    plain = STATUS_ADVICE[S.in_transit].agent.format_map(FACTS)
    agent = advice_for(S.in_transit, [flag], FACTS).agent
    if isinstance(said, Advice):
        assert agent == said.agent.format_map(FACTS)
    elif isinstance(said, Preface):
        assert agent == said.advice.agent.format_map(FACTS) + plain
    elif isinstance(said, StatusSpeaks):
        assert agent == STATUS_ADVICE[said.status].agent.format_map(FACTS)
    else:
        assert agent == plain


def test_a_misspelt_flag_fails_loudly() -> None:
    """A flag that does not exist raises instead of silently dropping its advice."""
    with pytest.raises(ValueError, match="promise_mised"):
        advice_for(S.in_transit, ["promise_mised"], FACTS)


# -- the contract and the page -------------------------------------------------------


def test_openapi_flag_enum_follows_the_enum() -> None:
    """openapi.yaml's Flag lists every flag, in Flag order, and describes each one."""
    schema = spec()["components"]["schemas"]["Flag"]
    assert schema["enum"] == [f.value for f in Flag]
    for flag in Flag:
        assert f"- `{flag.value}`:" in schema["description"], flag


def _flags_properties(node: Any, where: str = "") -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "flags" and isinstance(value, dict) and value.get("type") == "array":
                found.append((where, value))
            found.extend(_flags_properties(value, f"{where}/{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(_flags_properties(value, f"{where}/{i}"))
    return found


def test_every_flags_array_in_the_contract_uses_the_flag_enum() -> None:
    """No answer documents flags as free strings: each flags array refers to Flag."""
    found = _flags_properties(spec())
    assert len(found) >= 3  # Shipment, TrackView, WebhookEvent
    for where, prop in found:
        assert prop["items"] == {"$ref": "#/components/schemas/Flag"}, where


def test_the_agent_page_labels_every_flag() -> None:
    """The sidebar's FLAGS table has words for each flag, and for nothing else."""
    script = (Path(__file__).resolve().parents[2] / "tracksvc/api/ui/static/sidebar.js").read_text()
    block = re.search(r"const FLAGS = \{(.*?)\};", script, re.S)
    assert block is not None
    labelled = re.findall(r"^\s*(\w+):", block.group(1), re.M)
    assert sorted(labelled) == sorted(f.value for f in Flag)
