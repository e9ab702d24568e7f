"""``/readyz`` needs no key, so it says what is wrong without naming where Redis lives."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.contract import assert_matches
from tracksvc.dev.redis_server import free_port


async def test_readyz_with_redis_unreachable_names_no_host_or_port(
    service_with: Callable[..., Any],
) -> None:
    """Redis on a closed port: 503 degraded with a reason, and neither host nor port in the answer."""
    port = free_port()
    client = await service_with(redis_url=f"redis://127.0.0.1:{port}/0")
    response = await client.get("/readyz")
    text = await response.text()
    body = await response.json()
    assert_matches("/readyz", "get", response.status, body)
    assert (response.status, body["status"], body["redis"]) == (503, "degraded", "unreachable")
    assert body["reasons"]
    assert all(reason.startswith("redis unreachable: ") for reason in body["reasons"])
    assert "127.0.0.1" not in text
    assert str(port) not in text
