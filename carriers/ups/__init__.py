"""UPS Track API v1 adapter (carrier-apis.md section 1)."""

from __future__ import annotations

from carriers.ups.adapter import Adapter

__all__ = ["Adapter"]
