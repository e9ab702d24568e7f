"""
Every carrier has the same shape: the same modules, the same functions, one
tracking flow, one rule for a number the answer left out, one set of JSON
readers that treat a wrong type the same way.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import pkgutil
from collections.abc import AsyncIterator, Callable
from types import ModuleType
from typing import Any

import aiohttp
import pytest
from tenacity import wait_none

import carriers
from carriers.base import (
    MISSING_CODE,
    RetryPolicy,
    TokenEndpoint,
    TrackingAdapter,
    missing_from_answer,
)
from carriers.errors import CarrierResponseError
from carriers.json_read import Reader
from carriers.models import Carrier, CarrierMessage, Outcome, TrackingResult
from carriers.sandbox.scenarios import CATALOGUE
from tests.conftest import Sandbox

#: Modules every carrier package has, and nothing else ...
MODULES = frozenset({"adapter", "tracking", "units"})
#: ... but for a feature only one carrier offers: UPS alone pushes events (Track Alert).
ONLY_ONE_HAS = {Carrier.ups: frozenset({"alerts"})}

CARRIERS = list(Carrier)


def package(carrier: Carrier) -> ModuleType:
    return importlib.import_module(f"carriers.{carrier.value}")


def tracking(carrier: Carrier) -> ModuleType:
    return importlib.import_module(f"carriers.{carrier.value}.tracking")


# -- the same modules and functions ------------------------------------------------------


@pytest.mark.parametrize("carrier", CARRIERS, ids=str)
def test_every_carrier_package_has_the_same_modules(carrier: Carrier) -> None:
    """adapter, tracking and units in each package; no transport of its own."""
    found = {m.name for m in pkgutil.iter_modules(package(carrier).__path__)}
    assert found == MODULES | ONLY_ONE_HAS.get(carrier, frozenset())


@pytest.mark.parametrize("carrier", CARRIERS, ids=str)
def test_each_package_exports_only_its_adapter(carrier: Carrier) -> None:
    """__all__ is ["Adapter"], a TrackingAdapter for that carrier with its token endpoint as data."""
    module = package(carrier)
    assert module.__all__ == ["Adapter"]
    adapter = module.Adapter
    assert issubclass(adapter, TrackingAdapter)
    assert (adapter.carrier, adapter.token_endpoint.carrier) == (carrier, carrier)
    assert isinstance(tracking(carrier).TOKEN, TokenEndpoint)
    assert adapter.max_batch == tracking(carrier).MAX_NUMBERS


def test_same_signatures_for_every_carrier() -> None:
    """Adapter.track, build_request and parse_response have one signature across carriers."""
    signatures = {
        carrier: (
            inspect.signature(package(carrier).Adapter.track),
            inspect.signature(tracking(carrier).build_request),
            inspect.signature(tracking(carrier).parse_response),
        )
        for carrier in CARRIERS
    }
    track, build, parse = signatures[Carrier.ups]
    assert list(track.parameters) == ["self", "numbers"]
    assert list(build.parameters) == ["numbers", "settings"]
    assert list(parse.parameters) == ["status", "payload", "numbers"]
    assert all(found == signatures[Carrier.ups] for found in signatures.values())


def test_registry_maps_every_carrier_to_its_adapter() -> None:
    """carriers.REGISTRY holds each carrier's own Adapter, and nothing else."""
    assert dict(carriers.REGISTRY) == {c: package(c).Adapter for c in CARRIERS}


# -- one rule for a number the answer left out -------------------------------------------


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.mark.parametrize("carrier", CARRIERS, ids=str)
async def test_a_number_the_answer_omits_is_malformed_never_not_found(
    carrier: Carrier,
    sandbox: Sandbox,
    http: aiohttp.ClientSession,
    make_settings: Callable[..., Any],
) -> None:
    """A well-formed answer (real HTTP) that mentions no number: missing_from_answer, not not_found."""
    number = next(s.number for s in CATALOGUE if s.carrier is carrier and not s.not_found)
    adapter = package(carrier).Adapter(
        http,
        make_settings(base_url=sandbox.url).carrier(carrier),
        retry=RetryPolicy(attempts=1, wait=wait_none()),
    )
    sandbox.state.queue_fault(carrier, "omit", 1)
    answer = await adapter.track([number])
    assert answer == {number: missing_from_answer(carrier, number)}
    message = answer[number]
    assert isinstance(message, CarrierMessage)
    assert (message.outcome, message.code) == (Outcome.malformed, MISSING_CODE)


