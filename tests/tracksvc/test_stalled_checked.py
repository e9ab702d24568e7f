"""
The warehouse list never claims what nobody checked: every row says when a carrier was last
asked (``carrier_checked_at``), scanned, voided and return labels are never listed, the
refresher checks never-checked labels past the grace period first, and the demo's list is
true from its first screen.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import re
import signal
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from carriers.sandbox.scenarios import Scenario, Step
from tests.conftest import WAREHOUSE, Sandbox
from tests.contract import assert_matches
from tests.tracksvc.registry_helpers import (
    SCENARIOS,
    hours_ago,
    now,
    register,
    shipment,
    stalled,
    stalled_ids,
    track_ok,
)
from tracksvc.api.keys import refresher_key
from tracksvc.cli.registry_commands import table
from tracksvc.core.models import TrackingStatus
from tracksvc.dev.demo import READY_LINE
from tracksvc.dev.redis_server import RedisServer, free_port
from tracksvc.dev.seed import all_stories
from tracksvc.registry.store import checked_key

ROOT = Path(__file__).resolve().parents[2]


async def _rows(client: Any, **query: Any) -> dict[str, dict[str, Any]]:
    status, body = await stalled(client, **query)
    assert status == 200, body
    return {row["shipment_id"]: row for row in body["labels"]}


async def test_a_row_says_when_the_carrier_was_last_asked(service: Any) -> None:
    """carrier_checked_at is null before any lookup, and the time of the carrier's answer after one."""
    await register(service, shipment("shp-c1", "ups-label-5d", order_number="W-C1", origin="DAL1"))
    assert (await _rows(service))["shp-c1"]["carrier_checked_at"] is None
    before = now()
    assert (await track_ok(service, "W-C1"))["status"] == "not_tendered"
    row = (await _rows(service))["shp-c1"]  # still never scanned: still listed
    checked = datetime.fromisoformat(row["carrier_checked_at"])
    assert before - timedelta(seconds=1) <= checked <= now()


async def test_the_csv_and_the_cli_table_say_not_yet_checked(service: Any) -> None:
    """A label nobody asked about reads "not yet checked" in the CSV and CLI table; a checked one its time."""
    await register(
        service,
        shipment("shp-n1", "ups-label-5d", order_number="W-N1", origin="DAL1"),
        shipment("shp-n2", "fedex-label-5d", order_number="W-N2", origin="DAL1"),
    )
    await track_ok(service, "W-N2")
    response = await service.get("/v1/labels/stalled", headers={**WAREHOUSE, "Accept": "text/csv"})
    text = await response.text()
    assert_matches("/v1/labels/stalled", "get", 200, text, media="text/csv")
    header, *lines = list(csv.reader(io.StringIO(text)))
    cells = {line[0]: dict(zip(header, line, strict=True)) for line in lines}
    assert cells["shp-n1"]["carrier_checked_at"] == "not yet checked"
    assert datetime.fromisoformat(cells["shp-n2"]["carrier_checked_at"]) <= now()
    _, body = await stalled(service)
    printed = {line.split()[0]: line for line in table(body["labels"]).splitlines()[1:]}
    assert printed["shp-n1"].endswith("not yet checked")
    assert "not yet checked" not in printed["shp-n2"]


async def test_scanned_voided_and_return_labels_are_never_listed(service: Any, sandbox: Sandbox) -> None:
    """Past the grace period and never scanned by tracksvc's records, only the plain label is listed."""
    scanned = SCENARIOS["usps-label-5d"]
    sandbox.state.add(Scenario(
        scanned.carrier, scanned.number, "picked-up", TrackingStatus.in_transit,
        ((Step.label, timedelta(hours=120)), (Step.pickup, timedelta(hours=3))),
    ))
    await register(
        service,
        shipment("shp-plain", "ups-label-5d", order_number="W-P"),
        shipment("shp-scanned", "usps-label-5d", order_number="W-S"),
        shipment("shp-voided", "fedex-label-5d", order_number="W-V", voided=True),
        shipment("shp-return", "ups-label-17d", order_number="W-R", direction="return"),
        shipment("shp-carrier-void", "ups-voided", order_number="W-CV", label_created_at=hours_ago(72)),
    )
    for order in ("W-S", "W-CV", "W-R", "W-P"):
        await track_ok(service, order)
    assert await stalled_ids(service) == ["shp-plain"]
    assert await stalled_ids(service, older_than_hours=0) == ["shp-plain"]


