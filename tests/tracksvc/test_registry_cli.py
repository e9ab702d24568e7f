"""
``tracksvc import FILE`` and ``tracksvc stalled`` against the test Redis: the main paths as the
real command (``python -m tracksvc``), the rest through the same ``main()`` in-process.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import shlex
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
import redis.asyncio as aioredis

from carriers.sandbox.scenarios import ups_number
from tests.conftest import ON_CLUSTER, async_test_client
from tests.tracksvc.processes import clean_env, run_tracksvc
from tests.tracksvc.registry_helpers import hours_ago
from tracksvc.api.routes.track import STALLED_CSV_COLUMNS
from tracksvc.cli.main import main
from tracksvc.dev.redis_server import RedisServer, free_port
from tracksvc.domain.records import ShipmentRecord
from tracksvc.registry.store import Registry, unscanned_key

ROOT = Path(__file__).resolve().parents[2]


async def tracksvc(redis_url: str, *args: str, grace_hours: float | None = None) -> tuple[int, str, str]:
    """Run ``python -m tracksvc ARGS``; its exit code, stdout and stderr."""
    env = clean_env(TRACKSVC_REDIS_URL=redis_url, TRACKSVC_REDIS_CLUSTER=str(ON_CLUSTER).lower())
    if grace_hours is not None:
        env["TRACKSVC_TENDER_GRACE_HOURS"] = str(grace_hours)
    return await run_tracksvc(*args, env=env)


def rows(count: int, start: int = 0, **fields: Any) -> list[dict[str, Any]]:
    """Good shipment rows (label printed 3 days ago at DAL1)."""
    return [
        {"shipment_id": f"cli-{i}", "order_number": f"W-CLI{i}", "carrier": "ups",
         "tracking_number": ups_number(300_000 + i), "label_created_at": hours_ago(72 + i), "origin": "DAL1",
         **fields}
        for i in range(start, start + count)
    ]


def write_ndjson(path: Path, items: list[dict[str, Any] | str]) -> Path:
    path.write_bytes(b"".join(
        (i.encode() if isinstance(i, str) else orjson.dumps(i)) + b"\n" for i in items
    ))
    return path


async def test_import_ndjson_file(
    tmp_path: Path, redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    """Every row lands in the registry; the report is printed; a progress bar goes to stderr; exit 0."""
    path = write_ndjson(tmp_path / "labels.ndjson", rows(2_500))
    code, out, err = await tracksvc(redis_server.url, "import", str(path))
    assert code == 0, err
    assert out.startswith("labels.ndjson: 2500 rows imported, 0 rejected")
    assert "2500/2500" in err  # tqdm's bar reached the end
    assert await redis_client.zcard(unscanned_key("DAL1")) == 2_500
    resolution = await Registry(redis_client).resolve("W-CLI2499")
    assert resolution is not None
    assert [s.shipment_id for s in resolution.shipments] == ["cli-2499"]


async def test_import_with_bad_rows_lists_them_and_exits_1(
    tmp_path: Path, redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    """Rejected rows are listed by line; the good rows are kept; the exit code is 1."""
    good = rows(2)
    path = write_ndjson(tmp_path / "mixed.jsonl", [good[0], "{oops", {**good[1], "carrier": "dhl"}, good[1]])
    code, out, _ = await tracksvc(redis_server.url, "import", "--no-progress", str(path))
    assert code == 1
    assert "2 rows imported, 2 rejected" in out
    assert "line 2: (row):" in out
    assert "line 3: carrier:" in out
    assert await redis_client.zcard(unscanned_key()) == 2


async def test_import_csv_by_extension_and_json_report(
    tmp_path: Path, redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    """A .csv file is read as CSV; --json prints the same report as the HTTP route."""
    path = tmp_path / "labels.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["shipment_id", "order_number", "carrier", "tracking_number", "label_created_at",
                         "aliases"])
        writer.writerow(["cli-c1", "W-C1", "ups", ups_number(310_001), hours_ago(60), "RMA-C1|RMA-C2"])
        writer.writerow(["cli-c2", "W-C2", "ups", ups_number(310_002), "not a time", ""])
    code, out, _ = await tracksvc(redis_server.url, "import", "--json", "--no-progress", str(path))
    assert code == 1
    report = orjson.loads(out)
    assert (report["accepted"], report["rejected"]) == (1, 1)
    assert report["errors"][0]["line"] == 3
    assert report["errors"][0]["errors"][0]["field"] == "label_created_at"
    resolution = await Registry(redis_client).resolve("RMA-C2")
    assert resolution is not None


async def _seed_labels(redis_client: aioredis.Redis) -> None:
    registry = Registry(redis_client)
    await registry.put_shipments([ShipmentRecord.model_validate(r) for r in rows(5)])
    await registry.put_shipments([ShipmentRecord.model_validate(r) for r in rows(1, start=5, origin="OAK1")])
    fresh = rows(1, start=6)[0]
    await registry.put_shipments([ShipmentRecord.model_validate({**fresh, "label_created_at": hours_ago(1)})])


async def test_stalled_prints_a_table_oldest_first(
    redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    """The table has a header line and one line per label, oldest first; fresh labels are left out."""
    await _seed_labels(redis_client)
    code, out, err = await tracksvc(redis_server.url, "stalled")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["shipment", "order", "carrier"]
    assert [line.split()[0] for line in lines[1:]] == ["cli-5", "cli-4", "cli-3", "cli-2", "cli-1", "cli-0"]
    assert ups_number(300_005) in lines[1]


async def test_stalled_csv_page_and_its_cursor(
    redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    """--csv prints the HTTP route's CSV; with more to come, the next command is on stderr."""
    await _seed_labels(redis_client)
    code, out, err = await tracksvc(redis_server.url, "stalled", "--csv", "--limit", "4")
    assert code == 0, err
    table = list(csv.reader(io.StringIO(out)))
    assert tuple(table[0]) == STALLED_CSV_COLUMNS
    assert [row[0] for row in table[1:]] == ["cli-5", "cli-4", "cli-3", "cli-2"]
    next_page = "tracksvc: More labels follow; the next page is: tracksvc stalled --limit 4 --csv --cursor "
    assert err.startswith(next_page)
    command = shlex.split(err.split("the next page is: ")[1])  # what a person would paste
    code, out, _ = await tracksvc(redis_server.url, *command[1:])
    assert code == 0
    assert [row[0] for row in list(csv.reader(io.StringIO(out)))[1:]] == ["cli-1", "cli-0"]


