"""
Who a carrier call is for, so the carrier budgets can keep a share for the
lookups that matter most (:mod:`tracksvc.economy.quota`).

- **reserved**: registered shipments and orders, the refresher, push events,
  webhooks and the CLI: they may use a carrier's whole budget.
- **ad hoc**: an agent's lookup of a number that is not registered: it may
  use only the part of the budget not reserved, and within that only its
  API key's share (keyed by a hash of the key, never the key itself).

The class travels in a context variable rather than through every
signature: the lookup routes set it at the request edge (:func:`acting_as`
with :func:`ad_hoc`), :meth:`tracksvc.service.TrackService.resolved_view`
switches to :data:`REGISTERED` for the shipments the registry knows, and the
gate's budget reads it when a call is about to go out. Tasks started on the
way (the fetch of a number, a FedEx batch) copy the context of whoever
started them, so a fetch shared by several requests, or a batch of several
numbers, is charged to the caller that started it. Code outside a request
(the refresher, the CLI) never sets it and is :data:`REGISTERED`.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    """What share of a carrier's budget a call may use."""

    #: May use the reserved share (registered shipments, the refresher).
    reserved: bool
    #: A hash of the API key of an ad-hoc caller (None: no per-key share).
    key_id: str | None = None


#: Registered shipments, the refresher and everything outside a request: the whole budget.
REGISTERED = Caller(reserved=True)

_current: ContextVar[Caller] = ContextVar("tracksvc_caller", default=REGISTERED)


def key_id(api_key: str) -> str:
    """A short, one-way id of an API key, fit for Redis key names."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=256)  # a replica serves a handful of keys: hash each once
def ad_hoc(api_key: str | None) -> Caller:
    """An agent's lookup of unregistered numbers with ``api_key`` (its share is per key)."""
    return Caller(reserved=False, key_id=key_id(api_key) if api_key else None)


def current_caller() -> Caller:
    """Who the carrier calls made now are for."""
    return _current.get()


@contextmanager
def acting_as(caller: Caller) -> Iterator[None]:
    """Carrier calls made inside (and in tasks started inside) are for ``caller``."""
    token = _current.set(caller)
    try:
        yield
    finally:
        _current.reset(token)
