"""
No secret and no customer datum in any log line: the real logging configuration
(configure_logging), the real service on loopback, hostile inputs, and the
rendered output searched for every secret string.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from carriers.sandbox.scenarios import CATALOGUE
from tests.conftest import SAMPLES, Sandbox, load_sample
from tests.contract import assert_schema
from tracksvc.api.keys import settings_key
from tracksvc.api.middlewares import requires
from tracksvc.app import create_app
from tracksvc.core.logs import configure_logging
from tracksvc.core.models import Carrier
from tracksvc.core.redaction import REDACTED, Redactor, known_secrets
from tracksvc.core.settings import Settings

AGENT_KEY = "agent-Kx7-secret-0001"
INGEST_KEY = "ingest-Kx7-secret-0002"
PORTAL_KEY = "portal-Kx7-secret-0003"
ADMIN_KEY = "admin-Kx7-secret-0004"
WAREHOUSE_KEY = "warehouse-Kx7-secret-0005"
CLIENT_SECRETS = {c: f"{c}-client-Kx7-secret" for c in ("ups", "fedex", "usps")}
WEBHOOK_SECRET = "whsec-Kx7-master-0006"
UPS_WEBHOOK_KEY = "upswh-Kx7-key-0007"
#: A colon in a UPS client id makes building the Basic credentials raise inside the token fetch.
UPS_CLIENT_ID = "acct:ups-Kx7-id"

WRONG_KEY = "wrong-Kx7-guess-0008"
POSTAL_CODE = "73301-4482"
CALLBACK_TOKEN = "cbtok-Kx7-0009"

SECRETS = (
    AGENT_KEY, INGEST_KEY, PORTAL_KEY, ADMIN_KEY, WAREHOUSE_KEY, *CLIENT_SECRETS.values(),
    WEBHOOK_SECRET, UPS_WEBHOOK_KEY, WRONG_KEY, POSTAL_CODE, CALLBACK_TOKEN,
)


def bearer(key: str) -> dict[str, str]:
    """An Authorization header for ``key``."""
    return {"Authorization": f"Bearer {key}"}


def hostile_settings(make_settings: Callable[..., Settings], base_url: str, **overrides: Any) -> Settings:
    """Test settings holding the known keys and secrets above."""
    values: dict[str, Any] = {
        "api_keys": f"agent:{AGENT_KEY},ingest:{INGEST_KEY},portal:{PORTAL_KEY},"
        f"admin:{ADMIN_KEY},warehouse:{WAREHOUSE_KEY}",
        "webhook_secret": WEBHOOK_SECRET,
        "ups_webhook_key": UPS_WEBHOOK_KEY,
        "ups_client_id": UPS_CLIENT_ID,
        "log_level": "debug",
        **{f"{carrier}_client_secret": secret for carrier, secret in CLIENT_SECRETS.items()},
    }
    values.update(overrides)
    return make_settings(base_url, **values)


@requires("agent")
async def _boom(request: web.Request) -> web.Response:
    """A handler path that fails unexpectedly, with a client secret in a local and in its message."""
    secret = request.app[settings_key].ups_client_secret.get_secret_value()
    raise RuntimeError(f"could not sign the request with {secret}")


async def hostile_service(settings: Settings, aiohttp_client: Any) -> Any:
    """The real app, plus one route that raises (behind the auth middleware, so its frame holds the key)."""
    app = create_app(settings)
    app.router.add_get("/_test/boom", _boom)
    return await aiohttp_client(app)


def events(output: str) -> Iterator[dict[str, Any]]:
    """The JSON log lines of ``output``."""
    for line in output.splitlines():
        if line.startswith("{"):
            yield json.loads(line)


def delivery_alert() -> dict[str, Any]:
    """The UPS Track Alert delivery sample."""
    (path,) = (SAMPLES / "ups").glob("*TrackAlert*example_2_delivery_message*")
    return dict(load_sample("ups", path.name))


async def test_hostile_inputs_leave_no_secret_in_the_json_log(
    sandbox: Sandbox,
    redis_client: aioredis.Redis,
    make_settings: Callable[..., Settings],
    aiohttp_client: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Bad CSV, a year-1 UPS push, wrong keys, portal, webhooks, crashes: no secret in the JSON log."""
    settings = hostile_settings(make_settings, sandbox.url, log_json=True)
    configure_logging(settings, cache_loggers=False)
    client = await hostile_service(settings, aiohttp_client)
    ingest = {**bearer(INGEST_KEY), "Content-Type": "text/csv"}

    # CSV imports whose header holds a bare carriage return, or is not UTF-8.
    await client.post("/v1/shipments/import", data=b"shipment_id,carrier\rtracking_number\nx,ups,1\n",
                      headers=ingest)
    await client.post("/v1/shipments/import", data=b"shipment_id,\xff\xfe,carrier\nx,y,ups\n",
                      headers=ingest)
    # A UPS push dated in year 1, local time with a GMT offset.
    alert = delivery_alert()
    for name in ("gmtActivityDate", "gmtActivityTime"):
        alert.pop(name, None)
    alert.update(localActivityDate="00010101", localActivityTime="000000", gmtOffset="-05:00")
    await client.post("/v1/carrier-events/ups", data=orjson.dumps(alert),
                      headers={"x-api-key": UPS_WEBHOOK_KEY, "Content-Type": "application/json"})
    # A wrong key.
    await client.get("/v1/track/W1001", headers=bearer(WRONG_KEY))
    # The portal, with the right and a wrong postal code.
    await client.put("/v1/orders/W-LOG-1", json={"destination_postal_code": POSTAL_CODE},
                     headers=bearer(INGEST_KEY))
    for code in (POSTAL_CODE, "99999"):
        await client.get("/v1/portal/orders/W-LOG-1", params={"postal_code": code},
                         headers=bearer(PORTAL_KEY))
    # A subscription whose callback carries a token in its query string.
    response = await client.post(
        "/v1/subscriptions",
        json={"callback_url": f"http://127.0.0.1:9/hook?token={CALLBACK_TOKEN}", "reference": "W-LOG-1"},
        headers=bearer(AGENT_KEY),
    )
    subscription_secret = (await response.json()).get("secret") if response.status == 201 else None
    # Carrier token fetches: one refused by the carrier, one crashing while building credentials.
    sandbox.state.credentials = {Carrier.usps: ("someone-else", "another-secret")}
    usps = next(s.number for s in CATALOGUE if s.carrier is Carrier.usps and s.name == "usps-in-transit")
    ups = next(s.number for s in CATALOGUE if s.name == "ups-in-transit")
    for number in (usps, ups):
        await client.get(f"/v1/track/{number}", headers=bearer(AGENT_KEY))
    # An unexpected error in a handler path.
    response = await client.get("/_test/boom", headers=bearer(AGENT_KEY))
    boom = await response.json()

    output = capsys.readouterr().err
    leaked = [s for s in (*SECRETS, subscription_secret) if s and s in output]
    assert leaked == []
    assert response.status == 500
    assert_schema("Error", boom)
    assert boom["error"]["code"] == "internal_error"
    assert boom["error"]["request_id"] == response.headers["X-Request-ID"]
    logged = list(events(output))
    failed = [e for e in logged if e.get("event") == "request_failed"]
    assert boom["error"]["request_id"] in {e.get("request_id") for e in failed}
    assert any(e.get("event") == "carrier_fetch_crashed" for e in logged)
    for event in failed:
        for exception in event["exception"]:
            assert all("locals" not in frame for frame in exception["frames"])