# -- in-process: the same main(), no interpreter start per case ----------------


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``tracksvc ARGS`` in-process: exit code, stdout, stderr."""
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse refusing an argument
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def seed_labels() -> None:
    """The same labels as above, written through the registry."""
    async def write() -> None:
        client = async_test_client(os.environ["TRACKSVC_REDIS_URL"])
        await _seed_labels(client)
        await client.aclose()

    asyncio.run(write())


def test_import_format_flag_overrides_the_extension(
    tmp_path: Path, cli_env: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file whose name says nothing needs --format (exit 2 without it, with the hint)."""
    path = write_ndjson(tmp_path / "export.txt", rows(3))
    code, _, err = run(capsys, "import", str(path))
    assert code == 2
    assert "--format" in err
    code, out, _ = run(capsys, "import", "--format", "ndjson", "--no-progress", str(path))
    assert code == 0
    assert "3 rows imported" in out
    assert cli_env.zcard(unscanned_key()) == 3


def test_import_of_a_missing_file_or_unreachable_redis_says_so(
    tmp_path: Path, cli_env: redis.Redis, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file that is not there and Redis not answering are exit 2; both say why, naming the setting."""
    code, _, err = run(capsys, "import", str(tmp_path / "nope.csv"))
    assert code == 2
    assert "Cannot read" in err
    path = write_ndjson(tmp_path / "labels.ndjson", rows(1))
    monkeypatch.setenv("TRACKSVC_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    code, _, err = run(capsys, "import", "--no-progress", str(path))
    assert code == 2
    assert "not reachable" in err
    assert "labels.ndjson was not imported: check TRACKSVC_REDIS_URL." in err
    code, _, err = run(capsys, "stalled")
    assert code == 2
    assert "so the list could not be read: check TRACKSVC_REDIS_URL." in err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--origin", "OAK1"], ["cli-5"]),
        (["--older-than-hours", "75"], ["cli-5", "cli-4", "cli-3"]),
        (["--older-than-hours", "0", "--origin", "DAL1"],
         ["cli-4", "cli-3", "cli-2", "cli-1", "cli-0", "cli-6"]),
        (["--limit", "2"], ["cli-5", "cli-4"]),
    ],
)
def test_stalled_filters(
    cli_env: redis.Redis, capsys: pytest.CaptureFixture[str], args: list[str], expected: list[str]
) -> None:
    """--origin, --older-than-hours and --limit narrow the list."""
    seed_labels()
    code, out, err = run(capsys, "stalled", "--csv", *args)
    assert code == 0, err
    assert [row[0] for row in list(csv.reader(io.StringIO(out)))[1:]] == expected


def test_stalled_cursor_continues_and_grace_comes_from_the_environment(
    cli_env: redis.Redis, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The printed cursor gives the next page; TRACKSVC_TENDER_GRACE_HOURS is the default age."""
    seed_labels()
    _, _, err = run(capsys, "stalled", "--csv", "--limit", "4")
    cursor = err.strip().split("--cursor ")[1]
    code, out, _ = run(capsys, "stalled", "--csv", "--cursor", cursor)
    assert code == 0
    assert [row[0] for row in list(csv.reader(io.StringIO(out)))[1:]] == ["cli-1", "cli-0"]
    monkeypatch.setenv("TRACKSVC_TENDER_GRACE_HOURS", "74.5")
    _, out, _ = run(capsys, "stalled", "--csv")
    assert [row[0] for row in list(csv.reader(io.StringIO(out)))[1:]] == ["cli-5", "cli-4", "cli-3"]


@pytest.mark.parametrize(
    "args", [["--limit", "0"], ["--older-than-hours", "-1"], ["--cursor", "garbage"], ["--limit", "x"]]
)
def test_stalled_bad_arguments_exit_2(
    cli_env: redis.Redis, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    """Arguments that make no sense are exit 2 with a message, never a traceback."""
    code, _, err = run(capsys, "stalled", *args)
    assert code == 2
    assert "Traceback" not in err
    assert err.strip()


def test_stalled_with_nothing_waiting_says_so(
    cli_env: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty list is a sentence, not an empty table; an origin no unscanned label names says so."""
    code, out, _ = run(capsys, "stalled")
    assert code == 0
    assert out == "No label printed more than 48 hours ago is waiting for a carrier scan.\n"
    code, out, _ = run(capsys, "stalled", "--origin", "DAL9")
    assert code == 0
    assert out == (
        "No label from origin DAL9 is waiting for a carrier scan, whatever its age: no unscanned "
        "label names that origin, so check its spelling (origins match exactly).\n"
    )
    seed_labels()
    code, out, _ = run(capsys, "stalled", "--origin", "DAL1", "--older-than-hours", "1000")
    assert code == 0
    assert out == (
        "No label from origin DAL1 printed more than 1000 hours ago is waiting for a carrier scan.\n"
    )
