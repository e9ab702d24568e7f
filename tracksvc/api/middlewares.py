"""
Request middlewares: request context for logs (with one canonical line per
request), errors as JSON (never a stack trace; an unexpected one names its
request id), bounded request bodies, API-key roles, and writes confirmed by
Redis replicas before they are acknowledged.
"""

from __future__ import annotations

import hmac
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

import orjson
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from redis.exceptions import RedisError

from tracksvc.core.errors import BodyTooLarge, Forbidden, RegistryUnavailable, RequestError, Unauthorized
from tracksvc.core.redis import RedisClient
from tracksvc.core.replication import confirmed_replicas

log = structlog.get_logger("http")

#: Attribute set on handlers by :func:`requires`.
ROLES_ATTR = "_tracksvc_roles"

#: The role of the key that authenticated the request.
role_key = web.RequestKey("role_key", str)

#: The id of the request: in every log line of it, the ``X-Request-ID`` header and a 500's body.
request_id_key = web.RequestKey("request_id_key", str)

#: A caller's ``X-Request-ID`` is kept only when it is this plain (it goes into logs and headers).
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def requires(*roles: str) -> Callable[[Handler], Handler]:
    """Mark a handler as needing an API key of one of ``roles`` (admin always passes)."""

    def mark(handler: Handler) -> Handler:
        setattr(handler, ROLES_ATTR, frozenset((*roles, "admin")))
        return handler

    return mark


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    *,
    request_id: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> web.Response:
    """
    The one JSON error shape: ``{"error": {"code", "message"}}`` (``details``, ``request_id``).

    ``extra`` adds fields an error code documents (``did_you_mean`` of ``reference_not_found``).
    """
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    if extra:
        error.update(extra)
    if request_id is not None:
        error["request_id"] = request_id
    return web.Response(
        status=status,
        body=orjson.dumps({"error": error}),
        content_type="application/json",
    )


def role_for(api_keys: Mapping[str, str], presented: str) -> str | None:
    """The role of a presented key, compared in constant time against every key."""
    found: str | None = None
    for key, role in api_keys.items():
        if hmac.compare_digest(key.encode(), presented.encode()):
            found = role
    return found


def presented_key(request: web.Request) -> str | None:
    """The bearer key of a request, if any."""
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() == "bearer" and key.strip():
        return key.strip()
    return None


def make_auth_middleware(api_keys: Mapping[str, str]) -> Any:
    """Enforce the roles :func:`requires` put on handlers."""

    @web.middleware
    async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        allowed: frozenset[str] | None = getattr(_unwrap(request), ROLES_ATTR, None)
        if allowed is None:
            return await handler(request)
        key = presented_key(request)
        if key is None:
            raise Unauthorized("send an API key as 'Authorization: Bearer <key>'")
        role = role_for(api_keys, key)
        if role is None:
            raise Unauthorized("the API key is not valid")
        if role not in allowed:
            raise Forbidden(f"the '{role}' role may not use this route")
        request[role_key] = role
        return await handler(request)

    return auth_middleware


def make_body_limit_middleware(
    limit_bytes: int, streaming: Collection[tuple[str, str]] = ()
) -> Any:
    """
    Refuse request bodies over ``limit_bytes`` with 413, before reading them.

    A declared ``Content-Length`` over the limit is refused at once; a chunked body is
    cut when reading it passes the limit (the app's ``client_max_size``, set to the same
    limit, raises then).

    Args:
        limit_bytes: the most a route reads.
        streaming: ``(method, canonical path)`` of routes that stream their body and
            bound it themselves (the import); they take any size.
    """
    exempt = frozenset(streaming)

    @web.middleware
    async def body_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route
        resource = route.resource
        if (route.method, resource.canonical if resource is not None else "") in exempt:
            return await handler(request)
        if request.content_length is not None and request.content_length > limit_bytes:
            raise BodyTooLarge(limit_bytes)
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge as exc:
            raise BodyTooLarge(limit_bytes) from exc

    return body_limit_middleware


def _unwrap(request: web.Request) -> Callable[..., Awaitable[web.StreamResponse]] | None:
    match_info = request.match_info
    route = getattr(match_info, "route", None)
    return getattr(route, "handler", None)


@web.middleware
async def context_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind a request id to every log line; log one canonical line per request."""
    offered = request.headers.get("X-Request-ID", "")
    request_id = offered if REQUEST_ID_PATTERN.fullmatch(offered) else uuid.uuid4().hex
    request[request_id_key] = request_id
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id, method=request.method)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-ID"] = request_id
        return response
    finally:
        route = request.match_info.route.resource
        log.info(
            "request_completed",
            route=route.canonical if route is not None else request.path,
            status=status,
            elapsed_ms=round((time.perf_counter() - started) * 1000, 1),
        )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error becomes the JSON error shape; unexpected ones are logged, not shown."""
    try:
        return await handler(request)
    except RequestError as exc:
        return error_response(exc.http_status, exc.code, exc.message, exc.details)
    except RegistryUnavailable as exc:
        log.warning("registry_unavailable", error=str(exc))
        return error_response(
            503, "registry_unavailable",
            "the registry (Redis) is not reachable; nothing was written, try again shortly",
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        response = error_response(exc.status, code, exc.text or exc.reason)
        if exc.status == 405 and "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:
        log.exception("request_failed")
        request_id = request.get(request_id_key)
        return error_response(
            500, "internal_error",
            "tracksvc failed to answer; the failure was logged"
            + (f" under request id {request_id}" if request_id else ""),
            request_id=request_id,
        )


#: Requests that change nothing a caller relies on, though not GET: a batch of lookups.
READ_ONLY_WRITES = frozenset({("POST", "/v1/track")})
#: Methods whose 2xx acknowledges a write.
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def make_replicated_writes_middleware(
    redis: Callable[[web.Request], RedisClient], replicas: int, timeout_s: float
) -> Any:
    """
    Answer a write's 2xx only once ``replicas`` Redis replicas have it (``TRACKSVC_REDIS_WRITE_REPLICAS``).

    After the handler succeeded, every master is asked to ``WAIT`` for its
    replicas (:mod:`tracksvc.core.replication`); fewer within ``timeout_s``, or
    Redis not answering, turns the 2xx into ``503 write_not_replicated``: the
    write was applied but could be lost with its master, so the caller sends it
    again (every write is idempotent).
    """

    @web.middleware
    async def replicated_writes_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if request.method not in WRITE_METHODS or not 200 <= response.status < 300 or response.prepared:
            return response
        route = request.match_info.route.resource
        if route is not None and (request.method, route.canonical) in READ_ONLY_WRITES:
            return response
        try:
            confirmed = await confirmed_replicas(redis(request), replicas, timeout_s)
        except (RedisError, OSError) as exc:
            log.warning("write_not_replicated", error=type(exc).__name__)
            confirmed = None
        if confirmed is not None and confirmed >= replicas:
            return response
        found = "Redis could not be asked" if confirmed is None else f"{confirmed} confirmed it"
        return error_response(
            503, "write_not_replicated",
            f"the write was applied but not confirmed by {replicas} Redis replica(s) within "
            f"{timeout_s:g} s ({found}); it could be lost if a Redis master fails: send it again",
        )

    return replicated_writes_middleware
