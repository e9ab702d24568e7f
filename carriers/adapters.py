"""
Which adapter class speaks for which carrier.

``REGISTRY`` maps a carrier to its adapter class; the service builds one
adapter per carrier around a shared ``aiohttp.ClientSession``.
"""

from __future__ import annotations

from collections.abc import Mapping

from carriers.base import CarrierAdapter
from carriers.fedex import Adapter as FedexAdapter
from carriers.models import Carrier
from carriers.ups import Adapter as UpsAdapter
from carriers.usps import Adapter as UspsAdapter

REGISTRY: Mapping[Carrier, type[CarrierAdapter]] = {
    Carrier.ups: UpsAdapter,
    Carrier.fedex: FedexAdapter,
    Carrier.usps: UspsAdapter,
}

__all__ = ["REGISTRY"]
