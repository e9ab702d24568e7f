"""
UPS HTTP: the OAuth client-credentials token and the tracking call.

The only module that talks HTTP for UPS. Token sharing, the one refresh on
401, retries and the error tree come from :class:`carriers.base.OAuthTransport`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import aiohttp

from carriers.base import OAuthTransport, RawResponse
from carriers.models import Carrier
from carriers.ups.tracking import build_request

TOKEN_PATH = "/security/v1/oauth/token"


class UpsTransport(OAuthTransport):
    """UPS OAuth 2.0 client credentials (HTTP Basic) and Track API calls."""

    carrier: ClassVar[Carrier] = Carrier.ups

    def token_request(self) -> tuple[str, dict[str, Any]]:
        """
        The UPS token call: credentials as HTTP Basic auth, never in the body.

        Returns:
            ``(path, aiohttp request kwargs)``.
        """
        authorization = aiohttp.encode_basic_auth(
            self.settings.client_id.get_secret_value(),
            self.settings.client_secret.get_secret_value(),
        )
        return TOKEN_PATH, {
            "data": {"grant_type": "client_credentials"},
            "headers": {"Authorization": authorization, "Accept": "application/json"},
        }

    @staticmethod
    def token_from_body(body: Mapping[str, Any]) -> tuple[str, float]:
        """
        The access token and its lifetime from a UPS token answer.

        UPS sends every value as a string (``"expires_in": "14399"``).

        Args:
            body: the decoded token response.

        Returns:
            ``(access token, lifetime in seconds)``.

        Raises:
            ValueError: no token, or a lifetime that is not a positive number.
        """
        token = body.get("access_token")
        if not isinstance(token, str) or not token.strip():
            raise ValueError("token response has no access_token")
        raw = body.get("expires_in")
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            raise ValueError("token response has no expires_in")
        expires_in_s = float(raw)
        if expires_in_s <= 0:
            raise ValueError(f"token lifetime {raw!r} is not positive")
        return token, expires_in_s

    async def track(self, number: str, trans_id: str) -> RawResponse:
        """
        ``GET /api/track/v1/details/{number}`` with a token.

        Args:
            number: one UPS inquiry number.
            trans_id: unique per request (UPS ``transId``).

        Returns:
            The answer (2xx, or a 4xx the parser reads).

        Raises:
            CarrierError: auth, rate limit, 5xx, timeout or connection failure.
        """
        method, path, kwargs = build_request(number, self.settings, trans_id)
        return await self.call(method, path, tracking_number=number, **kwargs)
