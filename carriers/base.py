"""
What every carrier adapter shares: the adapter contract, the one tracking
flow, the one HTTP/OAuth transport and the one rule for a number the
carrier's answer left out.

A carrier is four modules of the same names (``carriers/<carrier>/``):

* ``tracking.py``: pure ``build_request(numbers, settings)`` and
  ``parse_response(status, payload, numbers)``, and the carrier's OAuth
  token endpoint as data (:class:`TokenEndpoint`);
* ``units.py``: its status and outcome tables;
* ``adapter.py``: ``Adapter``, a :class:`TrackingAdapter` that names the above;
* ``__init__.py``: exports ``Adapter`` only.

:class:`TrackingAdapter` builds each call, sends it through
:class:`OAuthTransport` (token shared by concurrent calls, one refresh and
retry on 401, jittered retries, explicit timeouts) and parses the answer;
JSON is read with :mod:`carriers.json_read`, HTTP statuses become errors in
:func:`carriers.errors.error_for_status`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Literal, Protocol

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
    carrier_name,
    error_for_status,
)
from carriers.models import Carrier, CarrierMessage, Outcome, TrackingResult
from carriers.settings import CarrierSettings

log = structlog.get_logger("carriers")

#: HTTP statuses worth another try; everything else is answered as it is.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})

#: Longest Retry-After we sleep through inside one lookup; longer ones fail fast.
MAX_RETRY_AFTER_S = 5.0

#: Message code for a number the carrier's answer never mentions (ours, not a carrier's).
MISSING_CODE = "MISSING_FROM_RESPONSE"

TrackAnswer = dict[str, TrackingResult | CarrierMessage]
"""Per requested number: the carrier's result, or a message saying why there is none."""

ParsedAnswer = tuple[list[TrackingResult], list[CarrierMessage]]
"""What a parser found in one answer: results, and per-number outcomes as messages."""


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
        Ask the carrier about ``numbers`` (any count; split into calls of :attr:`max_batch`).

        Returns:
            One entry per distinct requested number.

        Raises:
            CarrierError: the call as a whole failed.
        """
        ...


# -- the one rule for a number the answer left out ------------------------------------


def missing_from_answer(carrier: Carrier, number: str) -> CarrierMessage:
    """
    The answer for a number the carrier's answer did not mention.

    The carrier did not say the number does not exist, so this is never
    ``not_found``: tracksvc could not look, and says so (``malformed``).

    Args:
        carrier: the carrier that was asked.
        number: the number it left out.

    Returns:
        A ``malformed`` message with code :data:`MISSING_CODE`.
    """
    return CarrierMessage(
        carrier=carrier,
        tracking_number=number,
        outcome=Outcome.malformed,
        code=MISSING_CODE,
        message=f"{carrier_name(carrier)}'s answer did not mention this number",
    )


def unavailable_message(error: CarrierError, number: str) -> CarrierMessage:
    """
    Turn a whole-call failure into the per-number message the service shows.

    Its code is the error's own code when it has one, else the HTTP status (or empty).
    """
    return CarrierMessage(
        carrier=error.carrier,
        tracking_number=number,
        outcome=error.outcome,
        code=error.code or str(error.status or ""),
        message=error.message,
    )


def answer_for(
    carrier: Carrier,
    asked: Sequence[str],
    results: Sequence[TrackingResult],
    messages: Sequence[CarrierMessage],
) -> TrackAnswer:
    """
    Every asked number's answer from what one call's parser found.

    Per number: the first result naming it, else the first message naming it,
    else :func:`missing_from_answer`. Numbers the carrier added on its own are
    left out. A call that asked a single number takes the carrier's first
    result (else message) as its answer when none names it: a UPS shipment
    number is answered with its packages' own numbers.

    Args:
        carrier: the carrier asked.
        asked: the numbers of the call.
        results: the parser's results.
        messages: the parser's messages.

    Returns:
        One entry per asked number.
    """
    named: TrackAnswer = {}
    items: list[TrackingResult | CarrierMessage] = [*results, *messages]
    for item in items:
        if item.tracking_number is not None:
            named.setdefault(item.tracking_number, item)
    sole: TrackingResult | CarrierMessage | None = None
    if len(asked) == 1 and (results or messages):
        sole = results[0] if results else messages[0]
    answer: TrackAnswer = {}
    for number in asked:
        found = named.get(number, sole)
        answer[number] = found if found is not None else missing_from_answer(carrier, number)
    return answer


# -- requests ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CarrierRequest:
    """One tracking call as a carrier's ``build_request`` describes it (no token yet)."""

    method: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    #: Sent as a JSON body when not None.
    body: Any = None

    def as_kwargs(self) -> dict[str, Any]:
        """The aiohttp request arguments (headers, query, body)."""
        kwargs: dict[str, Any] = {"headers": dict(self.headers)}
        if self.params:
            kwargs["params"] = dict(self.params)
        if self.body is not None:
            kwargs["data"] = orjson.dumps(self.body)
            kwargs["headers"].setdefault("Content-Type", "application/json")
        return kwargs


