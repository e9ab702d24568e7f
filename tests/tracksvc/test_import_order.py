"""
Imports apply in order (issue 8, item 11), CSV headers never crash (item 2), and an import cut by
a Redis stall says how many rows were committed (item 4): HTTP and the CLI, against real Redis.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
import redis.asyncio as aioredis

from carriers.sandbox.scenarios import ups_number
from tests.conftest import AGENT, INGEST, Sandbox
from tests.contract import assert_matches
from tests.tracksvc.registry_helpers import import_body, put_order, put_shipment, shipment, track_ok
from tracksvc.app import create_app
from tracksvc.cli.main import main
from tracksvc.core.settings import Settings
from tracksvc.dev.redis_server import RedisServer
from tracksvc.registry.importer import BATCH_ROWS
from tracksvc.registry.store import REFRESH_DUE, Registry, shipment_key

ROOT = Path(__file__).resolve().parents[2]
LABEL_TIME = "2026-11-01T08:00:00Z"


def row(i: int, **fields: Any) -> dict[str, Any]:
    """One good import row for a fresh UPS number."""
    data: dict[str, Any] = {
        "shipment_id": f"ord-{i}", "order_number": f"W-O{i}", "carrier": "ups",
        "tracking_number": ups_number(400_000 + i), "label_created_at": LABEL_TIME,
    }
    data.update(fields)
    return data


def ndjson(*rows: dict[str, Any]) -> bytes:
    """Rows as NDJSON."""
    return b"".join(orjson.dumps(r) + b"\n" for r in rows)


async def status_of(client: Any, reference: str) -> int:
    """The HTTP status of GET /v1/track/{reference}."""
    response = await client.get(f"/v1/track/{reference}", headers=AGENT)
    assert_matches("/v1/track/{reference}", "get", response.status, await response.json())
    return response.status


async def shipment_ids(client: Any, reference: str) -> list[str]:
    """Shipment ids the agent view of a reference lists."""
    return [s["shipment_id"] for s in (await track_ok(client, reference))["shipments"]]


# -- duplicate rows and moves -------------------------------------------------------


async def test_two_rows_of_one_shipment_in_one_import_apply_in_order(
    service: Any, redis_client: aioredis.Redis
) -> None:
    """The last row's aliases win; the first row's alias stops resolving."""
    body = ndjson(row(1, aliases=["RMA-FIRST"]), row(2), row(1, aliases=["RMA-LAST"]))
    status, report = await import_body(service, body, "application/x-ndjson")
    assert (status, report["accepted"], report["rejected"]) == (200, 3, 0)
    assert await status_of(service, "RMA-FIRST") == 404
    assert await shipment_ids(service, "RMA-LAST") == ["ord-1"]
    stored = await Registry(redis_client).get_shipment("ord-1")
    assert stored is not None
    assert stored.aliases == ["RMA-LAST"]


async def test_rows_moving_a_shipment_between_orders_leave_only_the_last_order(service: Any) -> None:
    """Rows W-O1 -> W-MID -> W-END for one shipment: only W-END resolves and lists it."""
    await import_body(service, ndjson(row(1)), "application/x-ndjson")
    body = ndjson(row(1, order_number="W-MID"), row(1, order_number="W-END"))
    status, report = await import_body(service, body, "application/x-ndjson")
    assert (status, report["accepted"]) == (200, 2)
    assert await shipment_ids(service, "W-END") == ["ord-1"]
    for gone in ("W-O1", "W-MID", "WMID"):
        assert await status_of(service, gone) == 404


async def test_a_shipment_moved_by_put_leaves_its_old_order(service: Any) -> None:
    """The old order keeps its other shipments; with none left it is gone, unless registered as an order."""
    await put_shipment(service, shipment("shp-1", "ups-in-transit", order_number="W-OLD"))
    await put_shipment(service, shipment("shp-2", "fedex-in-transit", order_number="W-OLD"))
    await put_shipment(service, shipment("shp-1", "ups-in-transit", order_number="W-NEW"))
    assert await shipment_ids(service, "W-OLD") == ["shp-2"]
    assert await shipment_ids(service, "W-NEW") == ["shp-1"]
    await put_shipment(service, shipment("shp-2", "fedex-in-transit", order_number="W-NEW"))
    assert await status_of(service, "W-OLD") == 404
    assert await status_of(service, "w old") == 404
    assert await shipment_ids(service, "W-NEW") == ["shp-1", "shp-2"]
    # An order registered as an order stays, as awaiting_shipment, when its last shipment moves away.
    assert (await put_order(service, {"order_number": "W-REG"}))[0] == 201
    await put_shipment(service, shipment("shp-3", "ups-in-transit", order_number="W-REG"))
    await put_shipment(service, shipment("shp-3", "ups-in-transit", order_number="W-NEW"))
    body = await track_ok(service, "W-REG")
    assert (body["status"], body["shipments"]) == ("awaiting_shipment", [])


async def test_a_shipment_moved_by_a_later_import_leaves_its_old_order(service: Any) -> None:
    """Import, then import again with another order: the first order no longer resolves."""
    await import_body(service, ndjson(row(5, order_number="W-I1")), "application/x-ndjson")
    await import_body(service, ndjson(row(5, order_number="W-I2")), "application/x-ndjson")
    assert await status_of(service, "W-I1") == 404
    assert await shipment_ids(service, "W-I2") == ["ord-5"]


async def test_a_shipment_moved_back_makes_its_first_order_resolve_again(service: Any) -> None:
    """W-A -> W-B -> W-A: W-A lists it again, W-B is gone."""
    for order in ("W-A", "W-B", "W-A"):
        await put_shipment(service, shipment("shp-4", "ups-in-transit", order_number=order))
    assert await shipment_ids(service, "W-A") == ["shp-4"]
    assert await status_of(service, "W-B") == 404


# -- CSV headers and undecodable lines: never a 500 -----------------------------------

GOOD_HEADER = b"shipment_id,order_number,carrier,tracking_number,label_created_at"
GOOD_LINE = f"ord-9,W-O9,ups,{ups_number(400_009)},{LABEL_TIME}".encode()


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        (b"shipment_id,order_number\rcarrier,tracking_number,label_created_at\n" + GOOD_LINE, 1,
         "carriage return"),
        (b"shipment_id,order_\xffnumber,carrier,tracking_number,label_created_at\n" + GOOD_LINE, 1, "UTF-8"),
        (b"\n\n" + GOOD_HEADER + b",colour\n" + GOOD_LINE + b",red", 3, "unknown columns ['colour']"),
        (GOOD_HEADER + b",carrier\n" + GOOD_LINE + b",ups", 1, "more than once: ['carrier']"),
        (b"shipment_id,carrier,tracking_number,label_created_at\n" + GOOD_LINE, 1, "['order_number']"),
        (b"," * 70_000 + b"\n" + GOOD_LINE, 1, "longer than"),
    ],
    ids=["bare-cr", "invalid-utf8", "unknown-column", "repeated-column", "missing-column", "overlong"],
)
async def test_a_bad_csv_header_is_a_422_naming_its_line(
    service: Any, body: bytes, line: int, words: str
) -> None:
    """The whole file is refused (nothing written) with a 422 naming the header's line and the problem."""
    status, answer = await import_body(service, body, "text/csv")
    assert status == 422, answer
    assert answer["error"]["code"] == "validation_failed"
    assert answer["error"]["message"].startswith(f"line {line}: the CSV header")
    assert words in answer["error"]["message"]
    assert answer["error"]["details"][0]["line"] == line
    assert await status_of(service, "ord-9") == 404


