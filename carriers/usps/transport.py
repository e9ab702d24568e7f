"""
USPS HTTP: the OAuth token and the v3 tracking GET. The only USPS module
that does HTTP; shared token, refresh-on-401 and retries come from
:class:`carriers.base.OAuthTransport`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from carriers.base import OAuthTransport, RawResponse
from carriers.errors import CarrierAuthError
from carriers.models import Carrier
from carriers.usps.tracking import build_request

TOKEN_PATH = "/oauth2/v3/token"

#: Least privilege: tracking is all tracksvc reads. USPS grants scopes per app.
TOKEN_SCOPE = "tracking"


class UspsTransport(OAuthTransport):
    """
    USPS OAuth client credentials (``POST /oauth2/v3/token``) and tracking calls.

    The token body is sent form-encoded (``application/x-www-form-urlencoded``).
    carrier-apis.md 3.1 records both JSON (the official USPS README) and form
    (karrio, in production use) as working; which one USPS strictly requires is
    untested. Form is what RFC 6749 section 4.4.2 prescribes, so an OAuth server
    has to take it; set :attr:`token_as_json` to switch.
    """

    carrier: ClassVar[Carrier] = Carrier.usps
    #: Send the token request as JSON instead of a form (see the class docstring).
    token_as_json: ClassVar[bool] = False

    def token_request(self) -> tuple[str, dict[str, Any]]:
        """
        The client-credentials token call.

        Returns:
            ``(path, aiohttp request kwargs)``; the secret goes in the body only.
        """
        fields = {
            "grant_type": "client_credentials",
            "client_id": self.settings.client_id.get_secret_value(),
            "client_secret": self.settings.client_secret.get_secret_value(),
            "scope": TOKEN_SCOPE,
        }
        body_key = "json" if self.token_as_json else "data"
        return TOKEN_PATH, {body_key: fields, "headers": {"Accept": "application/json"}}

    @staticmethod
    def token_from_body(body: Mapping[str, Any]) -> tuple[str, float]:
        """
        The access token and its lifetime from a USPS token response.

        ``expires_in`` comes as an int (28799, issue #56) or a string ("11111",
        the README); both are accepted.

        Raises:
            ValueError: no usable token or lifetime (the caller reports a
                malformed answer).
            CarrierAuthError: USPS granted a token without the ``tracking``
                scope: the app is not entitled to Tracking, and every tracking
                call would answer 401 "The client application identifier is
                invalid." (issue #56).
        """
        if not isinstance(body, Mapping):
            raise ValueError("token response is not a JSON object")
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise ValueError("token response has no access_token")
        expires_in = body.get("expires_in")
        if isinstance(expires_in, bool) or not isinstance(expires_in, int | float | str):
            raise ValueError("token response has no expires_in")
        lifetime_s = float(expires_in)  # ValueError for a non-numeric string
        if not lifetime_s > 0:
            raise ValueError(f"token lifetime {expires_in!r} is not positive")
        scope = body.get("scope")
        if isinstance(scope, str) and TOKEN_SCOPE not in scope.split():
            raise CarrierAuthError(
                "USPS granted a token without the 'tracking' scope; "
                "the app needs Tracking API access from USPS",
                carrier=Carrier.usps,
            )
        return token, lifetime_s

    async def get_tracking(self, number: str) -> RawResponse:
        """
        One v3 DETAIL lookup.

        Returns:
            The raw answer (2xx, 400, 404 and other 4xx) for the parser.

        Raises:
            CarrierError: auth failure after one refresh, 429, 5xx, timeout,
                connection failure.
        """
        method, path, params = build_request(number)
        return await self.call(
            method,
            path,
            tracking_number=number,
            params=params,
            headers={"Accept": "application/json"},
        )
