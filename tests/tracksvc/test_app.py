"""The HTTP service end to end: real redis-server, real sandbox over loopback."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any

import pytest
import structlog

from carriers.sandbox.scenarios import CATALOGUE, Scenario, Step, ups_number
from tests.conftest import AGENT, PORTAL, Sandbox
from tests.contract import assert_matches
from tracksvc.core.models import Carrier, TrackingStatus
from tracksvc.domain import references

TRACK = "/v1/track/{reference}"


async def track(client: Any, reference: str, headers: dict[str, str] = AGENT) -> tuple[int, Any]:
    response = await client.get(f"/v1/track/{reference}", headers=headers)
    body = await response.json()
    assert_matches(TRACK, "get", response.status, body)
    return response.status, body


async def test_healthz_needs_no_key(service: Any) -> None:
    """Liveness answers without a key."""
    response = await service.get("/healthz")
    assert response.status == 200
    assert_matches("/healthz", "get", 200, await response.json())


@pytest.mark.parametrize("scenario", CATALOGUE, ids=[s.name for s in CATALOGUE])
async def test_every_sandbox_scenario_answers_its_status(service: Any, scenario: Scenario) -> None:
    """Each catalogue number answers the normalized status the catalogue promises."""
    status, body = await track(service, scenario.number)
    assert status == 200
    assert body["status"] == scenario.expect.value
    assert body["matched"] == "carrier_number"
    (shipment,) = body["shipments"]
    assert shipment["carrier"] == scenario.carrier.value
    assert shipment["tracking_number"] == scenario.number
    # The carrier's answer is live; a carrier that could not be asked gave none (issue 11).
    assert shipment["freshness"] == ("unavailable" if scenario.expect.value == "unknown" else "live")


async def test_label_five_days_old_is_not_tendered_with_advice(service: Any) -> None:
    """A UPS label printed five days ago and never scanned is not_tendered, with what to do."""
    number = next(s.number for s in CATALOGUE if s.name == "ups-label-5d")
    _, body = await track(service, number)
    assert body["status"] == "not_tendered"
    assert "not_tendered" in body["flags"]
    assert "never received" in body["agent_advice"]
    assert "5 days ago" in body["summary"]
    shipment = body["shipments"][0]
    assert shipment["carrier_status_code"]
    assert shipment["label_created_at"] is not None
    assert shipment["status_since"] == shipment["label_created_at"]
    assert shipment["tracking_url"].startswith("https://www.ups.com/")


async def test_label_two_hours_old_is_label_created(service: Any) -> None:
    """A label printed two hours ago is still inside the grace period."""
    number = next(s.number for s in CATALOGUE if s.name == "ups-label-2h")
    _, body = await track(service, number)
    assert body["status"] == "label_created"
    assert body["flags"] == []


@pytest.mark.parametrize(
    "pasted",
    [" 1z trksvc01 0000 0024 ", "#1ZTRKSVC0100000024", "1z-trksvc01-0000002-4"],
)
async def test_human_forms_of_a_number_find_it(service: Any, pasted: str) -> None:
    """Spaces, dashes, lower case and a leading # are what people paste."""
    _, body = await track(service, pasted.replace("#", "%23").replace(" ", "%20"))
    assert body["shipments"][0]["tracking_number"] == "1ZTRKSVC0100000024"
    assert body["status"] == "not_tendered"


async def test_usps_routing_prefix_and_fedex_96_barcode(service: Any) -> None:
    """420+ZIP is stripped for USPS; a FedEx 96 barcode finds its 15-digit Ground number."""
    usps = next(s.number for s in CATALOGUE if s.name == "usps-in-transit")
    _, body = await track(service, "42011201" + usps)
    assert body["shipments"][0]["tracking_number"] == usps
    ground = next(s.number for s in CATALOGUE if s.name == "fedex-ground-in-transit")
    barcode = f"9612019{ground}"
    assert len(barcode) == 22
    if not references.candidates(barcode):
        pytest.fail(f"{barcode} should be a FedEx 96 barcode")
    _, body = await track(service, barcode)
    assert body["shipments"][0]["tracking_number"] == ground
    assert body["status"] == "in_transit"


