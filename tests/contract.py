"""Check answers against openapi.yaml: the contract is kept in step by tests."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml
from openapi_schema_validator import OAS31Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).resolve().parents[1] / "openapi.yaml"
BASE = "urn:tracksvc-openapi"


@cache
def spec() -> dict[str, Any]:
    """The parsed openapi.yaml."""
    loaded: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text())
    return loaded


@cache
def _registry() -> Registry:  # type: ignore[type-arg]
    resource = Resource.from_contents(spec(), default_specification=DRAFT202012)
    return Registry().with_resource(BASE, resource)  # type: ignore[call-arg, return-value]


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def assert_matches(path: str, method: str, status: int, body: Any, media: str = "application/json") -> None:
    """
    Validate ``body`` against the response schema of ``method path`` for ``status``.

    Raises:
        AssertionError: the route, status or media type is not in the contract.
        jsonschema.ValidationError: the body does not match the schema.
    """
    operation = spec()["paths"].get(path, {}).get(method.lower())
    assert operation is not None, f"{method} {path} is not in openapi.yaml"
    responses = operation["responses"]
    assert str(status) in responses, f"{method} {path} does not document HTTP {status}"
    response = responses[str(status)]
    pointer = ["paths", path, method.lower(), "responses", str(status)]
    if "$ref" in response:
        ref = response["$ref"].removeprefix("#/").split("/")
        response, pointer = spec()[ref[0]][ref[1]][ref[2]], ref
    assert media in response.get("content", {}), f"HTTP {status} of {method} {path} has no {media}"
    schema = {"$ref": f"{BASE}#/" + _pointer(*pointer, "content", media, "schema")}
    validator = OAS31Validator(
        schema, registry=_registry(), format_checker=OAS31Validator.FORMAT_CHECKER
    )
    validator.validate(body)


def assert_schema(name: str, body: Any) -> None:
    """
    Validate ``body`` against ``components.schemas.<name>`` (e.g. a callback's body).

    Raises:
        jsonschema.ValidationError: the body does not match the schema.
    """
    assert name in spec()["components"]["schemas"], f"no schema {name} in openapi.yaml"
    schema = {"$ref": f"{BASE}#/" + _pointer("components", "schemas", name)}
    validator = OAS31Validator(
        schema, registry=_registry(), format_checker=OAS31Validator.FORMAT_CHECKER
    )
    validator.validate(body)