async def test_an_unexpected_error_on_the_console_shows_no_secret(
    sandbox: Sandbox,
    redis_client: aioredis.Redis,
    make_settings: Callable[..., Settings],
    aiohttp_client: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The console renderer prints the traceback, with the secret in its message redacted."""
    settings = hostile_settings(make_settings, sandbox.url, log_json=False)
    configure_logging(settings, cache_loggers=False)
    client = await hostile_service(settings, aiohttp_client)
    response = await client.get("/_test/boom", headers={**bearer(AGENT_KEY), "X-Request-ID": "req-boom-1"})
    body = await response.json()
    output = capsys.readouterr().err
    assert (response.status, body["error"]["request_id"]) == (500, "req-boom-1")
    assert response.headers["X-Request-ID"] == "req-boom-1"
    assert "Traceback" in output
    assert f"RuntimeError: could not sign the request with {REDACTED}" in output
    assert [s for s in SECRETS if s in output] == []


def test_the_redactor_cleans_nested_events() -> None:
    """Field names, known values and text patterns are redacted at every depth; the rest is kept."""
    settings = Settings(
        api_keys="agent:agent-abcdef,portal:tiny",
        ups_client_secret="ups-secret-123",
        webhook_secret="master-secret-1",
        redis_url="redis://:redis-pass-9@127.0.0.1:6379/0",
    )
    redactor = Redactor.from_settings(settings)
    event = {
        "event": "request_failed",
        "status": 502,
        "elapsed_ms": 1.5,
        "stale": False,
        "note": "key agent-abcdef used, tiny ignored",
        "headers": {"Authorization": "Bearer eyJhbGciOi.abc", "X-Api-Key": "anything", "Accept": "json"},
        "api_keys": {"agent-abcdef": "agent"},
        "roles": {"agent-abcdef": "agent"},
        "nested": [{"deeper": ({"client_secret": "s3cr3t-value", "carrier": "ups"},)}],
        "callback_url": "https://user:pw@hooks.example.com:8443/in/box?token=abc#frag",
        "order": {"destination_postal_code": "90210", "postal_code": None},
        "message": "GET /v1/portal/orders/W1?postal_code=90210&x=1 failed; see https://a.example/p?q=1",
        "exception": [{"exc_type": "ValueError", "exc_value": "bad secret: ups-secret-123 and redis-pass-9",
                       "frames": [{"filename": "x.py", "lineno": 3, "name": "f"}]}],
        "text": 'payload {"access_token": "tok-1", "expires_in": 3600} from master-secret-1',
    }
    assert redactor(None, "error", event) == {
        "event": "request_failed",
        "status": 502,
        "elapsed_ms": 1.5,
        "stale": False,
        "note": "key [redacted] used, tiny ignored",
        "headers": {"Authorization": REDACTED, "X-Api-Key": REDACTED, "Accept": "json"},
        "api_keys": REDACTED,
        "roles": {REDACTED: "agent"},
        "nested": [{"deeper": [{"client_secret": REDACTED, "carrier": "ups"}]}],
        "callback_url": "https://hooks.example.com:8443/in/box",
        "order": {"destination_postal_code": REDACTED, "postal_code": None},
        "message": "GET /v1/portal/orders/W1?postal_code=[redacted]&x=1 failed; see https://a.example/p?[redacted]",
        "exception": [{"exc_type": "ValueError", "exc_value": "bad secret: [redacted] and [redacted]",
                       "frames": [{"filename": "x.py", "lineno": 3, "name": "f"}]}],
        "text": 'payload {"access_token": "[redacted]", "expires_in": 3600} from [redacted]',
    }
    assert {"agent-abcdef", "ups-secret-123", "master-secret-1", "redis-pass-9"} <= known_secrets(settings)


def test_library_loggers_pass_the_same_redaction(capsys: pytest.CaptureFixture[str]) -> None:
    """A standard-library logger (aiohttp, asyncio) is rendered and redacted like tracksvc's own."""
    configure_logging(Settings(api_keys=f"agent:{AGENT_KEY}", log_json=True), cache_loggers=False)
    try:
        raise ValueError(f"bad key {AGENT_KEY} for https://hooks.example/cb?token={CALLBACK_TOKEN}")
    except ValueError:
        logging.getLogger("aiohttp.server").exception("Error handling request")
    output = capsys.readouterr().err
    (line,) = events(output)
    assert (line["logger"], line["event"]) == ("aiohttp.server", "Error handling request")
    assert line["exception"][0]["exc_value"] == f"bad key {REDACTED} for https://hooks.example/cb?{REDACTED}"
    assert [s for s in (AGENT_KEY, CALLBACK_TOKEN) if s in output] == []