@pytest.mark.parametrize(
    ("reference", "code"),
    [("%20%20", "invalid_reference"), ("A" * 65, "invalid_reference"), ("1Z%01X", "invalid_reference")],
)
async def test_input_that_cannot_be_a_reference_is_400(service: Any, reference: str, code: str) -> None:
    """Empty, over 64 characters, control characters: a clear 400."""
    status, body = await track(service, reference)
    assert status == 400
    assert body["error"]["code"] == code


async def test_empty_reference_is_400(service: Any) -> None:
    """Nothing pasted at all is a 400, not a 404 or a 500."""
    status, _body = await track(service, "")
    assert status == 400


async def test_unregistered_non_number_is_404(service: Any) -> None:
    """Neither registered nor any carrier's number: 404 that says so."""
    status, body = await track(service, "W1234567")
    assert status == 404
    assert body["error"]["code"] == "reference_not_found"
    assert "W1234567" in body["error"]["message"]


async def test_valid_number_unknown_to_carrier_is_200_not_found(service: Any) -> None:
    """A valid 1Z number UPS does not know: 200 with status not_found."""
    status, body = await track(service, ups_number(9999))
    assert status == 200
    assert body["status"] == "not_found"


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer nope"}, 401), ({"Authorization": "Basic x"}, 401), (PORTAL, 403)],
)
async def test_keys_and_roles(service: Any, headers: dict[str, str], status: int) -> None:
    """No key or a wrong key is 401; a valid key of the wrong role is 403; both JSON."""
    code, body = await track(service, "1ZTRKSVC0100000024", headers=headers)
    assert code == status
    assert body["error"]["code"] in {"unauthorized", "forbidden"}


async def test_repeat_lookup_within_ttl_makes_no_carrier_call(service: Any, sandbox: Sandbox) -> None:
    """The second lookup is served from Redis: one carrier call in all."""
    number = next(s.number for s in CATALOGUE if s.name == "fedex-in-transit")
    _, first = await track(service, number)
    _, second = await track(service, number)
    assert sandbox.state.calls["fedex:track"] == 1
    assert first["shipments"][0]["freshness"] == "live"
    assert second["shipments"][0]["freshness"] == "cached"
    assert second["status"] == first["status"]


async def test_carrier_down_answers_unknown_with_reason(service: Any, sandbox: Sandbox) -> None:
    """A carrier answering 500s gives status unknown and says why, never a 500."""
    sandbox.state.queue_fault(Carrier.usps, "500", 50)
    number = next(s.number for s in CATALOGUE if s.name == "usps-delivered")
    status, body = await track(service, number)
    assert status == 200
    assert body["status"] == "unknown"
    shipment = body["shipments"][0]
    assert shipment["freshness"] == "unavailable"
    assert shipment["carrier_problem"]["kind"] == "unavailable"
    assert "server error" in shipment["carrier_problem"]["detail"]
    assert "server error" not in shipment["reason"]
    assert body["agent_advice"].startswith("USPS's tracking service is failing; asked at ")


async def test_carrier_down_serves_last_answer_as_stale(service_with: Any, sandbox: Sandbox) -> None:
    """Past its hard TTL, with the carrier down, the last known answer is served, flagged stale."""
    client = await service_with(cache_ttl_active_s=0, cache_hard_ttl_active_s=0)
    number = next(s.number for s in CATALOGUE if s.name == "ups-in-transit")
    _, live = await track(client, number)
    assert live["status"] == "in_transit"
    sandbox.state.queue_fault(Carrier.ups, "503", 50)
    _, stale = await track(client, number)
    assert stale["status"] == "in_transit"
    assert "stale" in stale["flags"]
    shipment = stale["shipments"][0]
    assert shipment["freshness"] == "stale"
    assert shipment["as_of"] == live["shipments"][0]["as_of"]
    assert "showing the answer from" in shipment["reason"]


