"""
One identifier rule (issue 8, item 8): what PUT and the import accept, GET /v1/track finds by the
same text; control and format characters, empty, null and over-long values are refused naming the
field; two records never share a lookup key; a plain date deadline is the end of that local day.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import orjson
import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from yarl import URL

from tests.conftest import AGENT, INGEST
from tests.contract import assert_matches
from tests.tracksvc.registry_helpers import import_body, put_order, put_shipment, shipment, track, track_ok
from tracksvc.core.settings import Settings

# -- refusals: every identifier field, every bad value --------------------------------

#: (case id, value): each must be refused wherever an identifier goes.
BAD_VALUES = [
    ("zero-width-space", "dup\u200b-1"),
    ("right-to-left-override", "\u202edup-1"),
    ("byte-order-mark", "\ufeffdup-1"),
    ("trailing-newline", "dup-1\n"),
    ("nul", "dup\x00-1"),
    ("tab-inside", "dup\t1"),
    ("empty", ""),
    ("only-spaces", "   "),
    ("null", None),
    ("too-long", "x" * 65),
    ("too-long-once-normalized", "\ufdfa" * 4),  # NFKC makes each one 18 characters
]


def _url(prefix: str, ident: str) -> URL:
    """A route path with ``ident`` percent-encoded as one segment, sent as is."""
    return URL(prefix + quote(ident, safe=""), encoded=True)


async def _put_shipment_at(client: Any, sid: str, body: dict[str, Any]) -> tuple[int, Any]:
    response = await client.put(_url("/v1/shipments/", sid), json=body, headers=INGEST)
    answer = await response.json()
    assert_matches("/v1/shipments/{shipment_id}", "put", response.status, answer)
    return response.status, answer


def _fields(answer: Any) -> list[str]:
    return [d["field"] for d in answer["error"]["details"]]


@pytest.mark.parametrize("field", ["order_number", "internal_shipping_number", "aliases", "origin"])
@pytest.mark.parametrize(("case", "value"), BAD_VALUES, ids=[c for c, _ in BAD_VALUES])
async def test_a_bad_identifier_in_a_shipment_body_is_a_422_naming_the_field(
    service: Any, field: str, case: str, value: str | None
) -> None:
    """Control/format characters, empty, null and too long: 422 naming the field, nothing stored."""
    if value is None and field in ("internal_shipping_number", "origin"):
        value = ""  # null is "absent" for an optional field; an empty string never is
    body = shipment("shp-bad", "ups-in-transit", order_number="W-BAD")
    body[field] = [value] if field == "aliases" else value
    status, answer = await put_shipment(service, body)
    assert status == 422, answer
    expected = "aliases.0" if field == "aliases" else field
    assert _fields(answer) == [expected]
    assert expected in answer["error"]["message"]
    assert (await service.get("/v1/track/shp-bad", headers=AGENT)).status == 404


NON_EMPTY_BAD = [(case, value) for case, value in BAD_VALUES if value]


@pytest.mark.parametrize(("case", "value"), NON_EMPTY_BAD, ids=[c for c, _ in NON_EMPTY_BAD])
async def test_a_bad_shipment_id_in_the_path_is_a_422(service: Any, case: str, value: str) -> None:
    """The path's shipment id follows the same rule: a trailing newline is refused, not trimmed."""
    body = shipment(value, "ups-in-transit", order_number="W-BAD")
    del body["shipment_id"]  # the path's alone
    status, answer = await _put_shipment_at(service, value, body)
    assert status == 422, answer
    assert _fields(answer) == ["shipment_id"]
    status, _ = await put_shipment(service, shipment("dup-1", "ups-in-transit", order_number="W-BAD"))
    assert status == 201  # the clean id was never stored


async def test_a_shipment_without_an_order_number_is_refused(service: Any) -> None:
    """Every label, returns included, belongs to an order: no order_number (or null) is a 422."""
    body = shipment("shp-ret", "ups-in-transit", direction="return")
    for order_number in ("absent", None):
        sent = {k: v for k, v in body.items() if k != "order_number"}
        if order_number is None:
            sent["order_number"] = None
        status, answer = await put_shipment(service, sent)
        assert status == 422
        assert _fields(answer) == ["order_number"]


async def test_a_body_id_must_be_exactly_the_path_id(service: Any) -> None:
    """A body shipment_id of "dup-1\\n" under the path dup-1 is a 422, not silently the same."""
    status, answer = await put_shipment(
        service, shipment("dup-1\n", "ups-in-transit", order_number="W-1"), path_id="dup-1"
    )
    assert status == 422
    assert _fields(answer) == ["shipment_id"]


