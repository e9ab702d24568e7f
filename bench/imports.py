"""
Import benchmark: rows per second into the registry, against raw pipelined Redis writes.

Run from the repository root::

    python -m bench.imports                # or: python bench/imports.py
    python -m bench.imports --rows 100000

One NDJSON file of ``--rows`` distinct shipments (each with an order number
and an alias) is loaded into a private ``redis-server`` (AOF,
``appendfsync always``, as the tests and the demo run it) three ways,
flushing Redis before each:

1. ``POST /v1/shipments/import`` on the real service, the file streamed in
   64 KiB chunks over loopback HTTP;
2. ``tracksvc import FILE`` as a subprocess (interpreter start included),
   and the same importer in-process (``import_lines`` on the file);
3. the baseline: one ``SET shipment-key row-json`` per row, pipelined 1,000
   at a time, nothing validated or indexed.

A registered row is one record, about six reference entries (shipment id,
tracking number, alias and order number, each as typed and without dashes),
the order's shipment set and two label-index entries, after validation
(format and check digit) and a read of the previous record: printed with
the ratio to the baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # ``python bench/imports.py``
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import orjson  # noqa: E402

from bench.registry_common import INGEST_KEY, Stopwatch, stack  # noqa: E402
from carriers.sandbox.scenarios import ups_number  # noqa: E402
from tracksvc.core.redis import redis_client  # noqa: E402
from tracksvc.registry.importer import ImportFormat, import_lines  # noqa: E402
from tracksvc.registry.store import Registry, shipment_key  # noqa: E402


def write_rows(path: Path, rows: int) -> list[tuple[str, bytes]]:
    """Write the NDJSON file; return (shipment id, line) pairs for the baseline."""
    pairs = []
    with path.open("wb") as handle:
        for i in range(rows):
            sid = f"bench-{i:07d}"
            line = orjson.dumps({
                "shipment_id": sid, "order_number": f"W-B{i:07d}", "carrier": "ups",
                "tracking_number": ups_number(1_000_000 + i), "label_created_at": "2026-11-01T08:00:00Z",
                "origin": ("DAL1", "MSP1", "OAK1")[i % 3], "aliases": [f"RMA-{i:07d}"],
            })
            handle.write(line + b"\n")
            pairs.append((sid, line))
    return pairs


async def _flush(redis_url: str) -> None:
    client = redis_client(redis_url)
    await client.flushall()
    await client.aclose()


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 16):
            yield chunk


async def via_http(service_url: str, path: Path) -> tuple[float, int]:
    """Seconds and accepted rows for the HTTP route."""
    headers = {"Authorization": f"Bearer {INGEST_KEY}", "Content-Type": "application/x-ndjson"}
    timeout = aiohttp.ClientTimeout(total=3600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        with Stopwatch() as watch:
            async with session.post(f"{service_url}/v1/shipments/import", data=_chunks(path),
                                    headers=headers) as response:
                report = await response.json()
                assert response.status == 200, report
    return watch.elapsed_s, int(report["accepted"])


def via_cli(redis_url: str, path: Path) -> tuple[float, int]:
    """Seconds and accepted rows for ``tracksvc import`` (a subprocess)."""
    env = {**os.environ, "TRACKSVC_REDIS_URL": redis_url}
    with Stopwatch() as watch:
        done = subprocess.run(
            [sys.executable, "-m", "tracksvc", "import", "--json", "--no-progress", str(path)],
            cwd=ROOT, env=env, capture_output=True, check=False,
        )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return watch.elapsed_s, int(orjson.loads(done.stdout)["accepted"])


async def via_importer(redis_url: str, path: Path) -> tuple[float, int]:
    """Seconds and accepted rows for the importer called in-process (no interpreter start)."""
    client = redis_client(redis_url)

    async def lines() -> AsyncIterator[bytes]:
        with path.open("rb") as handle:
            for line in handle:
                yield line.rstrip(b"\n")

    with Stopwatch() as watch:
        report = await import_lines(lines(), ImportFormat.ndjson, Registry(client))
    await client.aclose()
    return watch.elapsed_s, report.accepted


async def baseline(redis_url: str, pairs: list[tuple[str, bytes]]) -> tuple[float, int]:
    """Seconds for raw pipelined SETs of the same rows."""
    client = redis_client(redis_url)
    with Stopwatch() as watch:
        for start in range(0, len(pairs), 1000):
            async with client.pipeline(transaction=False) as pipe:
                for sid, line in pairs[start:start + 1000]:
                    pipe.set(shipment_key(sid), line)
                await pipe.execute()
    await client.aclose()
    return watch.elapsed_s, len(pairs)


async def run(rows: int) -> None:
    """Measure every path on the same file and print rows per second."""
    with tempfile.TemporaryDirectory(prefix="tracksvc-bench-") as tmp:
        path = Path(tmp) / "shipments.ndjson"
        pairs = write_rows(path, rows)
        size_mb = path.stat().st_size / 1e6
        async with stack() as env:
            url = env.redis.url
            results: dict[str, tuple[float, int]] = {}
            await _flush(url)
            results["baseline: raw pipelined SET per row"] = await baseline(url, pairs)
            await _flush(url)
            results["POST /v1/shipments/import (HTTP)"] = await via_http(env.service_url, path)
            await _flush(url)
            results["tracksvc import FILE (subprocess)"] = await asyncio.to_thread(via_cli, url, path)
            await _flush(url)
            results["importer in-process (CLI path)"] = await via_importer(url, path)
    base_rate = rows / results["baseline: raw pipelined SET per row"][0]
    print(f"import of {rows:,} rows ({size_mb:.1f} MB NDJSON), private redis-server with AOF, loopback")
    for name, (seconds, accepted) in results.items():
        assert accepted == rows, (name, accepted)
        rate = rows / seconds
        print(f"  {name:<38} {seconds:7.2f} s  {rate:9,.0f} rows/s  ratio to baseline {rate / base_rate:.3f}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m bench.imports``."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args(argv)
    asyncio.run(run(args.rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
