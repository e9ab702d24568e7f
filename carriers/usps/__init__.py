"""USPS Tracking v3: ``tracking`` builds and parses, ``units`` holds the tables."""

from __future__ import annotations

from carriers.usps.adapter import Adapter

__all__ = ["Adapter"]
