"""
Settings: one validated object, loaded at the edge and passed down explicitly.

Only this module reads the environment (prefix ``TRACKSVC_``). Credentials
are :class:`~pydantic.SecretStr` and never appear in reprs or logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tracksvc.models import Carrier

ROLES = ("agent", "portal", "warehouse", "ingest", "admin")

#: Production hosts (carrier-apis.md section 0); the sandbox replaces these in the demo and tests.
PRODUCTION_BASE_URLS = {
    Carrier.ups: "https://onlinetools.ups.com",
    Carrier.fedex: "https://apis.fedex.com",
    Carrier.usps: "https://apis.usps.com",
}


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


class Settings(BaseSettings):
    """All tracksvc settings (design.md section 5)."""

    model_config = SettingsConfigDict(env_prefix="TRACKSVC_", extra="ignore")

    redis_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    #: ``role:key`` pairs, comma-separated.
    api_keys: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict, repr=False)
    tender_grace_hours: float = 48.0
    stalled_after_hours: float = 72.0
    log_level: str = "info"
    log_json: bool | None = None

    ups_base_url: str = PRODUCTION_BASE_URLS[Carrier.ups]
    ups_client_id: SecretStr = SecretStr("")
    ups_client_secret: SecretStr = SecretStr("")
    ups_transaction_src: str = "tracksvc"
    fedex_base_url: str = PRODUCTION_BASE_URLS[Carrier.fedex]
    fedex_client_id: SecretStr = SecretStr("")
    fedex_client_secret: SecretStr = SecretStr("")
    usps_base_url: str = PRODUCTION_BASE_URLS[Carrier.usps]
    usps_client_id: SecretStr = SecretStr("")
    usps_client_secret: SecretStr = SecretStr("")

    carrier_timeout_s: float = 8.0
    carrier_connect_timeout_s: float = 3.0
    carrier_retry_attempts: int = 3
    token_refresh_buffer_s: float = 300.0

    #: Cache lifetime of a carrier answer, by normalized status family.
    cache_ttl_active_s: int = 15 * 60
    cache_ttl_final_s: int = 3 * 24 * 3600
    cache_ttl_not_found_s: int = 10 * 60
    #: How long an answer is kept at all, to serve (marked stale) when the carrier is down.
    cache_hard_ttl_s: int = 7 * 24 * 3600

    #: Content-Security-Policy frame-ancestors for the UI pages.
    frame_ancestors: str = "'self'"

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_api_keys(cls, value: object) -> object:
        """Accept ``role:key,role:key``; map key -> role."""
        if not isinstance(value, str):
            return value
        keys: dict[str, str] = {}
        for item in value.split(","):
            item = item.strip()
            if not item:
                continue
            role, sep, key = item.partition(":")
            role = role.strip()
            key = key.strip()
            if not sep or role not in ROLES or not key:
                raise ValueError(
                    f"TRACKSVC_API_KEYS entries must be role:key with role in {', '.join(ROLES)}"
                )
            keys[key] = role
        return keys

    def carrier(self, carrier: Carrier) -> CarrierSettings:
        """The sub-settings one carrier adapter receives."""
        prefix = carrier.value
        return CarrierSettings(
            carrier=carrier,
            base_url=str(getattr(self, f"{prefix}_base_url")).rstrip("/"),
            client_id=getattr(self, f"{prefix}_client_id"),
            client_secret=getattr(self, f"{prefix}_client_secret"),
            timeout_s=self.carrier_timeout_s,
            connect_timeout_s=self.carrier_connect_timeout_s,
            retry_attempts=self.carrier_retry_attempts,
            token_refresh_buffer_s=self.token_refresh_buffer_s,
            transaction_src=self.ups_transaction_src,
        )
