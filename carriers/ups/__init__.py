"""UPS Track API v1: ``tracking`` builds and parses, ``units`` holds the tables, ``alerts`` reads pushes."""

from __future__ import annotations

from carriers.ups.adapter import Adapter

__all__ = ["Adapter"]