@dataclass(frozen=True)
class TokenEndpoint:
    """
    How a carrier hands out OAuth client-credentials tokens: data, not a subclass.

    Args:
        carrier: whose endpoint it is.
        path: the token path below the carrier's base URL.
        credentials_in: ``"basic"`` (HTTP Basic auth, UPS) or ``"body"``
            (``client_id``/``client_secret`` fields, FedEx and USPS); the
            secret never goes anywhere else.
        scope: the scope asked for; a token granted without it is refused.
        headers: extra headers of the token call.
        as_json: send the fields as JSON instead of a form.
    """

    carrier: Carrier
    path: str
    credentials_in: Literal["basic", "body"] = "body"
    scope: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    as_json: bool = False

    def request(self, settings: CarrierSettings) -> dict[str, Any]:
        """
        The aiohttp arguments of the token call.

        Args:
            settings: the carrier's settings (client id and secret).

        Returns:
            Request kwargs: the form (or JSON) fields and the headers.
        """
        client_id = settings.client_id.get_secret_value()
        secret = settings.client_secret.get_secret_value()
        fields = {"grant_type": "client_credentials"}
        headers = dict(self.headers)
        if self.credentials_in == "basic":
            headers["Authorization"] = aiohttp.encode_basic_auth(client_id, secret)
        else:
            fields |= {"client_id": client_id, "client_secret": secret}
        if self.scope:
            fields["scope"] = self.scope
        return {"json" if self.as_json else "data": fields, "headers": headers}

    def read(self, body: Any) -> tuple[str, float]:
        """
        The access token and its lifetime (seconds) from a token answer.

        ``expires_in`` comes as a number (FedEx, USPS) or a string (UPS, the
        USPS README); both are read.

        Args:
            body: the decoded token answer.

        Returns:
            ``(access token, lifetime in seconds)``.

        Raises:
            ValueError: no token, or a lifetime that is not a positive number
                (the transport reports a malformed answer).
            CarrierAuthError: the token lacks :attr:`scope`: the app is not
                entitled to it, and every call would answer 401 (USPS issue #56).
        """
        if not isinstance(body, Mapping):
            raise ValueError("token response is not a JSON object")
        token = body.get("access_token")
        if not isinstance(token, str) or not token.strip():
            raise ValueError("token response has no access_token")
        raw = body.get("expires_in")
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            raise ValueError("token response has no expires_in")
        lifetime_s = float(raw)  # ValueError for a non-numeric string
        if not lifetime_s > 0:
            raise ValueError(f"token lifetime {raw!r} is not positive")
        granted = body.get("scope")
        if self.scope and isinstance(granted, str) and self.scope not in granted.split():
            name = carrier_name(self.carrier)
            raise CarrierAuthError(
                f"{name} granted a token without the {self.scope!r} scope; "
                f"the app needs that access from {name}",
                carrier=self.carrier,
            )
        return token, lifetime_s