@pytest.mark.parametrize(("case", "value"), NON_EMPTY_BAD, ids=[c for c, _ in NON_EMPTY_BAD])
async def test_a_bad_order_number_or_replaced_number_is_a_422(service: Any, case: str, value: str) -> None:
    """Orders: the path's order number and each replaces entry follow the rule."""
    response = await service.put(_url("/v1/orders/", value), json={}, headers=INGEST)
    answer = await response.json()
    assert_matches("/v1/orders/{order_number}", "put", response.status, answer)
    assert response.status == 422
    assert _fields(answer) == ["order_number"]
    status, answer = await put_order(service, {"order_number": "W-R1", "replaces": ["W-R0", value]})
    assert status == 422
    assert _fields(answer) == ["replaces.1"]


async def test_the_import_refuses_bad_identifiers_per_row_with_line_numbers(service: Any) -> None:
    """NDJSON and CSV rows with control characters or no order number are row errors naming the line."""
    good = shipment("imp-ok", "ups-in-transit", order_number="W-IMP")
    rows = [
        good,
        {**good, "shipment_id": "imp\u200b-2"},
        {**good, "shipment_id": "imp-3", "aliases": ["RMA\u202e-3"]},
        {k: v for k, v in {**good, "shipment_id": "imp-4"}.items() if k != "order_number"},
        {**good, "shipment_id": "imp-5\n"},
    ]
    status, report = await import_body(
        service, b"\n".join(orjson.dumps(r) for r in rows) + b"\n", "application/x-ndjson"
    )
    assert status == 200
    assert (report["accepted"], report["rejected"]) == (1, 4)
    assert [(e["line"], [f["field"] for f in e["errors"]]) for e in report["errors"]] == [
        (2, ["shipment_id"]), (3, ["aliases.0"]), (4, ["order_number"]), (5, ["shipment_id"]),
    ]
    csv_body = (
        "shipment_id,order_number,carrier,tracking_number,label_created_at\n"
        f"imp-6\t,W-IMP,ups,{good['tracking_number']},{good['label_created_at']}\n"
        f"imp-7,,ups,{good['tracking_number']},{good['label_created_at']}\n"
    ).encode()
    status, report = await import_body(service, csv_body, "text/csv")
    assert status == 200
    assert [(e["line"], [f["field"] for f in e["errors"]]) for e in report["errors"]] == [
        (2, ["shipment_id"]), (3, ["order_number"]),
    ]


# -- one lookup key, one record: 409 naming the other ---------------------------------


async def test_the_same_id_in_other_case_is_a_409_naming_the_first(service: Any) -> None:
    """dup-1 then DUP-1: 409 identifier_conflict naming dup-1; dup-1 again is an update (200)."""
    assert (await put_shipment(service, shipment("dup-1", "ups-in-transit", order_number="W-1")))[0] == 201
    for other in ("DUP-1", " dup-1".upper(), "#dup-1", "dup1", "DUP.1"):
        body = shipment(other, "ups-label-5d", order_number="W-2")
        del body["shipment_id"]  # the path's
        status, answer = await _put_shipment_at(service, other, body)
        assert status == 409, (other, answer)
        assert answer["error"]["code"] == "identifier_conflict"
        assert "'dup-1'" in answer["error"]["message"]
        assert answer["error"]["details"]["conflicts_with"] == "dup-1"
        assert answer["error"]["details"]["field"] == "shipment_id"
    assert (await put_shipment(service, shipment("dup-1", "ups-in-transit", order_number="W-1")))[0] == 200
    for text in ("DUP-1", " #dup-1 ", "\uff44\uff55\uff50\uff0d\uff11", "dup 1", "DUP1"):  # full-width too
        status, found = await track(service, quote(text, safe=""))
        assert status == 200, (text, found)
        assert [s["shipment_id"] for s in found["shipments"]] == ["dup-1"]  # the one record
    assert (await service.get("/v1/track/W-2", headers=AGENT)).status == 404  # nothing of it was written


