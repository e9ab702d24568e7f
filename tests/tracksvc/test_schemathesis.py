"""
The whole HTTP contract under schemathesis: every operation of openapi.yaml,
positive and negative data, sent over real HTTP to the real service
(create_app, the real Redis, the carrier sandbox) on a loopback port.

Checks: ``not_a_server_error``, ``status_code_conformance``,
``content_type_conformance`` and ``response_schema_conformance``, with a
fixed seed, no example database and nothing learned from the answers, so
every run of one command sends the same cases. (Hypothesis also mixes in
string constants of the project's modules loaded so far, so this file alone
and the whole suite send slightly different cases, each the same every run.)

So that the answers past validation are reached too, schemathesis
dictionaries put registered references (created through the API at setup),
the right postal code and UPS push key, sandbox tracking numbers and UPS date
fields (valid and out of range) into part of the generated values, and the
import bodies are CSV and NDJSON documents built from the record's fields,
with the hostile variants an uploader can send (bare carriage returns, invalid
UTF-8, a byte order mark, formula cells, zero-width and bidi characters).
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import schemathesis
import yaml
from aiohttp import web
from hypothesis import strategies as st

from carriers.sandbox.app import create_sandbox_app
from carriers.sandbox.scenarios import CATALOGUE, by_name
from tracksvc.app import create_app
from tracksvc.core.models import Carrier
from tracksvc.core.settings import Settings
from tracksvc.dev.demo import start_site
from tracksvc.dev.redis_server import RedisServer

SPEC_PATH = Path(__file__).resolve().parents[2] / "openapi.yaml"
SEED = 20261123
#: Generated cases per operation in the fuzzing phase (examples and coverage add theirs):
#: about a minute for the whole run on two cores.
MAX_EXAMPLES = 250
UPS_WEBHOOK_KEY = "st-ups-push-key"
#: Where the subscriptions point: loopback, a port nothing listens on.
CALLBACK_URL = "http://127.0.0.1:9/hook"
#: Stands for the id of the subscription made at setup (ids are the service's to choose).
SUBSCRIPTION = "st-subscription"
KEYS = {role: f"st-{role}-key" for role in ("agent", "portal", "warehouse", "ingest", "admin")}
#: The role each operation is meant for; every fourth case of it uses the admin key instead.
ROLE_OF = {
    "GET /v1/track/{reference}": "agent",
    "POST /v1/track": "agent",
    "PUT /v1/shipments/{shipment_id}": "ingest",
    "PUT /v1/orders/{order_number}": "ingest",
    "POST /v1/shipments/import": "ingest",
    "GET /v1/labels/stalled": "warehouse",
    "GET /v1/labels/stalled/ages": "warehouse",
    "GET /v1/labels/to-void": "warehouse",
    "POST /v1/shipments/{shipment_id}/void": "warehouse",
    "GET /v1/portal/orders/{order_number}": "portal",
    "POST /v1/subscriptions": "agent",
    "DELETE /v1/subscriptions/{subscription_id}": "agent",
    "GET /metrics": "admin",
}

SCENARIOS = by_name()
POSTAL_CODE = "75201"
ORDERS = ["ST-ORDER-1", "ST-ORDER-2"]
SHIPMENTS = {
    "ST-SHIP-1": ("ST-ORDER-1", "ups-in-transit"),
    "ST-SHIP-2": ("ST-ORDER-1", "fedex-delivered"),
    "ST-SHIP-3": ("ST-ORDER-2", "usps-label-5d"),
}
#: Written to by the PUT and import cases (the ones above stay as registered, for the reads).
WRITABLE_ORDERS = ["ST-ORDER-W1", "ST-ORDER-W2"]
WRITABLE_SHIPMENTS = {
    "ST-SHIP-W1": ("ST-ORDER-W1", "ups-label-2h"),
    "ST-SHIP-W2": ("ST-ORDER-W2", "fedex-in-transit"),
}
NUMBERS = [s.number for s in CATALOGUE if s.fault is None]
UPS_NUMBERS = [s.number for s in CATALOGUE if s.carrier is Carrier.ups and s.fault is None]
#: Identifiers an uploader or a pasted ticket can carry: case twins, zero-width, bidi, newline.
HOSTILE_IDS = ["st-order-1", "ST-ORDER-1\n", "ST\u200b-ORDER-1", "ST-\u202eORDER-1", "=HYPERLINK(\"x\")"]
#: Cells and header names that break naive CSV handling or a spreadsheet.
HOSTILE_CELLS = ["\r", "a\rb", "\u200b", "\u202e", "=cmd|' /C calc'!A0", "+1", "@SUM(1)", "\t", '"', "\ufeff"]
UPS_DATES = ["20261123", "00010101", "99991231", "20301231", "20260230"]
UPS_TIMES = ["120000", "235959", "000000", "246060"]
GMT_OFFSETS = ["-05:00", "+14:00", "-12:00", "+99:99"]
TIMES = ["2026-11-23", "2026-11-23T17:00:00Z", "2026-11-23T17:00:00-06:00", "0001-01-01T00:00:00+14:00",
         "9999-12-31T23:59:59-14:00", "2026-11-23T17:00:00"]

#: What the run did, per operation: cases sent and statuses answered.
CASES: Counter[str] = Counter()
FAILURES: Counter[str] = Counter()
STATUSES: dict[str, Counter[int]] = {}


def record_fields() -> list[str]:
    """The fields of a shipment record, as openapi.yaml documents them."""
    spec = yaml.safe_load(SPEC_PATH.read_text())
    return list(spec["components"]["schemas"]["ShipmentInput"]["properties"])


FIELDS = record_fields()
CELL_VALUES: dict[str, list[str]] = {
    "shipment_id": [*WRITABLE_SHIPMENTS, "ST-IMPORT-1", *HOSTILE_IDS],
    "order_number": [*WRITABLE_ORDERS, *HOSTILE_IDS],
    "carrier": [c.value for c in Carrier],
    "tracking_number": NUMBERS,
    "label_created_at": TIMES,
    "first_scan_at": TIMES,
    "promised_delivery_date": TIMES,
    "aliases": ["RMA-1|RMA-2", "ST-ORDER-2", "|"],
    "voided": ["true", "false", "yes"],
    "direction": ["outbound", "return"],
}


def cell(name: str) -> st.SearchStrategy[str]:
    """One cell: a value that fits the column, a hostile one, or any text."""
    fitting = st.sampled_from(CELL_VALUES.get(name, [""]))
    return st.one_of(fitting, st.sampled_from(HOSTILE_CELLS), st.text(max_size=12))


@st.composite
def csv_documents(draw: st.DrawFn) -> bytes:
    """A CSV import: a header of field names (some unknown or hostile), rows, odd bytes at times."""
    columns = draw(st.lists(st.sampled_from(FIELDS) | st.sampled_from(HOSTILE_CELLS), min_size=1, max_size=6))
    lines = [",".join(columns)]
    for _ in range(draw(st.integers(0, 3))):
        cells = [draw(cell(name)) for name in columns]
        if draw(st.booleans()):
            cells = cells[: draw(st.integers(0, len(cells)))]
        lines.append(",".join(f'"{c}"' if draw(st.booleans()) else c for c in cells))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    body = newline.join(lines).encode()
    return draw(damaged(body))


@st.composite
def ndjson_documents(draw: st.DrawFn) -> bytes:
    """An NDJSON import: objects of record fields, other JSON, junk lines, odd bytes at times."""
    lines = []
    for _ in range(draw(st.integers(1, 3))):
        names = draw(st.lists(st.sampled_from(FIELDS), max_size=6, unique=True))
        row: dict[str, Any] = {name: draw(cell(name)) for name in names}
        if "aliases" in row:
            row["aliases"] = row["aliases"].split("|")
        junk = draw(st.text(max_size=20))
        lines.append(draw(st.sampled_from([json.dumps(row), json.dumps(list(row.values())), "{", junk])))
    return draw(damaged("\n".join(lines).encode()))


@st.composite
def damaged(draw: st.DrawFn, body: bytes) -> bytes:
    """``body``, or it with a byte order mark, invalid UTF-8 or a NUL put somewhere."""
    damage = draw(st.sampled_from([b"", b"", b"\xef\xbb\xbf", b"\xff\xfe", b"\xc3", b"\x00"]))
    if not damage:
        return body
    at = draw(st.integers(0, len(body)))
    return body[:at] + damage + body[at:]


# Import bodies are documents, not free text: built by the strategies above.
schemathesis.openapi.media_type("text/csv", csv_documents())
schemathesis.openapi.media_type("application/x-ndjson", ndjson_documents())


class LiveService:
    """The sandbox and the service on loopback ports, in their own thread and event loop."""

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.url = ""
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="live-service", daemon=True)

    def __enter__(self) -> LiveService:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None or not self.url:
            raise RuntimeError("the service did not start") from self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by __enter__
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        sandbox_runner, sandbox_port = await start_site(create_sandbox_app(), "127.0.0.1", 0)
        runner: web.AppRunner | None = None
        try:
            settings = live_settings(self.redis_url, f"http://127.0.0.1:{sandbox_port}")
            runner, port = await start_site(create_app(settings), "127.0.0.1", 0)
            self.url = f"http://127.0.0.1:{port}"
            self._ready.set()
            await self._stop.wait()
        finally:
            if runner is not None:
                await runner.cleanup()
            await sandbox_runner.cleanup()


def live_settings(redis_url: str, sandbox_url: str) -> Settings:
    """Sandbox carriers, known keys, webhooks only to loopback, portal limits out of the way."""
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "api_keys": ",".join(f"{role}:{key}" for role, key in KEYS.items()),
        "carrier_timeout_s": 3.0,
        "refresher_enabled": False,
        "log_level": "warning",
        "ups_webhook_key": UPS_WEBHOOK_KEY,
        # Only loopback receivers: the allow-list refuses every other host before any DNS lookup.
        "webhook_allowed_hosts": ["127.0.0.1"],
        "webhook_allow_private_targets": True,
        # The 429 of the portal has its own tests; here the 200s and 404s should stay reachable.
        "portal_max_failures": 1_000_000,
    }
    for carrier in ("ups", "fedex", "usps"):
        values[f"{carrier}_base_url"] = sandbox_url
        values[f"{carrier}_client_id"] = f"{carrier}-st-id"
        values[f"{carrier}_client_secret"] = f"{carrier}-st-secret"
    return Settings.model_validate(values)


def call(method: str, url: str, body: dict[str, Any], key: str) -> tuple[int, Any]:
    """One JSON request over loopback HTTP: (status, decoded answer)."""
    request = urllib.request.Request(
        url, method=method, data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def register(url: str) -> str:
    """Register the orders, shipments and one subscription through the API; the subscription id."""
    label_at = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    for order in [*ORDERS, *WRITABLE_ORDERS]:
        body = {"order_number": order, "destination_postal_code": POSTAL_CODE}
        status, answer = call("PUT", f"{url}/v1/orders/{order}", body, KEYS["ingest"])
        assert status == 201, answer
    for shipment_id, (order, scenario) in {**SHIPMENTS, **WRITABLE_SHIPMENTS}.items():
        body = {
            "shipment_id": shipment_id,
            "order_number": order,
            "carrier": SCENARIOS[scenario].carrier.value,
            "tracking_number": SCENARIOS[scenario].number,
            "label_created_at": label_at,
            "destination_postal_code": POSTAL_CODE,
        }
        status, answer = call("PUT", f"{url}/v1/shipments/{shipment_id}", body, KEYS["ingest"])
        assert status == 201, answer
    body = {"callback_url": CALLBACK_URL, "reference": ORDERS[0]}
    status, answer = call("POST", f"{url}/v1/subscriptions", body, KEYS["agent"])
    assert status == 201, answer
    subscription_id: str = answer["id"]
    return subscription_id


def contract_config() -> schemathesis.Config:
    """Both data modes, the four response checks, a fixed seed, registered values in the mix."""

    def values(dictionary: str, probability: float = 0.5) -> dict[str, Any]:
        return {"dictionary": dictionary, "probability": probability}

    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            # Generation speed depends on the machine's load; the cases sent do not.
            "suppress-health-check": ["too_slow"],
            "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "database": "none"},
            "checks": {
                "enabled": False,
                "not_a_server_error": {"enabled": True},
                "status_code_conformance": {"enabled": True},
                "content_type_conformance": {"enabled": True},
                "response_schema_conformance": {"enabled": True},
            },
            # Nothing learned from answers (ids, error messages) steers generation: the same
            # cases every run, whatever the answers carry (request ids, times).
            "phases": {
                "examples": {"extra-data-sources": {"responses": False}},
                "coverage": {"extra-data-sources": {"responses": False}},
                "fuzzing": {"extra-data-sources": {"responses": False}, "error-feedback": {"enabled": False}},
                "stateful": {"enabled": False},
            },
            "dictionaries": {
                "references": {"values": [*ORDERS, *SHIPMENTS, *NUMBERS[:6], *HOSTILE_IDS]},
                "orders": {"values": [*ORDERS, *HOSTILE_IDS]},
                "writable_shipments": {"values": [*WRITABLE_SHIPMENTS, *HOSTILE_IDS]},
                "writable_orders": {"values": [*WRITABLE_ORDERS, *HOSTILE_IDS]},
                "subscriptions": {"values": [SUBSCRIPTION]},
                "postal_codes": {"values": [POSTAL_CODE, f"{POSTAL_CODE}-1234", "75 201"]},
                "ups_keys": {"values": [UPS_WEBHOOK_KEY]},
                "ups_numbers": {"values": UPS_NUMBERS},
                "numbers": {"values": NUMBERS},
                "carriers": {"values": [c.value for c in Carrier]},
                "ups_dates": {"values": UPS_DATES},
                "ups_times": {"values": UPS_TIMES},
                "gmt_offsets": {"values": GMT_OFFSETS},
                "times": {"values": TIMES},
                "callbacks": {"values": [CALLBACK_URL]},
            },
            "parameters": {
                "path.reference": values("references"),
                "path.order_number": values("orders"),
                "path.subscription_id": values("subscriptions"),
                "query.postal_code": values("postal_codes"),
                "header.x-api-key": values("ups_keys", 0.8),
                "body.references[*]": values("references"),
                "body.reference": values("references"),
                "body.callback_url": values("callbacks"),
                "body.trackingNumber": values("ups_numbers", 0.8),
                "body.tracking_number": values("numbers", 0.8),
                "body.localActivityDate": values("ups_dates"),
                "body.gmtActivityDate": values("ups_dates"),
                "body.scheduledDeliveryDate": values("ups_dates"),
                "body.localActivityTime": values("ups_times"),
                "body.gmtActivityTime": values("ups_times"),
                "body.gmtOffset": values("gmt_offsets"),
                "body.label_created_at": values("times"),
                "body.first_scan_at": values("times"),
                "body.promised_ship_by": values("times"),
                "body.promised_delivery_date": values("times"),
                "body.ordered_at": values("times"),
            },
            "operations": [
                {
                    "include-name": "PUT /v1/shipments/{shipment_id}",
                    "parameters": {
                        "path.shipment_id": values("writable_shipments"),
                        "body.shipment_id": values("writable_shipments"),
                        "body.order_number": values("writable_orders"),
                    },
                },
                {
                    "include-name": "POST /v1/shipments/{shipment_id}/void",
                    "parameters": {"path.shipment_id": values("writable_shipments")},
                },
                {
                    "include-name": "PUT /v1/orders/{order_number}",
                    "parameters": {
                        "path.order_number": values("writable_orders"),
                        "body.order_number": values("writable_orders"),
                        "body.replaces[*]": values("writable_orders"),
                    },
                },
            ],
        }
    )


@pytest.fixture(scope="module")
def live(redis_server: RedisServer) -> Iterator[LiveService]:
    """The real service on a loopback port, over a flushed Redis."""
    if redis_server.process is None:  # another test stopped it
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    with LiveService(redis_server.url) as service:
        yield service


@pytest.fixture(scope="module")
def subscription_id(live: LiveService, request: pytest.FixtureRequest) -> Iterator[str]:
    """The pools registered through the API (the subscription's id); the run's figures at the end."""
    yield register(live.url)
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(
            f"\nschemathesis (seed {SEED}): {len(CASES)} operations, {sum(CASES.values())} test cases, "
            f"{sum(FAILURES.values())} failing"
        )
        for label in sorted(CASES):
            statuses = ", ".join(f"{s}: {n}" for s, n in sorted(STATUSES[label].items()))
            reporter.write_line(f"  {label}: {CASES[label]} ({statuses})")


schema = schemathesis.openapi.from_path(SPEC_PATH, config=contract_config())


@schema.parametrize()
def test_contract(case: schemathesis.Case, live: LiveService, subscription_id: str) -> None:
    """Every operation answers generated input with a documented status, media type and body, never a 5xx."""
    label = case.operation.label
    if case.path_parameters and case.path_parameters.get("subscription_id") == SUBSCRIPTION:
        case.path_parameters["subscription_id"] = subscription_id
    CASES[label] += 1
    headers: dict[str, str] = {}
    if label in ROLE_OF:
        role = "admin" if CASES[label] % 4 == 0 else ROLE_OF[label]
        headers["Authorization"] = f"Bearer {KEYS[role]}"
    response = case.call(base_url=live.url, headers=headers, timeout=15)
    STATUSES.setdefault(label, Counter())[response.status_code] += 1
    try:
        case.validate_response(response, headers=headers)
    except Exception:
        FAILURES[label] += 1
        raise
