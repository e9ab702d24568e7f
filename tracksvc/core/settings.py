"""
Settings: one validated object, loaded at the edge and passed down explicitly.

Only this module reads the environment (prefix ``TRACKSVC_``). Credentials
are :class:`~pydantic.SecretStr` and never appear in reprs or logs.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, tzinfo
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from carriers.models import Carrier
from carriers.settings import CarrierSettings

#: One order-number template (``TRACKSVC_ORDER_NUMBER_FORMATS``): ``#`` a digit, the rest as is.
ORDER_FORMAT = re.compile(r"[A-Z0-9#-]{2,32}")

ROLES = ("agent", "portal", "warehouse", "ingest", "admin")

#: Production hosts (carrier-apis.md section 0); the sandbox replaces these in the demo and tests.
PRODUCTION_BASE_URLS = {
    Carrier.ups: "https://onlinetools.ups.com",
    Carrier.fedex: "https://apis.fedex.com",
    Carrier.usps: "https://apis.usps.com",
}


def zone_named(name: str) -> tzinfo:
    """
    The time zone of an IANA name (``UTC`` needs no time zone database).

    Raises:
        ValueError: the name is not a zone the time zone database knows.
    """
    if name.strip().upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{name!r} is not an IANA time zone name (e.g. America/Chicago)") from exc


class Settings(BaseSettings):
    """All tracksvc settings (design.md section 5)."""

    model_config = SettingsConfigDict(env_prefix="TRACKSVC_", extra="ignore")

    redis_url: str | None = None
    #: Treat ``redis_url`` as a startup node of a Redis Cluster (the client finds the others).
    redis_cluster: bool = False
    #: Replicas that must confirm a write (Redis ``WAIT``) before the API acknowledges it with a
    #: 2xx; fewer within ``redis_write_replicas_timeout_s`` answers 503 (0: no wait).
    redis_write_replicas: int = Field(default=0, ge=0, le=16)
    redis_write_replicas_timeout_s: float = Field(default=1.0, gt=0, le=1.5)
    host: str = "127.0.0.1"
    port: int = 8080
    #: ``role:key`` pairs, comma-separated.
    api_keys: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict, repr=False)
    tender_grace_hours: float = 48.0
    stalled_after_hours: float = 72.0
    log_level: str = "info"
    log_json: bool | None = None
    #: The zone a plain date is read in where a time is expected (``promised_ship_by:
    #: "2026-11-23"`` is the end of that day here): an IANA name such as ``America/Chicago``.
    business_timezone: str = "UTC"
    #: What the shop's order numbers look like, comma-separated templates: ``#`` is a digit,
    #: every other character stands for itself (``W#######``: W and 7 digits). Only words a
    #: 404 uses ("looks like an order number (W + 7 digits)"); lookups accept any identifier.
    order_number_formats: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["W#######"])

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

    # -- The users' surfaces (issue 5): pages, customer portal, batch lookups.
    #: Origins allowed to hand the pages a key by postMessage (comma-separated; ``https://*.x.com``
    #: matches subdomains). Empty: the http(s) origins in ``frame_ancestors``, and the page's own
    #: origin when it says ``'self'``.
    ui_key_origins: str = ""
    #: How often the warehouse page reloads the stalled-labels list.
    ui_refresh_s: int = Field(default=60, ge=1, le=3600)
    #: Failed portal verifications allowed per client and per order number within the window.
    portal_max_failures: int = Field(default=10, ge=1)
    portal_failure_window_s: int = Field(default=15 * 60, ge=1)
    #: A failed verification answers no sooner than this after the request arrived, so that
    #: "no such order" and "wrong postal code" take the same time.
    portal_failure_floor_s: float = Field(default=0.05, ge=0, le=5)
    #: Request header naming the customer's address when a portal backend calls on their
    #: behalf (e.g. ``X-Forwarded-For``): read only from a peer in ``trusted_proxies``, walked
    #: from the right past trusted proxies. Empty: no per-client limit, only the per-order one.
    portal_client_ip_header: str = ""
    #: Proxies (and portal backends) whose forwarded-for entries are believed: IPs or CIDRs,
    #: comma-separated (``10.0.0.0/8,192.0.2.7``).
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: Largest request body a JSON route reads (413 beyond); the import stream is not bounded
    #: in size (it streams), only in rows.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    #: How many lookups of one ``POST /v1/track`` batch run at once.
    batch_concurrency: int = Field(default=20, ge=1, le=100)

    # -- Warehouse actions (issue 11, item 4): how long each carrier lets an unused label be voided.
    #: Days after the label was printed during which an unused (never tendered) label can still be
    #: voided or refunded; a label past it leaves the "labels to void" list (0: never listed).
    #: Defaults from the carriers' public pages (README, "Labels to void"); TO BE CONFIRMED with
    #: the shipper's carrier contract, which may say otherwise.
    void_window_days_ups: float = Field(default=90.0, ge=0, le=3650)
    void_window_days_fedex: float = Field(default=90.0, ge=0, le=3650)
    void_window_days_usps: float = Field(default=30.0, ge=0, le=3650)

    # -- Background refresher and push (issue 4, items 5 and 6).
    #: Run the refresher inside the service (``tracksvc refresher`` runs it alone).
    refresher_enabled: bool = True
    #: The refresher's period: no replica refreshes a shipment twice within one. Each replica
    #: runs 12 cycles a period, each spending the refresher's share of the carrier budgets
    #: (``quota_reserved_share``) accrued since the last cycle of any replica.
    refresher_period_s: float = Field(default=60.0, gt=0)
    #: At most this many shipments per cycle and replica (the budgets usually bind first; for a
    #: carrier without limits, this is the only bound).
    refresher_batch_size: int = Field(default=500, ge=1, le=10_000)
    #: Lookups (a FedEx batch counts one) in flight at once during a cycle.
    refresher_concurrency: int = Field(default=8, ge=1, le=200)
    #: A shipment is looked at again this long after its last answer (15 minutes, the active TTL).
    refresher_revisit_s: float = Field(default=15 * 60.0, ge=0)
    #: Labels within this many hours of the tender grace limit go first.
    refresher_near_grace_hours: float = Field(default=6.0, ge=0)
    #: The ``x-api-key`` UPS Track Alert must send: a secret of its own (never the OAuth client
    #: id). Unset: ``POST /v1/carrier-events/ups`` answers 503 ``push_not_configured``.
    ups_webhook_key: SecretStr | None = Field(default=None, repr=False)
    #: Master secret for outbound webhooks: each subscription's signing secret is derived from it
    #: (nothing secret stored in Redis). Unset: a random secret per subscription, kept in Redis.
    webhook_secret: SecretStr | None = Field(default=None, repr=False)
    #: Hosts outbound webhooks may be sent to (comma-separated; ``.example.com`` allows its
    #: subdomains). Empty allows any host: set it in production so a subscription cannot
    #: make tracksvc POST to internal addresses.
    webhook_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: Let webhooks go to loopback, private (RFC 1918, CGNAT, ULA) addresses (the demo, tests,
    #: on-premises receivers). Off: a callback must resolve only to public addresses, checked
    #: when subscribing and on every send. Link-local (cloud metadata), multicast, unspecified
    #: and reserved addresses are refused either way.
    webhook_allow_private_targets: bool = False
    #: Subscriptions one API key may hold at once (409 ``subscription_limit_reached`` beyond).
    webhook_max_subscriptions_per_key: int = Field(default=1000, ge=1)
    #: Outbound webhook delivery: per-attempt timeout, backoff from base doubling to max, give up
    #: after max age; the sender looks for due deliveries at least every poll interval.
    webhook_timeout_s: float = Field(default=5.0, gt=0)
    webhook_retry_base_s: float = Field(default=5.0, gt=0)
    webhook_retry_max_s: float = Field(default=3600.0, gt=0)
    webhook_max_age_s: float = Field(default=24 * 3600.0, gt=0)
    webhook_poll_s: float = Field(default=1.0, gt=0)

    # -- Carrier economy (issue 4, items 1-4 and 7): coalescing, batching, freshness, budgets.
    #: Hard TTL per status family: past its soft TTL (``cache_ttl_*_s``) and within this, a cached
    #: answer is served at once and refreshed in the background; past this, the carrier is asked
    #: first. (``cache_hard_ttl_s`` above is how long answers are kept at all, for stale answers.)
    cache_hard_ttl_active_s: int = Field(default=60 * 60, ge=0)
    cache_hard_ttl_final_s: int = Field(default=7 * 24 * 3600, ge=0)
    cache_hard_ttl_not_found_s: int = Field(default=60 * 60, ge=0)
    #: Expiry of the Redis lock that makes one replica the one asking a carrier about a number;
    #: the holder renews it, so a replica that died is noticed within about this long.
    flight_lock_ttl_s: float = Field(default=2.0, gt=0)
    #: How long concurrent lookups wait to be merged into one carrier call, for carriers that
    #: take several numbers per call (FedEx: up to 30). 0 turns batching off.
    batch_window_s: float = Field(default=0.015, ge=0, le=1.0)
    #: Carrier call budgets shared by every replica through Redis (0 = unlimited). FedEx allows
    #: 1,400 transactions per 10 s and about 100,000 a day; USPS grants small hourly quotas.
    ups_quota_per_second: float = Field(default=50.0, ge=0)
    ups_quota_per_hour: float = Field(default=100_000.0, ge=0)
    fedex_quota_per_second: float = Field(default=140.0, ge=0)
    fedex_quota_per_hour: float = Field(default=4_000.0, ge=0)
    usps_quota_per_second: float = Field(default=5.0, ge=0)
    usps_quota_per_hour: float = Field(default=60.0, ge=0)
    #: Longest a lookup waits for budget when it has a cached answer to fall back on
    #: (with nothing cached it waits up to its deadline, ``carrier_timeout_s``).
    quota_max_wait_s: float = Field(default=1.0, ge=0)
    #: Share of each carrier budget (per second and per hour) kept for registered shipments and
    #: the refresher; lookups of unregistered numbers get the rest, and each API key at most
    #: ``quota_per_key_share`` of that. Shares of 0 (unlimited) limit nobody.
    quota_reserved_share: float = Field(default=0.5, ge=0, lt=1)
    quota_per_key_share: float = Field(default=0.25, gt=0, le=1)
    #: How long one lookup request may wait on a Redis that answers nobody, in all (registry,
    #: cache, single flight, budgets); past it the request goes on without Redis (issue 8,
    #: item 4). A busy Redis that still answers other lookups is waited for.
    redis_request_budget_s: float = Field(default=1.0, gt=0, le=30)
    #: Once Redis answered nobody within a lookup's budget, lookups here skip it for this long.
    redis_down_latch_s: float = Field(default=2.0, ge=0, le=60)
    #: How long a 429 without a Retry-After stops every replica from calling that carrier.
    rate_limited_block_s: float = Field(default=10.0, ge=0)
    #: Circuit breaker per carrier: consecutive failed calls that open it (0: never opens),
    #: and how long it stays open before one probe call.
    breaker_failure_threshold: int = Field(default=5, ge=0)
    breaker_cooldown_s: float = Field(default=30.0, ge=0)
    #: Ask for an admin key on ``GET /metrics`` (Prometheus scrapes usually carry none).
    metrics_require_admin: bool = False

    # -- Cached lookups in memory (issue 4, item 9).
    #: How long each replica keeps a fresh carrier answer in memory, so that a number looked up
    #: again and again costs no Redis round trip (0 turns it off). Trade-off: an answer another
    #: replica stores (a refresh, a push event) is seen here up to this long later; an answer
    #: never stays in memory past its soft TTL, and its ``as_of`` and freshness stay true.
    cache_local_ttl_s: float = Field(default=1.0, ge=0, le=60)
    #: How many answers each replica keeps in memory at most (the oldest go first).
    cache_local_max_entries: int = Field(default=10_000, ge=0, le=1_000_000)
    #: Finished answers (``GET /v1/track`` bodies) each replica keeps, at most this long: the
    #: backstop should a change message be lost (changes drop them at once; 0: keep none).
    answer_cache_ttl_s: float = Field(default=10.0, ge=0, le=300)
    answer_cache_max_entries: int = Field(default=10_000, ge=0, le=1_000_000)

    @field_validator("business_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        """Refuse a zone name the time zone database does not know."""
        zone_named(value)
        return value

    @field_validator("order_number_formats", mode="before")
    @classmethod
    def _parse_order_formats(cls, value: object) -> object:
        """Accept ``W#######,S-####-####``: letters, digits and dashes, each with at least one ``#``."""
        if isinstance(value, str):
            value = [t.strip().upper() for t in value.split(",") if t.strip()]
        if isinstance(value, list):
            for item in value:
                text = str(item)
                if not ORDER_FORMAT.fullmatch(text) or "#" not in text:
                    raise ValueError(
                        f"TRACKSVC_ORDER_NUMBER_FORMATS: {text!r} is not a template such as W####### "
                        "(# a digit; letters, digits and dashes as they are; 2 to 32 characters)"
                    )
        return value

    @property
    def business_zone(self) -> tzinfo:
        """``business_timezone`` as a time zone."""
        return zone_named(self.business_timezone)

    @field_validator("webhook_allowed_hosts", mode="before")
    @classmethod
    def _parse_hosts(cls, value: object) -> object:
        """Accept ``host,.domain``; hosts are compared lower-case."""
        if isinstance(value, str):
            return [h.strip().lower() for h in value.split(",") if h.strip()]
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _parse_proxies(cls, value: object) -> object:
        """Accept ``ip,cidr,...``; each must be an IP address or network."""
        if isinstance(value, str):
            value = [p.strip() for p in value.split(",") if p.strip()]
        if isinstance(value, list):
            for item in value:
                try:
                    ipaddress.ip_network(str(item), strict=False)
                except ValueError as exc:
                    raise ValueError(f"TRACKSVC_TRUSTED_PROXIES: {item!r} is not an IP or CIDR") from exc
        return value

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

    def void_window_days(self, carrier: Carrier) -> float:
        """Days an unused label of ``carrier`` can still be voided or refunded (``void_window_days_*``)."""
        days: float = getattr(self, f"void_window_days_{carrier.value}")
        return days

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
