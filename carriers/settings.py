"""What one carrier adapter needs: where, who, and how long to wait (built by the service's settings)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr

from carriers.models import Carrier


@dataclass(frozen=True)
class CarrierSettings:
    """What one carrier adapter needs: where, who, and how long to wait."""

    carrier: Carrier
    base_url: str
    client_id: SecretStr
    client_secret: SecretStr
    timeout_s: float
    connect_timeout_s: float
    retry_attempts: int
    token_refresh_buffer_s: float
    transaction_src: str = "tracksvc"

    def __repr__(self) -> str:
        return f"CarrierSettings(carrier={self.carrier.value!r}, base_url={self.base_url!r})"
