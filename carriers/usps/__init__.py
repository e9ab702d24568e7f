"""USPS Tracking v3 adapter."""

from carriers.usps.adapter import Adapter

__all__ = ["Adapter"]
