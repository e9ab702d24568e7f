"""
Prometheus metrics of one app, in a registry of its own.

Each app (and each test app) gets its own :class:`~prometheus_client.CollectorRegistry`,
never the process-global one, so several apps in one process do not collide.
``GET /metrics`` renders it (see :mod:`tracksvc.api.routes.ops`).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

#: The media type of the text exposition format.
CONTENT_TYPE = CONTENT_TYPE_LATEST

#: Seconds; carrier calls take tens of milliseconds to several seconds.
LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: Numbers per carrier call; FedEx takes up to 30.
BATCH_BUCKETS = (1, 2, 5, 10, 15, 20, 25, 30)

#: Gauge values of a circuit breaker's state.
BREAKER_STATE_VALUES = {"closed": 0, "half_open": 1, "open": 2}


class Metrics:
    """
    Every metric tracksvc exports.

    Attributes:
        carrier_calls: calls actually sent to a carrier, by carrier and outcome
            (``ok`` or the failure's outcome: ``timeout``, ``unavailable``, ...).
        carrier_latency: seconds per carrier call, by carrier.
        cache_lookups: answers looked up in the cache, by carrier and result:
            ``hit`` (fresh), ``revalidate`` (served, refreshed in the background),
            ``expired`` (past the hard TTL: the carrier was asked) and ``miss``.
        stale_answers: last known answers served because the carrier could not be
            asked, by carrier and outcome.
        coalesced_waits: lookups that waited for a fetch already in flight, by
            carrier and scope (``local``: this process, ``remote``: another replica).
        batch_size: numbers per carrier call, by carrier.
        quota_refusals: calls not sent because of the budget, by carrier and reason
            (``budget`` or ``retry_after``).
        breaker_rejections: calls not sent because the carrier's breaker is open.
        breaker_state: 0 closed, 1 half-open, 2 open, by carrier.
        background_refreshes: soft-TTL refreshes started, by carrier.
        refresher_lag_seconds: how far behind its schedule the background
            refresher is (set by the refresher).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.carrier_calls = Counter(
            "tracksvc_carrier_calls", "Calls sent to a carrier", ["carrier", "outcome"], registry=r
        )
        self.carrier_latency = Histogram(
            "tracksvc_carrier_call_seconds",
            "Carrier call latency",
            ["carrier"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.cache_lookups = Counter(
            "tracksvc_cache_lookups", "Cache lookups by result", ["carrier", "result"], registry=r
        )
        self.stale_answers = Counter(
            "tracksvc_stale_answers",
            "Last known answers served because the carrier could not be asked",
            ["carrier", "outcome"],
            registry=r,
        )
        self.coalesced_waits = Counter(
            "tracksvc_coalesced_waits",
            "Lookups that waited for a carrier fetch already in flight",
            ["carrier", "scope"],
            registry=r,
        )
        self.batch_size = Histogram(
            "tracksvc_carrier_batch_size",
            "Tracking numbers per carrier call",
            ["carrier"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.quota_refusals = Counter(
            "tracksvc_quota_refusals",
            "Carrier calls not sent because of the budget or a Retry-After",
            ["carrier", "reason"],
            registry=r,
        )
        self.breaker_rejections = Counter(
            "tracksvc_breaker_rejections",
            "Carrier calls not sent because the circuit breaker is open",
            ["carrier"],
            registry=r,
        )
        self.breaker_state = Gauge(
            "tracksvc_breaker_state",
            "Circuit breaker state (0 closed, 1 half-open, 2 open)",
            ["carrier"],
            registry=r,
        )
        self.background_refreshes = Counter(
            "tracksvc_background_refreshes",
            "Soft-TTL refreshes started in the background",
            ["carrier"],
            registry=r,
        )
        self.refresher_lag_seconds = Gauge(
            "tracksvc_refresher_lag_seconds",
            "How far behind its schedule the background refresher is",
            registry=r,
        )

    def set_breaker_state(self, carrier: str, state: str) -> None:
        """Record a breaker's state (``closed``, ``half_open``, ``open``)."""
        self.breaker_state.labels(carrier).set(BREAKER_STATE_VALUES[state])

    def render(self) -> bytes:
        """The registry in the Prometheus text format."""
        return bytes(generate_latest(self.registry))
