"""
What every carrier adapter shares: the adapter protocol, the OAuth token
cache, the retry policy and the one HTTP call path.

Each carrier keeps its pure request building and parsing in
``carriers/<carrier>/tracking.py``; its ``transport.py`` subclasses
:class:`OAuthTransport` and is the only place that does HTTP for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Protocol

import aiohttp
import orjson
import structlog
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)
from tenacity.wait import wait_base

from carriers.errors import (
    CarrierAuthError,
    CarrierError,
    CarrierRateLimited,
    CarrierResponseError,
    CarrierTimeout,
    CarrierUnavailable,
)
from carriers.models import Carrier, CarrierMessage, TrackingResult
from carriers.settings import CarrierSettings

log = structlog.get_logger("carriers")

#: HTTP statuses worth another try; everything else is answered as it is.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})

#: Longest Retry-After we sleep through inside one lookup; longer ones fail fast.
MAX_RETRY_AFTER_S = 5.0

TrackAnswer = dict[str, TrackingResult | CarrierMessage]
"""Per requested number: the carrier's result, or a message saying why there is none."""


class CarrierAdapter(Protocol):
    """What the service needs from a carrier."""

    carrier: Carrier
    #: How many numbers one tracking call may carry.
    max_batch: int

    def __init__(
        self,
        session: aiohttp.ClientSession,
        settings: CarrierSettings,
        *,
        retry: RetryPolicy | None = None,
    ) -> None: ...

    async def track(self, numbers: Sequence[str]) -> TrackAnswer:
        """
        Ask the carrier about ``numbers`` (at most :attr:`max_batch`).

        Returns:
            One entry per requested number.

        Raises:
            CarrierError: the call as a whole failed.
        """
        ...


@dataclass(frozen=True)
class RawResponse:
    """An HTTP answer the parser decides about (2xx and the 4xx it understands)."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self, carrier: Carrier) -> Any:
        """Decode the body as JSON or raise :class:`CarrierResponseError`."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise CarrierResponseError(
                f"malformed JSON from carrier: {exc}", carrier=carrier, status=self.status
            ) from exc


@dataclass(frozen=True)
class RetryPolicy:
    """How a transport retries: injectable so tests can pass a zero wait."""

    attempts: int = 3
    wait: wait_base = field(
        default_factory=lambda: wait_random_exponential(multiplier=0.2, max=2.0)
    )

    def retrying(self, carrier: Carrier) -> AsyncRetrying:
        """A tenacity controller for one carrier call."""

        def before_sleep(state: Any) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "carrier_request_retry",
                carrier=carrier.value,
                attempt=state.attempt_number,
                error=str(exc),
            )

        return AsyncRetrying(
            stop=stop_after_attempt(max(1, self.attempts)),
            wait=_RetryAfterWait(self.wait),
            retry=retry_if_exception(_worth_retrying),
            reraise=True,
            before_sleep=before_sleep,
        )


def _worth_retrying(exc: BaseException) -> bool:
    if isinstance(exc, CarrierRateLimited):
        # A long Retry-After is answered at once (stale cache, quota) rather than slept through.
        return exc.retry_after_s is None or exc.retry_after_s <= MAX_RETRY_AFTER_S
    if isinstance(exc, CarrierUnavailable):
        # No status: the connection failed. A 501 or 505 will not get better by asking again.
        return exc.status is None or exc.status in RETRYABLE_STATUSES
    return isinstance(exc, CarrierTimeout)


class _RetryAfterWait(wait_base):
    """Jittered backoff, but never shorter than the carrier's Retry-After."""

    def __init__(self, inner: wait_base) -> None:
        self.inner = inner

    def __call__(self, retry_state: Any) -> float:
        base = float(self.inner(retry_state))
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, CarrierRateLimited) and exc.retry_after_s is not None:
            return max(base, exc.retry_after_s)
        return base


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass
class _Token:
    value: str
    expires_at: float  # monotonic seconds