async def test_a_served_cached_answer_writes_no_check_time_again(
    service_with: Any, redis_client: aioredis.Redis
) -> None:
    """The check time is written once per carrier answer: lookups served from the cache write nothing."""
    client = await service_with(answer_cache_ttl_s=0)  # every lookup is built, so learn runs each time
    await register(client, shipment("shp-h1", "ups-label-5d", order_number="W-H1"))
    await track_ok(client, "W-H1")
    assert await redis_client.get(checked_key("shp-h1")) is not None
    await redis_client.delete(checked_key("shp-h1"))
    for _ in range(3):
        body = await track_ok(client, "W-H1")
        assert body["shipments"][0]["freshness"] == "cached"
    assert await redis_client.get(checked_key("shp-h1")) is None


async def test_the_refresher_checks_never_checked_labels_past_the_grace_period_first(
    service_with: Any,
) -> None:
    """One per cycle: the never-checked label past grace, then the one near grace, then the old checked."""
    client = await service_with(refresher_batch_size=1)
    await register(
        client,
        shipment("S-OLD-CHECKED", "ups-label-17d", order_number="W-OC"),
        shipment("S-NEAR", "fedex-label-2h", order_number="W-NR", label_created_at=hours_ago(47)),
        shipment("S-PAST", "usps-label-5d", order_number="W-PS"),
    )
    await track_ok(client, "W-OC")  # an agent looked at it: checked, still listed
    refresher = client.server.app[refresher_key]
    assert (await _rows(client))["S-PAST"]["carrier_checked_at"] is None
    assert (await refresher.run_cycle()).refreshed == ["S-PAST"]
    assert (await _rows(client))["S-PAST"]["carrier_checked_at"] is not None  # the refresher records it
    assert (await refresher.run_cycle()).refreshed == ["S-NEAR"]
    assert (await refresher.run_cycle()).refreshed == ["S-OLD-CHECKED"]


async def _demo_banner(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    banner: list[str] = []
    async with asyncio.timeout(90):
        while READY_LINE not in banner:
            line = await proc.stdout.readline()
            assert line, "the demo exited before it was ready:\n" + "\n".join(banner)
            banner.append(line.decode().rstrip())
    return "\n".join(banner)


async def test_the_demo_list_is_true_from_its_first_screen() -> None:
    """Once the demo is ready every listed label was checked; looking all seeded labels up changes nothing."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKSVC_")}
    env["PYTHONPATH"] = str(ROOT)
    env["TRACKSVC_REFRESHER_ENABLED"] = "false"  # only the demo's own startup check asks the carriers
    server = RedisServer()
    server.start()
    env["TRACKSVC_REDIS_URL"] = server.url
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tracksvc", "demo", "--port", str(port),
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        text = await _demo_banner(proc)
        keys = dict(re.findall(r"^\s+(agent|warehouse)\s+(demo-\S+)$", text, re.MULTILINE))
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession(base_url=base) as session:
            async def listed() -> list[dict[str, Any]]:
                headers = {"Authorization": f"Bearer {keys['warehouse']}"}
                async with session.get("/v1/labels/stalled", headers=headers) as response:
                    assert response.status == 200
                    body = await response.json()
                assert_matches("/v1/labels/stalled", "get", 200, body)
                return list(body["labels"])

            first = await listed()
            assert first
            assert all(row["carrier_checked_at"] is not None for row in first)
            seeded = [s for story in all_stories() for s in story.shipments]
            for record in seeded:  # what an agent would see: every seeded label, asked about
                headers = {"Authorization": f"Bearer {keys['agent']}"}
                async with session.get(f"/v1/track/{record.shipment_id}", headers=headers) as response:
                    assert response.status == 200, await response.text()
            after = await listed()
        assert [r["shipment_id"] for r in after] == [r["shipment_id"] for r in first]
        grace = now() - timedelta(hours=48)
        unscanned_past_grace = [
            s for s in seeded
            if s.direction.value == "outbound" and not s.voided and s.label_created_at < grace
        ]
        assert len(first) < len(unscanned_past_grace)  # the check took off what the carriers scanned
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                async with asyncio.timeout(10):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        server.close()