# -- one set of JSON readers ----------------------------------------------------------------

NUMBER = {
    Carrier.ups: "1Z999AA10123456784",
    Carrier.fedex: "123456789012",
    Carrier.usps: "9400100000000000000000",
}

#: Per carrier: a good answer, the path to a required field (a status code), the path to an
#: optional one (the city of the newest event), and how the parsed city is read back.
GOOD: dict[Carrier, dict[str, Any]] = {
    Carrier.ups: {
        "trackResponse": {
            "shipment": [
                {
                    "package": [
                        {
                            "trackingNumber": NUMBER[Carrier.ups],
                            "activity": [
                                {
                                    "status": {"type": "I", "code": "AR", "statusCode": "005",
                                               "description": "Arrived at Facility"},
                                    "location": {"address": {"city": "Louisville", "countryCode": "US"}},
                                    "gmtDate": "20240423",
                                    "gmtTime": "13:15:19",
                                }
                            ],
                        }
                    ]
                }
            ]
        }
    },
    Carrier.fedex: {
        "output": {
            "completeTrackResults": [
                {
                    "trackingNumber": NUMBER[Carrier.fedex],
                    "trackResults": [
                        {
                            "trackingNumberInfo": {"trackingNumber": NUMBER[Carrier.fedex]},
                            "latestStatusDetail": {"code": "AR", "derivedCode": "IT"},
                            "scanEvents": [
                                {
                                    "date": "2024-04-24T16:05:00-07:00",
                                    "eventType": "AR",
                                    "derivedStatusCode": "IT",
                                    "eventDescription": "Arrived at FedEx location",
                                    "scanLocation": {"city": "MEMPHIS", "countryCode": "US"},
                                }
                            ],
                        }
                    ],
                }
            ]
        }
    },
    Carrier.usps: {
        "trackingNumber": NUMBER[Carrier.usps],
        "statusCategory": "In Transit",
        "trackingEvents": [
            {
                "eventType": "Arrived at USPS Regional Facility",
                "eventCode": "10",
                "eventTimestamp": "2024-11-20T10:00:00",
                "GMTOffset": "-06:00",
                "eventCity": "DALLAS",
                "eventState": "TX",
            }
        ],
    },
}
_UPS_ACTIVITY = ("trackResponse", "shipment", 0, "package", 0, "activity", 0)
_FEDEX_RESULT = ("output", "completeTrackResults", 0, "trackResults", 0)
REQUIRED: dict[Carrier, tuple[Any, ...]] = {
    Carrier.ups: (*_UPS_ACTIVITY, "status", "statusCode"),
    Carrier.fedex: (*_FEDEX_RESULT, "latestStatusDetail", "code"),
    Carrier.usps: ("trackingEvents", 0, "eventCode"),
}
OPTIONAL: dict[Carrier, tuple[Any, ...]] = {
    Carrier.ups: (*_UPS_ACTIVITY, "location", "address", "city"),
    Carrier.fedex: (*_FEDEX_RESULT, "scanEvents", 0, "scanLocation", "city"),
    Carrier.usps: ("trackingEvents", 0, "eventCity"),
}


