"""Resolution of registered references and the concurrent order lookup, end to end."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from carriers.sandbox.app import create_sandbox_app
from carriers.sandbox.scenarios import fedex_number
from carriers.sandbox.state import ErrorRenderer, SandboxState
from tests.conftest import AGENT, Sandbox, serve_on_loopback
from tests.tracksvc.registry_helpers import number_of, register, shipment, track, track_ok
from tracksvc.app import create_app
from tracksvc.core.models import Carrier
from tracksvc.core.settings import Settings
from tracksvc.domain import references

# -- resolution -----------------------------------------------------------------


async def _two_orders(service: Any) -> None:
    await register(
        service,
        shipment("shp-10", "ups-in-transit", order_number="W-10", internal_shipping_number="SN-10",
                 aliases=["RMA-10"]),
        order={"order_number": "W-10"},
    )


@pytest.mark.parametrize(
    ("reference", "matched"),
    [
        ("W-10", "order_number"),
        ("shp-10", "shipment_id"),
        ("SN-10", "internal_shipping_number"),
        ("RMA-10", "alias"),
        (number_of("ups-in-transit"), "tracking_number"),
    ],
)
async def test_every_registered_reference_finds_the_order(service: Any, reference: str, matched: str) -> None:
    """Order number, shipment id, shipping number, alias and tracking number all lead to the order."""
    await _two_orders(service)
    body = await track_ok(service, reference)
    assert body["matched"] == matched
    assert body["order_number"] == "W-10"
    assert [s["shipment_id"] for s in body["shipments"]] == ["shp-10"]
    assert body["status"] == "in_transit"


@pytest.mark.parametrize(
    "pasted", ["w-10", " W-10 ", "%23W-10", "W10", "w 10", "rma10", "Rma-10", "sn10"]
)
async def test_dashes_case_and_spaces_do_not_matter(service: Any, pasted: str) -> None:
    """What people paste (lower case, spaces, '#', dashes left out) finds the same order."""
    await _two_orders(service)
    body = await track_ok(service, pasted.replace(" ", "%20"))
    assert body["order_number"] == "W-10"


# Each row: the kinds one reference "X-1" is registered as, and the kind that must win.
# (Two shipments never share an identifier: that is a 409, see test_identifiers.py.)
PRECEDENCE_CASES = [
    (["order", "shipment_id"], "order_number"),
    (["alias", "order"], "order_number"),
    (["replaced", "order"], "replaced_order"),
]


async def _register_as(service: Any, kind: str) -> None:
    x = "X-1"
    bodies = {
        "order": ({"order_number": x}, None),
        "shipment_id": (None, shipment(x, "fedex-in-transit", order_number="W-SID")),
        "internal": (None, shipment("shp-int", "usps-in-transit", order_number="W-INT",
                                    internal_shipping_number=x)),
        "alias": (None, shipment("shp-ali", "ups-delivered", order_number="W-ALI", aliases=[x])),
        "replaced": ({"order_number": "W-NEW", "replaces": [x]}, None),
    }
    order, body = bodies[kind]
    if order is not None:
        await register(service, order=order)
    if body is not None:
        await register(service, body)


@pytest.mark.parametrize("reverse", [False, True], ids=["in-order", "reversed"])
@pytest.mark.parametrize(("kinds", "winner"), PRECEDENCE_CASES)
async def test_one_reference_naming_two_things_resolves_by_precedence(
    service: Any, kinds: list[str], winner: str, reverse: bool
) -> None:
    """Order number, then shipment id, shipping number, alias: whatever order they were written in."""
    for kind in reversed(kinds) if reverse else kinds:
        await _register_as(service, kind)
    body = await track_ok(service, "X-1")
    assert body["matched"] == winner


def _order_number_passing_fedex_check() -> str:
    number = fedex_number(4242)
    assert [c.carrier for c in references.candidates(number)] == [Carrier.fedex]
    return number


async def test_numeric_order_number_passing_a_check_digit_is_the_order(
    service: Any, sandbox: Sandbox
) -> None:
    """A 12-digit order number that is also a valid FedEx number answers the order; FedEx is not asked."""
    number = _order_number_passing_fedex_check()
    await register(service, shipment("shp-num", "ups-delivered", order_number=number),
                   order={"order_number": number})
    body = await track_ok(service, number)
    assert body["matched"] == "order_number"
    assert body["order_number"] == number
    assert [s["carrier"] for s in body["shipments"]] == ["ups"]
    assert sandbox.state.numbers_asked["fedex"] == 0


async def test_the_same_number_unregistered_is_a_fedex_lookup(service: Any, sandbox: Sandbox) -> None:
    """Unregistered, the same digits go to FedEx (which does not know them)."""
    body = await track_ok(service, _order_number_passing_fedex_check())
    assert body["matched"] == "carrier_number"
    assert body["status"] == "not_found"
    assert sandbox.state.numbers_asked["fedex"] == 1


async def test_an_order_registered_before_any_label_is_visible(service: Any) -> None:
    """An order with no shipment yet answers awaiting_shipment, not 404."""
    await register(service, order={"order_number": "W-EMPTY"})
    body = await track_ok(service, "W-EMPTY")
    assert body["status"] == "awaiting_shipment"
    assert body["shipments"] == []
    assert body["flags"] == []


async def test_a_lone_shipment_is_found_by_its_id_with_its_order(service: Any) -> None:
    """A registered shipment answers by its id, with the order it belongs to."""
    await register(service, shipment("shp-lone", "fedex-delivered", order_number="W-LONE"))
    body = await track_ok(service, "shp-lone")
    assert body["order_number"] == "W-LONE"
    assert body["matched"] == "shipment_id"
    assert body["status"] == "delivered"


# -- the concurrent order lookup ----------------------------------------------------


class CountingState(SandboxState):
    """Sandbox state that also counts tracking calls in flight at once."""

    in_flight: int = 0
    most_in_flight: int = 0

    async def before_tracking(
        self, request: web.Request, carrier: Carrier, render_error: ErrorRenderer, numbers: int = 1
    ) -> web.StreamResponse | None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            return await super().before_tracking(request, carrier, render_error, numbers)
        finally:
            self.in_flight -= 1


@pytest.fixture
async def counting_sandbox() -> AsyncIterator[Sandbox]:
    """The sandbox, counting concurrent tracking calls."""
    state = CountingState()
    runner, url = await serve_on_loopback(create_sandbox_app(state))
    yield Sandbox(url, state)
    await runner.cleanup()


THREE = [("shp-o-1", "ups-in-transit"), ("shp-o-2", "fedex-delivered"), ("shp-o-3", "usps-out-for-delivery")]


async def test_an_order_asks_all_its_carriers_at_once(
    counting_sandbox: Sandbox, redis_client: Any, make_settings: Callable[..., Settings], aiohttp_client: Any
) -> None:
    """Three shipments on three carriers: one call each, all three in flight together."""
    client = await aiohttp_client(create_app(make_settings(counting_sandbox.url)))
    await register(client, *(shipment(sid, name, order_number="W-3") for sid, name in THREE))
    state = counting_sandbox.state
    assert isinstance(state, CountingState)
    state.latency_s = 0.3
    body = await track_ok(client, "W-3")
    calls = {c: state.calls[f"{c}:track"] for c in ("ups", "fedex", "usps")}
    assert calls == {"ups": 1, "fedex": 1, "usps": 1}
    assert state.most_in_flight == 3
    assert [(s["shipment_id"], s["status"]) for s in body["shipments"]] == [
        ("shp-o-1", "in_transit"), ("shp-o-2", "delivered"), ("shp-o-3", "out_for_delivery"),
    ]
    assert body["status"] == "in_transit"
    assert body["summary"].startswith("1 of 3 packages delivered")


#: What the agent is told per sandbox fault (tracksvc.domain.failures' words).
FAULT_WORDS = {
    "500": "UPS's tracking service is failing; asked at ",
    "503": "UPS's tracking service is failing; asked at ",
    "malformed": "UPS's tracking service sent an answer tracksvc could not read; asked at ",
    "401": "UPS refused tracksvc's access; asked at ",
}


@pytest.mark.parametrize("fault", list(FAULT_WORDS))
async def test_a_failing_carrier_never_fails_the_others(service: Any, sandbox: Sandbox, fault: str) -> None:
    """UPS failing makes its shipment unknown with the reason; FedEx and USPS answer as usual."""
    await register(service, *(shipment(sid, name, order_number="W-3") for sid, name in THREE))
    sandbox.state.queue_fault(Carrier.ups, fault, 50)
    body = await track_ok(service, "W-3")
    by_id = {s["shipment_id"]: s for s in body["shipments"]}
    assert by_id["shp-o-1"]["status"] == "unknown"
    assert by_id["shp-o-1"]["reason"]
    assert by_id["shp-o-2"]["status"] == "delivered"
    assert by_id["shp-o-3"]["status"] == "out_for_delivery"
    assert body["status"] == "unknown"  # the least advanced: nothing is claimed that is not known
    assert body["agent_advice"].startswith(FAULT_WORDS[fault])
    assert by_id["shp-o-1"]["reason"].startswith(FAULT_WORDS[fault])
    assert by_id["shp-o-1"]["carrier_problem"]["detail"] not in body["agent_advice"]


async def test_a_hanging_carrier_costs_at_most_its_timeout(
    service_with: Any, sandbox: Sandbox
) -> None:
    """A carrier that never answers is cut off at its timeout; the others' answers are shown."""
    client = await service_with(carrier_timeout_s=0.4, carrier_retry_attempts=1)
    await register(client, *(shipment(sid, name, order_number="W-3") for sid, name in THREE))
    sandbox.state.hang_s = 1.0  # the sandbox's handler ends soon after, so teardown is quick
    sandbox.state.queue_fault(Carrier.fedex, "hang", 5)
    body = await track_ok(client, "W-3")
    by_id = {s["shipment_id"]: s for s in body["shipments"]}
    assert by_id["shp-o-2"]["status"] == "unknown"
    assert by_id["shp-o-2"]["reason"]
    assert by_id["shp-o-1"]["status"] == "in_transit"
    assert by_id["shp-o-3"]["status"] == "out_for_delivery"


async def test_unregistered_reference_that_is_no_number_is_404(service: Any) -> None:
    """Not registered and not a carrier number: 404 in the error shape."""
    await _two_orders(service)
    status, body = await track(service, "W-11")
    assert status == 404
    assert body["error"]["code"] == "reference_not_found"


async def test_agent_view_needs_the_agent_key(service: Any) -> None:
    """The order view is for agents (and admin): the warehouse key is refused."""
    await _two_orders(service)
    response = await service.get("/v1/track/W-10", headers={"Authorization": "Bearer warehouse-key"})
    assert response.status == 403
    response = await service.get("/v1/track/W-10", headers=AGENT)
    assert response.status == 200