async def test_undecodable_and_overlong_rows_are_row_errors(service: Any) -> None:
    """Invalid UTF-8 and a too-long line are refused rows with their line numbers, in CSV and NDJSON."""
    csv_body = b"\n".join([GOOD_HEADER, GOOD_LINE, b"ord-\xff,W-X,ups,1Z,2026-11-01T08:00:00Z",
                           b"ord-8,W-O8,ups\r,x,y"])
    status, report = await import_body(service, csv_body, "text/csv")
    assert (status, report["accepted"]) == (200, 1)
    assert [(e["line"], e["errors"][0]["field"]) for e in report["errors"]] == [(3, "(row)"), (4, "(row)")]
    assert "UTF-8" in report["errors"][0]["errors"][0]["message"]
    overlong = b'{"x": "' + b"y" * 70_000 + b'"}'
    undecodable = b'{"shipment_id": "ord-\xff"}'
    nd_body = b"\n".join([orjson.dumps(row(10)), undecodable, overlong, orjson.dumps(row(11))])
    status, report = await import_body(service, nd_body, "application/x-ndjson")
    assert (status, report["accepted"]) == (200, 2)
    assert [e["line"] for e in report["errors"]] == [2, 3]
    assert "UTF-8" in report["errors"][0]["errors"][0]["message"]
    assert "longer than" in report["errors"][1]["errors"][0]["message"]


