"""
Warehouse-list benchmark: the first page of stalled labels with 1,000,000 registered shipments.

Run from the repository root::

    python -m bench.stalled_labels               # or: python bench/stalled_labels.py
    python -m bench.stalled_labels --shipments 1000000 --runs 30

A private ``redis-server`` (AOF on) is loaded with ``--shipments`` label-only
shipments in the registry's own key layout (``tracksvc.registry.store``: one
record per ``shipment_key``, the overall and per-origin unscanned-label
indexes), label times spread over the last 60 days across 10 origins. The
loader writes raw pipelined commands (packed by hiredis) so a million rows
take seconds (``appendfsync everysec`` and no AOF rewrite while loading,
``always`` again before measuring); reference keys are not written, the list does not read them.

Then, over real HTTP against the service (``create_app``) on loopback,
median of ``--runs`` requests each: ``GET /v1/labels/stalled`` first page
(limit 100, the default), the same for one origin, a page deep in the list
(by cursor, half-way), and the first page as CSV. Baselines measured in the
same run: one bare ``ZRANGEBYSCORE ... LIMIT 0 101`` round trip, and that
plus the pipelined GET of the 100 records (what the route must read).
Goal: first page <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # ``python bench/stalled_labels.py``
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import hiredis  # noqa: E402
import orjson  # noqa: E402

from bench.registry_common import WAREHOUSE_KEY, Stopwatch, median_ms, p90_ms, stack  # noqa: E402
from carriers.sandbox.scenarios import ups_number  # noqa: E402
from tracksvc.core.redis import redis_client  # noqa: E402
from tracksvc.domain.records import ShipmentRecord  # noqa: E402
from tracksvc.registry.store import _encode_cursor, shipment_key, unscanned_key  # noqa: E402

GOAL_MS = 50.0
ORIGINS = [f"DC{i:02d}" for i in range(10)]
DISTINCT_NUMBERS = 20_000
BATCH = 10_000


class RawPipe:
    """Mass insertion: RESP packed by hiredis and written while the replies are read and checked."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.sent = 0

    async def send(self, commands: list[tuple[str | bytes | float, ...]]) -> None:
        """Write commands without waiting for their replies."""
        # hiredis's stub types the command as a 1-tuple; any length is packed.
        self.writer.write(b"".join(hiredis.pack_command(c) for c in commands))  # type: ignore[arg-type]
        self.sent += len(commands)
        await self.writer.drain()

    async def replies(self, expected: asyncio.Future[int]) -> None:
        """Read replies until ``expected`` (set when writing is done) have come; raise on an error."""
        parser, received = hiredis.Reader(), 0
        while not expected.done() or received < expected.result():
            parser.feed(await self.reader.read(1 << 20))
            while (reply := parser.gets()) is not False:
                if isinstance(reply, hiredis.ReplyError):
                    raise RuntimeError(f"redis refused a write: {reply}")
                received += 1


async def load(port: int, shipments: int, now: float) -> float:
    """Write ``shipments`` label-only records and their index entries; seconds taken."""
    numbers = [ups_number(2_000_000 + i) for i in range(DISTINCT_NUMBERS)]
    template = ShipmentRecord.model_validate({
        "shipment_id": "x", "carrier": "ups", "tracking_number": numbers[0],
        "label_created_at": datetime.fromtimestamp(now, UTC), "origin": ORIGINS[0], "order_number": "W0",
    }).model_dump(mode="json")
    rng = random.Random(3)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    pipe = RawPipe(reader, writer)
    expected: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    with Stopwatch() as watch:
        replies = asyncio.create_task(pipe.replies(expected))
        for start in range(0, shipments, BATCH):
            sets: list[tuple[str | bytes | float, ...]] = []
            overall: list[str | float] = []
            by_origin: dict[str, list[str | float]] = {o: [] for o in ORIGINS}
            for i in range(start, min(start + BATCH, shipments)):
                sid = f"shp-{i:07d}"
                ts = now - rng.randrange(3_600, 60 * 86_400)
                origin = ORIGINS[i % len(ORIGINS)]
                record = {**template, "shipment_id": sid, "order_number": f"W{i:08d}",
                          "tracking_number": numbers[i % DISTINCT_NUMBERS], "origin": origin,
                          "label_created_at": datetime.fromtimestamp(ts, UTC).isoformat()}
                sets.append(("SET", shipment_key(sid), orjson.dumps(record)))
                overall += [ts, sid]
                by_origin[origin] += [ts, sid]
            zadds: list[tuple[str | bytes | float, ...]] = [("ZADD", unscanned_key(), *overall)]
            zadds += [("ZADD", unscanned_key(o), *m) for o, m in by_origin.items() if m]
            await pipe.send(sets + zadds)
            if replies.done():  # an error reply: stop writing
                break
        expected.set_result(pipe.sent)
        await replies
    writer.close()
    await writer.wait_closed()
    return watch.elapsed_s


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def _get(session: aiohttp.ClientSession, url: str, **params: str) -> tuple[float, bytes, str | None]:
    started = time.perf_counter()
    async with session.get(url, params=params) as response:
        body = await response.read()
        assert response.status == 200, body[:500]
        cursor = response.headers.get("X-Next-Cursor")
    return time.perf_counter() - started, body, cursor