class OAuthTransport:
    """
    One carrier's HTTP: an OAuth client-credentials token shared by every
    concurrent call, one refresh and retry on 401, jittered retries on
    transport errors, 5xx and 429, and status codes turned into the
    :mod:`carriers.errors` tree.

    Subclasses set :attr:`carrier` and implement :meth:`token_request`.
    """

    carrier: ClassVar[Carrier]

    def __init__(
        self,
        session: aiohttp.ClientSession,
        settings: CarrierSettings,
        *,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session = session
        self.settings = settings
        self.retry = retry or RetryPolicy(attempts=settings.retry_attempts)
        self._clock = clock
        self._token: _Token | None = None
        self._token_lock = asyncio.Lock()
        self.token_fetches = 0
        self.timeout = aiohttp.ClientTimeout(
            total=settings.timeout_s, sock_connect=settings.connect_timeout_s
        )

    # -- token -------------------------------------------------------------

    def token_request(self) -> tuple[str, dict[str, Any]]:
        """Return ``(path, aiohttp request kwargs)`` for the token call."""
        raise NotImplementedError

    @staticmethod
    def token_from_body(body: Mapping[str, Any]) -> tuple[str, float]:
        """Pick the access token and lifetime (seconds) out of a token response."""
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise ValueError("token response has no access_token")
        expires_in = body.get("expires_in", 3600)
        return token, float(expires_in)  # UPS and USPS send it as a string

    async def access_token(self, *, stale: str | None = None) -> str:
        """
        The cached token, fetched once for every concurrent caller.

        Args:
            stale: a token the carrier just refused; a new one is fetched
                unless another caller already replaced it.
        """
        token = self._token
        if token is not None and token.value != stale and token.expires_at > self._clock():
            return token.value
        async with self._token_lock:
            token = self._token
            if token is not None and token.value != stale and token.expires_at > self._clock():
                return token.value
            self._token = await self._fetch_token()
            return self._token.value

    async def _fetch_token(self) -> _Token:
        path, kwargs = self.token_request()
        self.token_fetches += 1
        response = await self._send("POST", path, kwargs, retryable=True)
        if response.status in (400, 401, 403):
            raise CarrierAuthError(
                "carrier refused the client credentials", carrier=self.carrier, status=response.status
            )
        if response.status >= 300:
            raise CarrierUnavailable(
                "unexpected answer from the token endpoint",
                carrier=self.carrier,
                status=response.status,
            )
        try:
            value, expires_in_s = self.token_from_body(response.json(self.carrier))
        except (ValueError, TypeError, AttributeError) as exc:
            raise CarrierResponseError(
                f"token response not understood: {exc}", carrier=self.carrier, status=response.status
            ) from exc
        lifetime_s = max(1.0, expires_in_s - self.settings.token_refresh_buffer_s)
        if expires_in_s <= self.settings.token_refresh_buffer_s:
            # A short-lived token: keep it for most of its life instead.
            lifetime_s = max(1.0, expires_in_s * 0.8)
        log.info("carrier_token_fetched", carrier=self.carrier.value, expires_in_s=expires_in_s)
        return _Token(value=value, expires_at=self._clock() + lifetime_s)

    # -- calls -------------------------------------------------------------

    async def call(
        self,
        method: str,
        path: str,
        *,
        tracking_number: str | None = None,
        **kwargs: Any,
    ) -> RawResponse:
        """
        An authenticated call; returns the answer for the parser to read.

        2xx and 4xx other than 401/403/429 come back as :class:`RawResponse`:
        the carrier's parser knows what its 400s and 404s mean.

        Raises:
            CarrierError: auth failure, rate limit, 5xx, timeout, connection error.
        """
        token = await self.access_token()
        response = await self._authorized(method, path, token, tracking_number, kwargs)
        if response.status == 401:
            # The token may have been revoked or expired early: one refresh, one retry.
            log.info("carrier_token_refused", carrier=self.carrier.value)
            token = await self.access_token(stale=token)
            response = await self._authorized(method, path, token, tracking_number, kwargs)
        if response.status in (401, 403):
            raise CarrierAuthError(
                "carrier refused our access token",
                carrier=self.carrier,
                tracking_number=tracking_number,
                status=response.status,
            )
        return response

    async def _authorized(
        self,
        method: str,
        path: str,
        token: str,
        tracking_number: str | None,
        kwargs: dict[str, Any],
    ) -> RawResponse:
        headers = {**kwargs.get("headers", {}), "Authorization": f"Bearer {token}"}
        return await self._send(
            method, path, {**kwargs, "headers": headers}, retryable=True, tracking_number=tracking_number
        )

    async def _send(
        self,
        method: str,
        path: str,
        kwargs: dict[str, Any],
        *,
        retryable: bool,
        tracking_number: str | None = None,
    ) -> RawResponse:
        retrying = self.retry.retrying(self.carrier) if retryable else RetryPolicy(1).retrying(
            self.carrier
        )
        async for attempt in retrying:
            with attempt:
                return await self._send_once(method, path, kwargs, tracking_number)
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    async def _send_once(
        self, method: str, path: str, kwargs: dict[str, Any], tracking_number: str | None
    ) -> RawResponse:
        url = self.settings.base_url + path
        started = time.perf_counter()
        try:
            async with self.session.request(method, url, timeout=self.timeout, **kwargs) as resp:
                body = await resp.read()
                response = RawResponse(status=resp.status, headers=dict(resp.headers), body=body)
        except TimeoutError as exc:
            raise CarrierTimeout(
                f"no answer within {self.settings.timeout_s:g} s",
                carrier=self.carrier,
                tracking_number=tracking_number,
            ) from exc
        except aiohttp.ClientError as exc:
            raise CarrierUnavailable(
                f"connection failed: {type(exc).__name__}",
                carrier=self.carrier,
                tracking_number=tracking_number,
            ) from exc
        elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
        log.debug(
            "carrier_request_completed",
            carrier=self.carrier.value,
            method=method,
            path=path.split("?")[0],
            status=response.status,
            elapsed_ms=elapsed_ms,
        )
        if response.status == 429:
            raise CarrierRateLimited(
                "carrier rate limit reached",
                carrier=self.carrier,
                tracking_number=tracking_number,
                retry_after_s=_bounded_retry_after(response.headers),
            )
        if response.status >= 500:
            raise CarrierUnavailable(
                "carrier server error",
                carrier=self.carrier,
                tracking_number=tracking_number,
                status=response.status,
            )
        return response


def _bounded_retry_after(headers: Mapping[str, str]) -> float | None:
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    return parse_retry_after(value)


def unavailable_message(error: CarrierError, number: str) -> CarrierMessage:
    """Turn a whole-call failure into the per-number message the service shows."""
    return CarrierMessage(
        carrier=error.carrier,
        tracking_number=number,
        outcome=error.outcome,
        code=str(error.status or ""),
        message=error.message,
    )


async def track_each(
    numbers: Sequence[str],
    track_one: Callable[[str], Awaitable[TrackingResult | CarrierMessage]],
) -> TrackAnswer:
    """
    One call per number, all at once (carriers that take one number per call).

    Returns:
        Per number its result or message; a number whose own call failed gets
        :func:`unavailable_message` while the others keep their answers.

    Raises:
        CarrierError: every call failed (the carrier, not one number, is the problem).
    """
    unique = list(dict.fromkeys(numbers))
    if not unique:
        return {}
    outcomes = await asyncio.gather(*(track_one(n) for n in unique), return_exceptions=True)
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    for failure in failures:
        if not isinstance(failure, CarrierError):
            raise failure
    if len(failures) == len(outcomes):
        raise failures[0]
    answer: TrackAnswer = {}
    for number, outcome in zip(unique, outcomes, strict=True):
        if isinstance(outcome, CarrierError):
            answer[number] = unavailable_message(outcome, number)
        elif not isinstance(outcome, BaseException):
            answer[number] = outcome
    return answer


def decode_for(response: RawResponse, carrier: Carrier, number: str) -> Any:
    """The JSON body of one number's answer; a malformed one names the number."""
    try:
        return response.json(carrier)  # Any: the parser checks the shape
    except CarrierResponseError as exc:
        exc.tracking_number = number
        raise


def one_answer(
    carrier: Carrier,
    number: str,
    status: int,
    results: Sequence[TrackingResult],
    messages: Sequence[CarrierMessage],
) -> TrackingResult | CarrierMessage:
    """The parser's answer about ``number``: its result, else its message."""
    if results:
        return next((r for r in results if r.tracking_number == number), results[0])
    if messages:
        return next((m for m in messages if m.tracking_number == number), messages[0])
    raise CarrierResponseError(
        "the carrier's answer held neither tracking data nor a message",
        carrier=carrier,
        tracking_number=number,
        status=status,
    )
