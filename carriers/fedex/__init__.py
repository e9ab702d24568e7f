"""FedEx Track API v1: ``tracking`` builds and parses, ``units`` holds the tables."""

from __future__ import annotations

from carriers.fedex.adapter import Adapter

__all__ = ["Adapter"]