@pytest.mark.parametrize(
    ("first", "second", "field", "held"),
    [
        ({"aliases": ["RMA-7"]}, {"aliases": ["rma 7"]}, "aliases.0", "alias"),
        ({"aliases": ["RMA-7"]}, {"shipment_id": "rma-7"}, "shipment_id", "alias"),
        ({}, {"aliases": ["SHP-A"]}, "aliases.0", "shipment_id"),
        ({"internal_shipping_number": "SN-9"}, {"aliases": ["sn9"]}, "aliases.0", "internal_shipping_number"),
        ({}, {"internal_shipping_number": "shp-a"}, "internal_shipping_number", "shipment_id"),
    ],
    ids=["alias-alias", "id-alias", "alias-id", "alias-internal", "internal-id"],
)
async def test_an_identifier_another_shipment_holds_is_a_409(
    service: Any, first: dict[str, Any], second: dict[str, Any], field: str, held: str
) -> None:
    """An alias, internal number or id equal (normalized) to another shipment's is refused, naming it."""
    status, _ = await put_shipment(service, shipment("shp-a", "ups-in-transit", order_number="W-A", **first))
    assert status == 201
    body = shipment("shp-b", "fedex-in-transit", order_number="W-B")
    body.update(second)
    status, answer = await put_shipment(service, body)
    assert status == 409, answer
    details = answer["error"]["details"]
    assert (details["field"], details["conflicts_with"], details["conflicts_with_field"]) == (
        field, "shp-a", held
    )
    assert "'shp-a'" in answer["error"]["message"]


async def test_an_alias_is_refused_while_held_and_free_once_dropped(service: Any) -> None:
    """shp-b may not take shp-a's RMA-8 (409); shp-a may hold its own keys twice; once dropped, it is free."""
    await put_shipment(service, shipment("shp-a", "ups-in-transit", order_number="W-A", aliases=["RMA-8"]))
    taken = shipment("shp-b", "fedex-in-transit", order_number="W-B", aliases=["rma-8"])
    assert (await put_shipment(service, taken))[0] == 409
    assert (await put_shipment(service, shipment("shp-a", "ups-in-transit", order_number="W-A",
                                                 aliases=["RMA-8", "shp-a"])))[0] == 200
    await put_shipment(service, shipment("shp-a", "ups-in-transit", order_number="W-A", aliases=[]))
    status, _ = await put_shipment(service, taken)
    assert status == 201
    assert [s["shipment_id"] for s in (await track_ok(service, "RMA-8"))["shipments"]] == ["shp-b"]


async def test_an_order_number_in_other_case_is_a_409_naming_the_order(service: Any) -> None:
    """w-1 beside the order W-1 (registered, or known through a shipment): 409 naming W-1."""
    assert (await put_order(service, {"order_number": "W-1"}))[0] == 201
    status, answer = await put_order(service, {"order_number": "w-1"})
    assert (status, answer["error"]["details"]["conflicts_with"]) == (409, "W-1")
    status, answer = await put_shipment(service, shipment("shp-c", "ups-in-transit", order_number="w-1"))
    assert (status, answer["error"]["details"]["field"]) == (409, "order_number")
    assert "'W-1'" in answer["error"]["message"]
    await put_shipment(service, shipment("shp-d", "ups-in-transit", order_number="S-2"))
    status, answer = await put_order(service, {"order_number": "s2"})
    assert (status, answer["error"]["details"]["conflicts_with"]) == (409, "S-2")
    assert (await put_shipment(service, shipment("shp-e", "ups-in-transit", order_number="W-1")))[0] == 201


async def test_rows_of_one_import_that_collide_are_refused_by_line(service: Any) -> None:
    """Within one import, a later row of another shipment taking a held key is a row error naming it."""
    rows = [
        shipment("imp-a", "ups-in-transit", order_number="W-IA", aliases=["RMA-IA"]),
        shipment("imp-b", "fedex-in-transit", order_number="W-IB", aliases=["rma-ia"]),
        shipment("IMP-A", "usps-in-transit", order_number="W-IC"),
        shipment("imp-d", "ups-label-5d", order_number="w-ia"),
    ]
    status, report = await import_body(
        service, b"\n".join(orjson.dumps(r) for r in rows), "application/x-ndjson"
    )
    assert status == 200
    assert (report["accepted"], report["rejected"]) == (1, 3)
    assert [(e["line"], e["errors"][0]["field"], e["errors"][0]["code"], e["errors"][0]["conflicts_with"])
            for e in report["errors"]] == [
        (2, "aliases.0", "identifier_conflict", "imp-a"),
        (3, "shipment_id", "identifier_conflict", "imp-a"),
        (4, "order_number", "identifier_conflict", "W-IA"),
    ]
    assert [s["shipment_id"] for s in (await track_ok(service, "RMA-IA"))["shipments"]] == ["imp-a"]


# -- dates: a plain date is the end of that day in the business time zone -------------


