"""
Bounded request bodies: JSON routes read at most TRACKSVC_MAX_BODY_BYTES (413 with
the JSON envelope beyond it, declared or chunked), the import stream any size.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import redis.asyncio as aioredis

from carriers.sandbox.scenarios import ups_number
from tests.conftest import AGENT, INGEST
from tests.contract import assert_matches
from tracksvc.registry.store import unscanned_key

MIB = 1024 * 1024


def padded_batch(size: int) -> bytes:
    """A ``POST /v1/track`` body of exactly ``size`` bytes (a JSON object)."""
    head = b'{"references": ["1ZTRKSVC0100000033"], "pad": "'
    return head + b"x" * (size - len(head) - 2) + b'"}'


async def test_a_2_mib_json_body_is_413_json(service: Any) -> None:
    """A 2 MiB POST /v1/track is refused with 413 body_too_large naming the limit."""
    response = await service.post(
        "/v1/track", data=io.BytesIO(padded_batch(2 * MIB)),
        headers={**AGENT, "Content-Type": "application/json"},
    )
    body = await response.json()
    assert response.status == 413
    assert_matches("/v1/track", "post", 413, body)
    assert body["error"]["code"] == "body_too_large"
    assert str(MIB) in body["error"]["message"]


async def test_a_chunked_body_over_the_limit_is_413(service: Any) -> None:
    """A chunked body (no Content-Length) is cut once it passes the limit: 413, JSON."""

    async def chunks() -> AsyncIterator[bytes]:
        whole = padded_batch(2 * MIB)
        for start in range(0, len(whole), 64 * 1024):
            yield whole[start : start + 64 * 1024]

    response = await service.post(
        "/v1/track", data=chunks(), headers={**AGENT, "Content-Type": "application/json"}
    )
    body = await response.json()
    assert response.status == 413
    assert response.request_info.headers.get("Transfer-Encoding") == "chunked"
    assert body["error"]["code"] == "body_too_large"


async def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read(service: Any) -> None:
    """With Content-Length over the limit, 413 comes back before a byte of the body is sent."""
    reader, writer = await asyncio.open_connection(service.server.host, service.server.port)
    try:
        writer.write(
            b"PUT /v1/orders/W-BIG HTTP/1.1\r\nHost: tracksvc\r\nAuthorization: Bearer ingest-key\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (64 * MIB)
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=5)
    finally:
        writer.close()
    assert status_line.split()[1] == b"413"


async def test_the_limit_is_a_setting(service_with: Callable[..., Any]) -> None:
    """TRACKSVC_MAX_BODY_BYTES sets the limit: just under it is read, just over it is 413."""
    client = await service_with(max_body_bytes=4096)
    headers = {**INGEST, "Content-Type": "application/json"}
    under = await client.put("/v1/orders/W-SMALL", data=padded_batch(4096), headers=headers)
    over = await client.put("/v1/orders/W-SMALL", data=padded_batch(4097), headers=headers)
    over_body = await over.json()
    assert under.status != 413
    assert over.status == 413
    assert_matches("/v1/orders/{order_number}", "put", 413, over_body)
    assert "4096" in over_body["error"]["message"]


async def test_a_5_mib_import_is_still_streamed_through(service: Any, redis_client: aioredis.Redis) -> None:
    """The import takes 5 MiB (with a Content-Length) where a JSON route refuses 2 MiB: every row lands."""
    refused = await service.put(
        "/v1/orders/W-BIG", data=io.BytesIO(padded_batch(2 * MIB)),
        headers={**INGEST, "Content-Type": "application/json"},
    )
    assert refused.status == 413
    # Rows of 2 KiB (trailing spaces are valid JSON): 5 MiB in 2,560 rows.
    rows = [
        orjson.dumps({
            "shipment_id": f"big-{i}", "order_number": f"W-BIG{i}", "carrier": "ups",
            "tracking_number": ups_number(400_000 + i), "label_created_at": "2026-11-01T08:00:00Z",
            "origin": "DAL1",
        }).ljust(2047)
        for i in range(2_560)
    ]
    body = b"\n".join(rows) + b"\n"
    count = len(rows)
    assert len(body) >= 5 * MIB
    response = await service.post(
        "/v1/shipments/import", data=io.BytesIO(body),
        headers={**INGEST, "Content-Type": "application/x-ndjson"},
    )
    report = await response.json()
    assert response.status == 200
    assert_matches("/v1/shipments/import", "post", 200, report)
    assert (report["accepted"], report["rejected"]) == (count, 0)
    assert await redis_client.zcard(unscanned_key()) == count