async def test_malformed_carrier_json_is_unknown_not_500(service: Any) -> None:
    """Broken JSON from a carrier is a clear unknown with the reason."""
    number = next(s.number for s in CATALOGUE if s.name == "fedex-malformed")
    status, body = await track(service, number)
    assert status == 200
    assert body["status"] == "unknown"
    shipment = body["shipments"][0]
    assert shipment["carrier_problem"]["kind"] == "malformed"
    assert "JSON" in shipment["carrier_problem"]["detail"]
    for said in (shipment["reason"], body["agent_advice"], body["summary"], body["customer_message"]):
        assert "JSON" not in said


def _ambiguous_fedex_usps() -> str:
    for serial in range(1, 100_000):
        number = f"6129{serial:016d}"
        carriers = {c.carrier for c in references.candidates(number)}
        if {Carrier.fedex, Carrier.usps} <= carriers:
            return number
    raise AssertionError("no ambiguous 20-digit number found")


async def test_ambiguous_number_asks_every_candidate_and_the_knower_wins(
    service: Any, sandbox: Sandbox
) -> None:
    """A number valid for FedEx and USPS is asked of both; the carrier that knows it answers."""
    number = _ambiguous_fedex_usps()
    asked = {c.carrier: c.number for c in references.candidates(number)}
    steps = ((Step.label, timedelta(days=2)), (Step.pickup, timedelta(days=1)))
    sandbox.state.add(
        Scenario(Carrier.fedex, asked[Carrier.fedex], "amb", TrackingStatus.in_transit, steps)
    )
    _, body = await track(service, number)
    assert body["shipments"][0]["carrier"] == "fedex"
    assert body["status"] == "in_transit"
    assert sandbox.state.numbers_asked["usps"] >= 1
    assert sandbox.state.numbers_asked["fedex"] >= 1


async def test_logs_are_json_with_request_id_and_no_secrets(
    service: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every request logs JSON lines carrying its request id; client secrets never appear."""
    from tracksvc.core.logs import configure_logging
    from tracksvc.core.settings import Settings

    configure_logging(Settings(log_json=True, log_level="debug"))
    # Caching would pin loggers first used here to this test's captured stderr for good.
    structlog.configure(cache_logger_on_first_use=False)
    response = await service.get("/v1/track/1ZTRKSVC0100000033", headers={**AGENT, "X-Request-ID": "req-42"})
    assert response.headers["X-Request-ID"] == "req-42"
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in io.StringIO(err) if line.startswith("{")]
    completed = [line for line in lines if line.get("event") == "request_completed"]
    assert [line["request_id"] for line in completed] == ["req-42"]
    carrier_lines = [line for line in lines if line.get("carrier")]
    assert carrier_lines
    assert all(line.get("request_id") == "req-42" for line in carrier_lines)
    assert "ups-test-secret" not in err
    structlog.reset_defaults()


async def test_customer_says_a_delivered_parcel_never_arrived(service: Any) -> None:
    """?claim=not_received on a delivered order flags delivered_disputed with claim advice."""
    number = next(s.number for s in CATALOGUE if s.name == "ups-delivered")
    _, plain = await track(service, number)
    assert "delivered_disputed" not in plain["flags"]
    _, disputed = await track(service, f"{number}?claim=not_received")
    assert disputed["status"] == "delivered"
    assert "delivered_disputed" in disputed["flags"]
    assert disputed["agent_advice"] != plain["agent_advice"]
    assert "claim" in disputed["agent_advice"]


async def test_claim_is_ignored_when_not_delivered_and_unknown_claims_are_422(service: Any) -> None:
    """The claim only matters for delivered orders; an unknown claim is a clear 422."""
    number = next(s.number for s in CATALOGUE if s.name == "ups-in-transit")
    _, body = await track(service, f"{number}?claim=not_received")
    assert "delivered_disputed" not in body["flags"]
    status, body = await track(service, f"{number}?claim=stolen")
    assert status == 422
    assert body["error"]["details"][0]["field"] == "claim"