def _with(payload: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(payload)
    node: Any = changed
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return changed


def _read(carrier: Carrier, payload: Any) -> TrackingResult | Outcome:
    """What the carrier's parser makes of ``payload`` for its number: a result, or the outcome."""
    number = NUMBER[carrier]
    try:
        results, messages = tracking(carrier).parse_response(200, payload, [number])
    except CarrierResponseError as exc:
        return exc.outcome
    answer = next((r for r in results if r.tracking_number == number), None)
    return answer or next(m.outcome for m in messages if m.tracking_number == number)


WRONG = [{"x": 1}, ["x"], True, 1.5]


@pytest.mark.parametrize("wrong", WRONG, ids=repr)
@pytest.mark.parametrize("carrier", CARRIERS, ids=str)
def test_a_wrong_type_in_a_required_field_is_malformed(carrier: Carrier, wrong: Any) -> None:
    """A status code of the wrong type: the carrier's answer for the number is malformed."""
    good = _read(carrier, GOOD[carrier])
    assert isinstance(good, TrackingResult)
    assert good.parse_warnings == []
    assert _read(carrier, _with(GOOD[carrier], REQUIRED[carrier], wrong)) is Outcome.malformed


@pytest.mark.parametrize("wrong", WRONG, ids=repr)
@pytest.mark.parametrize("carrier", CARRIERS, ids=str)
def test_a_wrong_type_in_an_optional_field_is_empty_with_a_warning(carrier: Carrier, wrong: Any) -> None:
    """A city of the wrong type: left empty, one parse warning names it, the rest is kept."""
    good = _read(carrier, GOOD[carrier])
    assert isinstance(good, TrackingResult)
    assert good.events[0].location is not None
    assert good.events[0].location.city
    result = _read(carrier, _with(GOOD[carrier], OPTIONAL[carrier], wrong))
    assert isinstance(result, TrackingResult)
    location = result.events[0].location
    assert location is None or location.city is None
    assert len(result.parse_warnings) == 1
    assert "city" in result.parse_warnings[0].lower()
    assert "ignored" in result.parse_warnings[0]
    assert (result.status, result.events[0].code) == (good.status, good.events[0].code)


@pytest.mark.parametrize(
    ("method", "value", "expected"),
    [
        ("obj", {"a": 1}, {"a": 1}),
        ("obj", None, CarrierResponseError),
        ("obj", [], CarrierResponseError),
        ("array", None, []),
        ("array", {}, CarrierResponseError),
        ("objects", [{}, "x"], CarrierResponseError),
        ("text", " 003 ", "003"),
        ("text", 7, "7"),
        ("text", "  ", None),
        ("text", None, None),
        ("text", True, CarrierResponseError),
        ("text", 1.5, CarrierResponseError),
        ("text", {"code": "003"}, CarrierResponseError),
    ],
)
@pytest.mark.parametrize("carrier", CARRIERS, ids=str)
def test_required_readers_refuse_a_wrong_type_alike(
    carrier: Carrier, method: str, value: Any, expected: Any
) -> None:
    """A required field of the wrong type is a malformed error naming the carrier, number and field."""
    read = Reader(carrier, tracking_number="N1", status=200)
    if expected is not CarrierResponseError:
        assert getattr(read, method)(value, "field") == expected
        return
    with pytest.raises(CarrierResponseError) as caught:
        getattr(read, method)(value, "field")
    assert (caught.value.carrier, caught.value.tracking_number, caught.value.outcome) == (
        carrier, "N1", Outcome.malformed
    )
    assert "field" in caught.value.message


@pytest.mark.parametrize(
    ("method", "value", "expected", "warns"),
    [
        ("optional_obj", {"a": 1}, {"a": 1}, False),
        ("optional_obj", None, None, False),
        ("optional_obj", "x", None, True),
        ("optional_objects", [{"a": 1}, "x"], [{"a": 1}], True),
        ("optional_objects", "x", [], True),
        ("optional_objects", None, [], False),
        ("optional_text", " Dallas ", "Dallas", False),
        ("optional_text", 90210, "90210", False),
        ("optional_text", {"x": 1}, None, True),
        ("optional_text", False, None, True),
        ("optional_text", 1.5, None, True),
    ],
)
@pytest.mark.parametrize("carrier", CARRIERS, ids=str)
def test_optional_readers_read_a_wrong_type_as_absent_alike(
    carrier: Carrier, method: str, value: Any, expected: Any, warns: bool
) -> None:
    """An optional field of the wrong type reads as absent and leaves one warning naming it."""
    read = Reader(carrier, tracking_number="N1", status=200)
    assert getattr(read, method)(value, "field") == expected
    assert [w for w in read.warnings if w.startswith("field")] == (read.warnings if warns else [])
    assert bool(read.warnings) is warns
