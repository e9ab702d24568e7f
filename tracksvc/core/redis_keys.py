"""
Every Redis key tracksvc writes, in one place: the prefixes, what lives
under them, and the hash tag that keeps each story on one cluster slot.

Braces are Redis Cluster hash tags: only the text inside them picks the slot,
so every command a story sends names keys of one slot (no cross-slot
commands, no MULTI across slots). The module named owns the key and its
layout.

=========================================  ======  ==============================================
key                                        type    what (owner)
=========================================  ======  ==============================================
``tracksvc:shipment:{s:<id>}``             string  shipment record, JSON (registry.store)
``tracksvc:order:{o:<number>}``            string  order record, JSON (registry.store)
``tracksvc:order:{o:<number>}:shipments``  set     the order's shipment ids (registry.store)
``tracksvc:ref:{r:<reference>}``           hash    kind -> id a reference names (registry.store)
``tracksvc:labels:unscanned[:<origin>]``   zset    unscanned labels by label time (registry.store)
``tracksvc:labels:unchecked``              zset    listed labels never checked (registry.store)
``tracksvc:shipment:{s:<id>}:checked``     string  last carrier answer, epoch s (registry.store)
``tracksvc:shipment:{s:<id>}:voided``      string  who voided the label and when, JSON (registry.store)
``tracksvc:labels:origins``                set     origins that ever had a listed label (registry.store)
``tracksvc:refresh:due``                   zset    next look per shipment (registry.store)
``tracksvc:refresh:claim:{s:<id>}``        string  a replica's claim on one refresh (refresher)
``tracksvc:refresh:pace:{<carrier>}``      string  the refresher's share of a budget (pace)
``tracksvc:track:{<carrier>:<number>}``    string  a carrier's answer, JSON (economy.cache)
``tracksvc:flight:{<carrier>:<number>}``   string  lock and channel of one fetch (singleflight)
``tracksvc:quota:{<carrier>}:<name>``      string  budget buckets, 429 block (economy.quota)
``tracksvc:{webhooks}:...``                mixed   subscriptions, outbox, counts (webhooks)
``tracksvc:portal:failures:{...}``         string  failed portal checks (api.routes.portal)
``tracksvc:changes``                       pubsub  change tags for kept answers (domain.changes)
=========================================  ======  ==============================================
"""

from __future__ import annotations

SHIPMENT_KEY_PREFIX = "tracksvc:shipment:"
ORDER_KEY_PREFIX = "tracksvc:order:"
REF_KEY_PREFIX = "tracksvc:ref:"
UNSCANNED = "tracksvc:labels:unscanned"
UNCHECKED = "tracksvc:labels:unchecked"
CHECKED_SUFFIX = ":checked"
VOIDED_SUFFIX = ":voided"
ORIGINS = "tracksvc:labels:origins"
REFRESH_DUE = "tracksvc:refresh:due"
claim_key_prefix = "tracksvc:refresh:claim:"
pace_key_prefix = "tracksvc:refresh:pace:"
track_key_prefix = "tracksvc:track:"
flight_key_prefix = "tracksvc:flight:"
quota_key_prefix = "tracksvc:quota:"
webhooks_key_prefix = "tracksvc:{webhooks}:"
failure_key_prefix = "tracksvc:portal:failures:"
CHANGES_CHANNEL = "tracksvc:changes"
