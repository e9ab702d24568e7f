"""FedEx Track API v1 adapter: pure build/parse in ``tracking``, HTTP in ``transport``."""

from __future__ import annotations

from carriers.fedex.adapter import Adapter

__all__ = ["Adapter"]