async def run(shipments: int, runs: int) -> float:
    """Load, measure, print; returns the first-page median in ms."""
    now = time.time()
    async with stack() as env:
        client = redis_client(env.redis.url)
        # Loading is not what is measured: fsync once a second while loading,
        # then back to the tests' and demo's "always" before any timing.
        settings = {k: await client.config_get(k) for k in ("appendfsync", "auto-aof-rewrite-percentage")}
        await client.config_set("appendfsync", "everysec")
        await client.config_set("auto-aof-rewrite-percentage", "0")
        load_s = await load(env.redis.port, shipments, now)
        for values in settings.values():
            for name, value in values.items():
                await client.config_set(str(name), str(value))
        total = await client.zcard(unscanned_key())
        assert total == shipments, total
        halfway: Any = await client.zrange(unscanned_key(), total // 2, total // 2, withscores=True)
        halfway_sid, halfway_score = halfway[0]
        deep_cursor = _encode_cursor(float(halfway_score), _text(halfway_sid))
        before = now - env.settings.tender_grace_hours * 3600

        samples: dict[str, list[float]] = {k: [] for k in (
            "zrange", "zrange_get", "first", "origin", "deep", "csv")}
        url = f"{env.service_url}/v1/labels/stalled"
        headers = {"Authorization": f"Bearer {WAREHOUSE_KEY}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            for _ in range(5):  # warm up: connections, pools, code paths
                await _get(session, url)
            for _ in range(runs):
                with Stopwatch() as watch:
                    page = await client.zrangebyscore(unscanned_key(), "-inf", before, start=0, num=101)
                samples["zrange"].append(watch.elapsed_s)
                with Stopwatch() as watch:
                    page = await client.zrangebyscore(unscanned_key(), "-inf", before, start=0, num=101)
                    async with client.pipeline(transaction=False) as pipe:
                        for sid in page[:100]:
                            pipe.get(shipment_key(_text(sid)))
                        records = await pipe.execute()
                samples["zrange_get"].append(watch.elapsed_s)
                assert len(records) == 100
                elapsed, body, _ = await _get(session, url)
                samples["first"].append(elapsed)
                labels = orjson.loads(body)["labels"]
                assert len(labels) == 100
                elapsed, _, _ = await _get(session, url, origin=ORIGINS[3])
                samples["origin"].append(elapsed)
                elapsed, body, _ = await _get(session, url, cursor=deep_cursor)
                samples["deep"].append(elapsed)
                assert orjson.loads(body)["labels"][0]["shipment_id"] > "", body[:200]
            async with aiohttp.ClientSession(headers={**headers, "Accept": "text/csv"}) as csv_session:
                for _ in range(runs):
                    elapsed, body, _ = await _get(csv_session, url, limit="100")
                    samples["csv"].append(elapsed)
                    assert body.count(b"\n") == 101
        oldest_first = [label["label_created_at"] for label in labels]
        assert oldest_first == sorted(oldest_first)
        await client.aclose()

    first = median_ms(samples["first"])
    zrange = median_ms(samples["zrange"])
    print(f"stalled labels, {shipments:,} registered label-only shipments "
          f"(loaded in {load_s:.1f} s, {shipments / load_s:,.0f} rows/s), {runs} runs each, loopback")
    rows = [
        ("baseline: bare ZRANGEBYSCORE LIMIT 0 101", "zrange"),
        ("baseline: ZRANGEBYSCORE + GET 100 records", "zrange_get"),
        ("GET /v1/labels/stalled first page (100)", "first"),
        ("  same, one origin of 10", "origin"),
        ("  same, half-way down by cursor", "deep"),
        ("  first page as CSV", "csv"),
    ]
    for name, key in rows:
        print(f"  {name:<44} median {median_ms(samples[key]):7.2f} ms   p90 {p90_ms(samples[key]):7.2f} ms"
              f"   x{median_ms(samples[key]) / zrange:6.1f} bare ZRANGEBYSCORE")
    print(f"  first page {first:.2f} ms (goal <= {GOAL_MS:g} ms): {'PASS' if first <= GOAL_MS else 'MISS'}")
    return first


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m bench.stalled_labels``."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shipments", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args(argv)
    first = asyncio.run(run(args.shipments, args.runs))
    return 0 if first <= GOAL_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
