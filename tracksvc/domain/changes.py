"""
What changed, as tags every replica understands (pure; the registry and the
service publish and read them over Redis pub/sub).

A finished answer kept by a replica (:mod:`tracksvc.service.answers`) carries
the tags of everything it was built from; a change publishes the tags it
touches, and every replica drops the answers that share one:

- ``r:<key>``: a reference's lookup key (:func:`reference_tags`): an order
  number, shipment id, tracking number, internal shipping number or alias;
- ``t:<carrier>:<number>``: what a carrier said about a number;
- ``*``: everything (a change too large to list).
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from tracksvc.core.errors import InvalidReference
from tracksvc.core.models import Carrier
from tracksvc.core.redis_keys import CHANGES_CHANNEL as CHANGES_CHANNEL
from tracksvc.domain import references

#: The tag that matches every answer.
EVERYTHING = "*"
#: Above this many tags a change says "everything" instead (one import batch, say).
MAX_TAGS = 2_000


def reference_tags(*values: str | None) -> set[str]:
    """The tags of references as typed by anyone (each spelling's lookup key)."""
    tags: set[str] = set()
    for value in values:
        if not value:
            continue
        try:
            normalized = references.normalize(value)
        except InvalidReference:
            continue
        tags.add(f"r:{references.compact(normalized) or normalized}")
    return tags


def carrier_tag(carrier: Carrier, number: str) -> str:
    """The tag of what ``carrier`` said about ``number``."""
    return f"t:{carrier.value}:{number}"


def carriers_named(tags: Iterable[str]) -> list[tuple[Carrier, str]]:
    """The (carrier, number) pairs whose answers ``tags`` name."""
    named = []
    for tag in tags:
        kind, _, rest = tag.partition(":")
        carrier, _, number = rest.partition(":")
        if kind == "t" and number and carrier in Carrier.__members__:
            named.append((Carrier(carrier), number))
    return named


def encode(tags: Iterable[str]) -> bytes:
    """A change message: the tags, or ``["*"]`` when there are too many."""
    listed = sorted(set(tags))
    return orjson.dumps([EVERYTHING] if len(listed) > MAX_TAGS else listed)


def decode(payload: bytes | str) -> set[str]:
    """The tags of a change message; anything unreadable means everything."""
    try:
        tags = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return {EVERYTHING}
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        return {EVERYTHING}
    return set(tags)