@dataclass(frozen=True)
class RawResponse:
    """An HTTP answer the parser decides about (2xx and the 4xx it understands)."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self, carrier: Carrier, tracking_number: str | None = None) -> Any:
        """
        Decode the body as JSON.

        Args:
            carrier: who answered, for the error.
            tracking_number: the number asked, when the call asked one.

        Raises:
            CarrierResponseError: the body is not JSON.
        """
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise CarrierResponseError(
                f"malformed JSON from carrier: {exc}",
                carrier=carrier,
                tracking_number=tracking_number,
                status=self.status,
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
    The HTTP of every carrier: an OAuth client-credentials token shared by
    every concurrent call, one refresh and retry on 401, jittered retries on
    connection errors, timeouts, 5xx and short 429s, explicit timeouts, and
    statuses turned into errors by :func:`carriers.errors.error_for_status`.

    Args:
        session: the app's shared HTTP session.
        settings: the carrier's settings (base URL, credentials, timeouts).
        token: the carrier's token endpoint.
        retry: how calls are retried (tests pass a zero wait).
        clock: monotonic seconds, for token lifetimes.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        settings: CarrierSettings,
        token: TokenEndpoint,
        *,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session = session
        self.settings = settings
        self.token = token
        self.carrier = token.carrier
        self.retry = retry or RetryPolicy(attempts=settings.retry_attempts)
        self._clock = clock
        self._token: _Token | None = None
        self._token_lock = asyncio.Lock()
        self.token_fetches = 0
        self.timeout = aiohttp.ClientTimeout(
            total=settings.timeout_s, sock_connect=settings.connect_timeout_s
        )

    # -- token -------------------------------------------------------------

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
        self.token_fetches += 1
        response = await self._send(
            "POST", self.token.path, self.token.request(self.settings), token_endpoint=True
        )
        try:
            value, expires_in_s = self.token.read(response.json(self.carrier))
        except (ValueError, TypeError) as exc:
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

    async def send(self, request: CarrierRequest, *, tracking_number: str | None = None) -> RawResponse:
        """
        One authenticated tracking call; returns the answer for the parser to read.

        Args:
            request: what the carrier's ``build_request`` built.
            tracking_number: the number asked, when the call asked one (for errors).

        Returns:
            The answer, for any status :func:`error_for_status` leaves to the
            parser (2xx, 400, 404 ...).

        Raises:
            CarrierError: auth failure (after one token refresh on 401), rate
                limit, 5xx, timeout, connection error.
        """
        kwargs = request.as_kwargs()
        token = await self.access_token()
        response = await self._authorized(request, kwargs, token, tracking_number, refresh=True)
        if response.status == 401:
            # The token may have been revoked or expired early: one refresh, one retry.
            log.info("carrier_token_refused", carrier=self.carrier.value)
            token = await self.access_token(stale=token)
            response = await self._authorized(request, kwargs, token, tracking_number, refresh=False)
        return response

    async def _authorized(
        self,
        request: CarrierRequest,
        kwargs: dict[str, Any],
        token: str,
        tracking_number: str | None,
        *,
        refresh: bool,
    ) -> RawResponse:
        headers = {**kwargs["headers"], "Authorization": f"Bearer {token}"}
        return await self._send(
            request.method,
            request.path,
            {**kwargs, "headers": headers},
            tracking_number=tracking_number,
            pass_401=refresh,
        )

    async def _send(
        self,
        method: str,
        path: str,
        kwargs: dict[str, Any],
        *,
        tracking_number: str | None = None,
        token_endpoint: bool = False,
        pass_401: bool = False,
    ) -> RawResponse:
        """One call with retries; a status that fails the call is raised (a 401 passed back when asked)."""
        async for attempt in self.retry.retrying(self.carrier):
            with attempt:
                response = await self._send_once(method, path, kwargs, tracking_number)
                if pass_401 and response.status == 401:
                    return response  # the caller refreshes the token once
                failure = error_for_status(
                    response.status,
                    carrier=self.carrier,
                    detail=f"HTTP {response.status}",
                    tracking_number=tracking_number,
                    retry_after_s=_retry_after(response.headers),
                    token_endpoint=token_endpoint,
                )
                if failure is not None:
                    raise failure
                return response
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
        log.debug(
            "carrier_request_completed",
            carrier=self.carrier.value,
            method=method,
            path=path.split("?")[0],
            status=response.status,
            elapsed_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return response


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    return parse_retry_after(value)


# -- the one tracking flow ----------------------------------------------------------------


class TrackingAdapter:
    """
    The one way a carrier adapter tracks numbers, behind :class:`CarrierAdapter`.

    The numbers are split into calls of at most :attr:`max_batch`, sent
    concurrently; each call is built by :meth:`build_request`, sent through
    :class:`OAuthTransport` and read by :meth:`parse_response`, and every
    asked number gets an answer (:func:`answer_for`). When every call fails,
    the first :class:`~carriers.errors.CarrierError` is raised; when only
    some do, their numbers are answered with the failure as a
    :class:`CarrierMessage`, so the calls that worked are not thrown away.

    A carrier's ``Adapter`` subclasses this and names its :attr:`carrier`,
    :attr:`max_batch`, :attr:`token_endpoint` and the pure functions of its
    ``tracking.py``.

    Args:
        session: the app's shared HTTP session.
        settings: the carrier's settings.
        retry: how the transport retries (tests pass a zero wait).
    """

    carrier: Carrier
    #: How many numbers one tracking call may carry.
    max_batch: int
    token_endpoint: ClassVar[TokenEndpoint]

    def __init__(
        self,
        session: aiohttp.ClientSession,
        settings: CarrierSettings,
        *,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.transport = OAuthTransport(session, settings, self.token_endpoint, retry=retry)

    @staticmethod
    def build_request(numbers: Sequence[str], settings: CarrierSettings) -> CarrierRequest:
        """The carrier's ``tracking.build_request``: one call for ``numbers``."""
        raise NotImplementedError

    @staticmethod
    def parse_response(status: int, payload: Any, numbers: Sequence[str]) -> ParsedAnswer:
        """The carrier's ``tracking.parse_response``: what one answer says."""
        raise NotImplementedError

    async def track(self, numbers: Sequence[str]) -> TrackAnswer:
        """
        Ask the carrier about ``numbers``.

        Args:
            numbers: tracking numbers of this carrier; duplicates are asked once.

        Returns:
            One entry per distinct number: its result, or a message (not
            found, invalid number, left out of the answer, or the failure of
            its own call when other calls worked).

        Raises:
            CarrierError: every call failed (for a single call: that call failed).
        """
        unique = list(dict.fromkeys(numbers))
        if not unique:
            return {}
        size = max(1, self.max_batch)
        calls = [unique[i : i + size] for i in range(0, len(unique), size)]
        with structlog.contextvars.bound_contextvars(carrier=self.carrier.value):
            started = time.perf_counter()
            outcomes: list[TrackAnswer | BaseException]
            if len(calls) == 1:  # the usual case: no task to start and wait for
                try:
                    outcomes = [await self._call(calls[0])]
                except Exception as exc:  # as gather(return_exceptions=True) hands it over
                    outcomes = [exc]
            else:
                outcomes = await asyncio.gather(*(self._call(c) for c in calls), return_exceptions=True)
            answer: TrackAnswer = {}
            failures: list[CarrierError] = []
            for batch, outcome in zip(calls, outcomes, strict=True):
                if isinstance(outcome, CarrierError):
                    failures.append(outcome)
                    answer.update({n: unavailable_message(outcome, n) for n in batch})
                elif isinstance(outcome, BaseException):
                    raise outcome
                else:
                    answer.update(outcome)
            if len(failures) == len(calls):
                raise failures[0]
            log.info(
                "carrier_track_completed",
                numbers=len(unique),
                calls=len(calls),
                failed_calls=len(failures),
                results=sum(1 for v in answer.values() if isinstance(v, TrackingResult)),
                elapsed_ms=round((time.perf_counter() - started) * 1000, 1),
            )
            return answer

    async def _call(self, batch: list[str]) -> TrackAnswer:
        number = batch[0] if len(batch) == 1 else None
        bound = (
            structlog.contextvars.bound_contextvars(tracking_number=number)
            if number is not None
            else nullcontext()
        )
        with bound:
            request = self.build_request(batch, self.settings)
            response = await self.transport.send(request, tracking_number=number)
            payload = response.json(self.carrier, number)
            results, messages = self.parse_response(response.status, payload, batch)
            return answer_for(self.carrier, batch, results, messages)