async def test_a_plain_ship_by_date_is_the_end_of_that_day_in_the_business_zone(service_with: Any) -> None:
    """promised_ship_by "2026-11-23" in America/Chicago is 2026-11-23T23:59:59.999999-06:00, in UTC."""
    client = await service_with(business_timezone="America/Chicago")
    status, stored = await put_order(client, {"order_number": "W-D1", "promised_ship_by": "2026-11-23"})
    assert status == 201
    assert datetime.fromisoformat(stored["promised_ship_by"]) == datetime(
        2026, 11, 23, 23, 59, 59, 999999, tzinfo=ZoneInfo("America/Chicago")
    )
    status, stored = await put_order(
        client, {"order_number": "W-D2", "promised_ship_by": "2026-11-23T10:00:00-05:00"}
    )
    assert stored["promised_ship_by"] == "2026-11-23T15:00:00Z"  # a time keeps its own offset


async def test_a_plain_ship_by_date_defaults_to_utc_and_drives_ship_by_missed(service: Any) -> None:
    """Default zone UTC; yesterday's date is missed (flag), today's is not yet."""
    status, stored = await put_order(service, {"order_number": "W-D3", "promised_ship_by": "2026-11-23"})
    assert (status, stored["promised_ship_by"]) == (201, "2026-11-23T23:59:59.999999Z")
    today = datetime.now(UTC).date()
    yesterday = (today - timedelta(days=1)).isoformat()
    await put_order(service, {"order_number": "W-LATE", "promised_ship_by": yesterday})
    await put_order(service, {"order_number": "W-SOON", "promised_ship_by": today.isoformat()})
    assert "ship_by_missed" in (await track_ok(service, "W-LATE"))["flags"]
    assert "ship_by_missed" not in (await track_ok(service, "W-SOON"))["flags"]


async def test_times_past_year_9999_in_utc_are_a_422_not_a_500(service_with: Any) -> None:
    """A time or plain date that lands past 9999-12-31 in UTC is a 422 naming the field."""
    client = await service_with(business_timezone="America/Chicago")
    body = shipment("shp-far", "fedex-in-transit", label_created_at="9999-12-31T23:59:59-14:00")
    status, answer = await put_shipment(client, body)
    assert (status, _fields(answer)) == (422, ["label_created_at"])
    status, answer = await put_order(client, {"order_number": "W-FAR", "promised_ship_by": "9999-12-31"})
    assert (status, _fields(answer)) == (422, ["promised_ship_by"])


def test_the_business_zone_must_be_an_iana_name() -> None:
    """TRACKSVC_BUSINESS_TIMEZONE is validated: an unknown name is refused at start."""
    assert Settings(business_timezone="America/Chicago").business_zone == ZoneInfo("America/Chicago")
    assert Settings().business_zone.utcoffset(None) == timedelta(0)
    for bad in ("Mars/Olympus", "../../etc/passwd", ""):
        with pytest.raises(ValidationError, match="IANA"):
            Settings(business_timezone=bad)


# -- the property: any identifier PUT accepts, GET /v1/track finds --------------------

#: Any text, weighted towards what breaks lookups: invisible, spacing, case-folding and
#: compatibility characters, URL and reference punctuation.
TRICKY = st.sampled_from(
    list("\u200b\u202e\ufeff\u00a0\u3000\u2028\n\t\x00")  # invisible, spacing, control
    + list("#-.()/ ?%&+=@'\"\\{}")  # reference and URL punctuation
    + list("ß\ufb01\u0130\u0131\uff21\uff11\u0301\u01c5")  # case-folding, compatibility, combining
)
IDENTIFIERS = st.one_of(
    # Anything at all (mostly refused).
    st.text(st.one_of(TRICKY, st.characters(exclude_categories=("Cs",)), st.characters(codec="ascii")),
            max_size=70),
    # Printable text of every script, mark, symbol and space (mostly accepted).
    st.text(st.one_of(TRICKY, st.characters(categories=("L", "M", "N", "P", "S", "Zs"))),
            min_size=1, max_size=66),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sid=IDENTIFIERS, alias=IDENTIFIERS)
async def test_any_identifier_put_accepts_is_found_by_the_same_text(
    service: Any, redis_client: aioredis.Redis, sid: str, alias: str
) -> None:
    """For any text: if PUT accepts it as a shipment id (and alias), GET /v1/track finds that shipment."""
    assume(sid not in ("", ".", ".."))  # no segment, or one URLs resolve away: not this route
    await redis_client.flushall()
    body = {**shipment("x", "ups-in-transit", order_number="W-PROP", aliases=[alias]), "shipment_id": sid}
    status, answer = await _put_shipment_at(service, sid, body)
    assert status in (201, 409, 422), answer
    event(f"PUT answered {status}")
    if status != 201:
        return
    stored = answer["shipment_id"]
    for text in (sid, alias):
        response = await service.get(_url("/v1/track/", text), headers=AGENT)
        found = await response.json()
        assert response.status == 200, (text, found)
        assert stored in [s["shipment_id"] for s in found["shipments"]], (text, found)

