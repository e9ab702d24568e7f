"""
FedEx HTTP: the OAuth token call and the Track API call.

The only module that talks HTTP for FedEx. Token sharing, the one refresh on
401, retries and the status-to-exception mapping come from
:class:`carriers.base.OAuthTransport`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import orjson

from carriers.base import OAuthTransport, RawResponse
from carriers.fedex.tracking import build_request
from carriers.models import Carrier

#: The token endpoint [SPEC].
TOKEN_PATH = "/oauth/token"


class FedexTransport(OAuthTransport):
    """
    FedEx's OAuth client-credentials token and Track API calls.

    The token request is a form POST with ``grant_type``, ``client_id`` and
    ``client_secret`` in the body (carrier-apis.md 2.1); ``expires_in`` is an
    integer number of seconds.
    """

    carrier: ClassVar[Carrier] = Carrier.fedex

    def token_request(self) -> tuple[str, dict[str, Any]]:
        """
        The token call.

        Returns:
            ``(path, request kwargs)``; the secret travels only in the form body.
        """
        form = {
            "grant_type": "client_credentials",
            "client_id": self.settings.client_id.get_secret_value(),
            "client_secret": self.settings.client_secret.get_secret_value(),
        }
        return TOKEN_PATH, {"data": form}

    async def track(self, numbers: Sequence[str]) -> RawResponse:
        """
        One ``POST /track/v1/trackingnumbers`` for up to 30 numbers.

        Args:
            numbers: the numbers of one batch.

        Returns:
            The answer (2xx or a 4xx other than 401/403/429) for the parser.

        Raises:
            ValueError: an invalid batch (see :func:`build_request`).
            CarrierError: auth, rate limit, 5xx, timeout or connection failure.
        """
        method, path, body = build_request(numbers)
        return await self.call(
            method,
            path,
            tracking_number=numbers[0] if len(numbers) == 1 else None,
            data=orjson.dumps(body),
            headers={"Content-Type": "application/json", "X-locale": "en_US"},
        )