def test_the_cli_refuses_a_bad_csv_header_with_exit_2(
    tmp_path: Path, cli_env: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """tracksvc import: a header with a bare CR says which line and exits 2, nothing written."""
    path = tmp_path / "labels.csv"
    path.write_bytes(b"shipment_id,order_number\rcarrier\n" + GOOD_LINE + b"\n")
    code = main(["import", "--no-progress", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "line 1: the CSV header" in err
    assert cli_env.dbsize() == 0


# -- a Redis stall mid-import: say what was committed ---------------------------------


def _stall(server: RedisServer) -> None:
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGSTOP)


def _resume(server: RedisServer) -> None:
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGCONT)


async def test_a_redis_stall_mid_import_answers_503_with_the_committed_rows(
    sandbox: Sandbox,
    own_redis: RedisServer,
    make_settings: Callable[..., Settings],
    aiohttp_client: Any,
) -> None:
    """Redis hangs after two batches: 503 registry_unavailable says 2000 rows committed, resume at 2001."""
    client = await aiohttp_client(create_app(make_settings(sandbox.url, redis_url=own_redis.url)))
    look = aioredis.Redis.from_url(own_redis.url)
    last_of_second_batch = f"ord-{2 * BATCH_ROWS - 1}"

    async def body() -> AsyncIterator[bytes]:
        for i in range(3 * BATCH_ROWS):
            if i == 2 * BATCH_ROWS:
                # The second batch's last command (its refresh schedule) has run: stall Redis now.
                for _ in range(2000):
                    if await look.zscore(REFRESH_DUE, last_of_second_batch) is not None:
                        break
                    await asyncio.sleep(0.005)
                _stall(own_redis)
            yield orjson.dumps(row(i)) + b"\n"

    try:
        started = time.monotonic()
        response = await client.post(
            "/v1/shipments/import", data=body(),
            headers={**INGEST, "Content-Type": "application/x-ndjson"},
        )
        answer = await response.json()
        elapsed_s = time.monotonic() - started
    finally:
        _resume(own_redis)
    assert_matches("/v1/shipments/import", "post", response.status, answer)
    assert response.status == 503
    assert response.headers["Retry-After"].isdigit()
    error = answer["error"]
    assert error["code"] == "registry_unavailable"
    assert error["details"] == {"committed_rows": 2000, "rejected_rows": 0, "resume_from_line": 2001}
    assert "2000 rows" in error["message"]
    assert "nothing was written" not in error["message"]
    assert elapsed_s < 30
    stored = await Registry(look).get_shipments([f"ord-{i}" for i in range(2 * BATCH_ROWS)])
    assert all(r is not None for r in stored)  # every row it called committed is there
    await look.aclose()


def test_the_cli_says_how_many_rows_were_committed_when_redis_stalls(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    """tracksvc import: Redis stalls part-way; exit 2 with committed_rows and the line to resume from."""
    path = tmp_path / "labels.ndjson"
    path.write_bytes(ndjson(*(row(i) for i in range(30 * BATCH_ROWS))))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKSVC_")}
    env["TRACKSVC_REDIS_URL"] = own_redis.url
    look = redis.Redis.from_url(own_redis.url)
    process = subprocess.Popen(
        [sys.executable, "-m", "tracksvc", "import", "--no-progress", str(path)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while look.zscore(REFRESH_DUE, f"ord-{BATCH_ROWS - 1}") is None:  # the first batch is in
            assert process.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.001)
        _stall(own_redis)
        out, err = process.communicate(timeout=60)
    finally:
        _resume(own_redis)
        if process.poll() is None:
            process.kill()
            process.wait()
    text = err.decode()
    assert process.returncode == 2, (out, text)
    committed = int(text.split("committed_rows=")[1].split()[0])
    assert committed >= BATCH_ROWS
    assert committed % BATCH_ROWS == 0
    assert f"resume_from_line={committed + 1}" in text
    assert f"{committed} rows before line {committed + 1} were committed" in text
    assert all(look.exists(shipment_key(f"ord-{i}")) for i in range(committed))
    look.close()


async def test_a_put_cut_short_by_redis_never_says_nothing_was_written(
    sandbox: Sandbox,
    own_redis: RedisServer,
    make_settings: Callable[..., Settings],
    aiohttp_client: Any,
) -> None:
    """Redis refusing writes (out of memory) after the read: 503, Retry-After, "send the same PUT again"."""
    client = await aiohttp_client(create_app(make_settings(sandbox.url, redis_url=own_redis.url)))
    admin = aioredis.Redis.from_url(own_redis.url)
    body = shipment("shp-oom", "ups-in-transit", order_number="W-OOM")
    assert (await put_shipment(client, body))[0] == 201
    await admin.config_set("maxmemory", "1")  # reads still answer; every write is refused
    try:
        answers = [
            await put_shipment(client, {**body, "aliases": ["RMA-OOM"]}),
            await put_order(client, {"order_number": "W-OOM"}),
        ]
        response = await client.put("/v1/orders/W-OOM", json={}, headers=INGEST)
        assert (response.status, response.headers["Retry-After"]) == (503, "5")
    finally:
        await admin.config_set("maxmemory", "0")
    for status, answer in answers:
        assert status == 503, answer
        assert answer["error"]["code"] == "registry_unavailable"
        assert "nothing was written" not in answer["error"]["message"]
        assert "send the same PUT again" in answer["error"]["message"]
    assert (await put_shipment(client, {**body, "aliases": ["RMA-OOM"]}))[0] == 200
    assert await shipment_ids(client, "RMA-OOM") == ["shp-oom"]
    await admin.aclose()
