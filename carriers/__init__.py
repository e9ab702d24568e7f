"""
The carrier library: its own contract (``models``, ``errors``, ``settings``),
one package per carrier (``ups``, ``fedex``, ``usps``) of the same shape, each
exporting ``Adapter``, and :data:`REGISTRY`, which maps a carrier to its
adapter class. ``carriers.base`` holds what they share (the tracking flow,
the HTTP/OAuth transport, the missing-number rule), ``carriers.json_read``
the JSON readers. ``carriers.sandbox`` emulates all three for tests and the
demo; nothing here imports it, nor anything of ``tracksvc``.
"""

from __future__ import annotations

from carriers.adapters import REGISTRY

__all__ = ["REGISTRY"]
