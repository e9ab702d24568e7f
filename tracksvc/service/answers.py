"""
Finished answers kept in each replica: a cached lookup is served, not rebuilt.

The agent view of a reference costs a registry read, the carrier answers,
classification, advice and serialization; once built from answers that are
all fresh, its bytes are kept here until the earliest of

- the soft TTL of any carrier answer it was built from,
- the next change of a status by the clock alone (the grace or stall limit),
  or a promised date passing,
- a change, on any replica, of a registry record or carrier answer it was
  built from: writers publish the change's tags (:mod:`tracksvc.domain.changes`)
  on Redis pub/sub, and every replica's listener drops the answers that
  share a tag (the writing replica drops them at once, before it answers),
- ``TRACKSVC_ANSWER_CACHE_TTL_S``, the backstop should a message be lost.

Only answers whose shipments were all answered by the carrier (``live`` or
``cached``) are kept, and a kept answer says ``cached`` where it said
``live``: ``as_of`` stays the time the carrier was asked. While the listener
is not subscribed (Redis down, reconnecting), nothing is kept, since no
change could be heard.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import structlog
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from tracksvc.core.redis import RedisClient, open_pubsub
from tracksvc.domain import changes

log = structlog.get_logger("answers")

#: Seconds between attempts to subscribe again after Redis failed.
RESUBSCRIBE_S = 1.0


@dataclass(frozen=True)
class Kept:
    """One finished answer and what it was built from."""

    body: bytes
    expires_at: float  # time.monotonic()
    tags: frozenset[str]


class AnswerCache:
    """
    Finished answers by key (reference and claims), dropped by tag or by time.

    Args:
        ttl_s: the longest an answer is kept (0: keep nothing).
        max_entries: how many answers at most (least recently used go first).
        redis: where changes are published and heard (None: nothing is kept).
    """

    def __init__(self, *, ttl_s: float, max_entries: int, redis: RedisClient | None = None) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, frozenset[str]], Kept] = OrderedDict()
        self._by_tag: dict[str, set[tuple[str, frozenset[str]]]] = {}
        #: True while the change listener is subscribed: only then are answers kept.
        self.listening = False
        self.dropped = 0  # answers dropped by a change (metrics, tests)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple[str, frozenset[str]]) -> bytes | None:
        """The kept answer, or None (absent, expired, or nothing is kept now)."""
        kept = self._entries.get(key)
        if kept is None:
            return None
        if kept.expires_at <= time.monotonic() or not self.listening:
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return kept.body

    def put(self, key: tuple[str, frozenset[str]], body: bytes, *, valid_s: float,
            tags: Iterable[str]) -> None:
        """Keep ``body`` for at most ``valid_s`` seconds (capped by the TTL), dropped by any of ``tags``."""
        lifetime_s = min(valid_s, self.ttl_s)
        if lifetime_s <= 0 or not self.listening or self.max_entries <= 0:
            return
        if key in self._entries:
            self._remove(key)
        kept = Kept(body, time.monotonic() + lifetime_s, frozenset(tags))
        self._entries[key] = kept
        for tag in kept.tags:
            self._by_tag.setdefault(tag, set()).add(key)
        while len(self._entries) > self.max_entries:
            self._remove(next(iter(self._entries)))

    def drop(self, tags: Iterable[str]) -> None:
        """Drop every answer built from anything ``tags`` names (``*``: all)."""
        tags = set(tags)
        if changes.EVERYTHING in tags:
            self.dropped += len(self._entries)
            self.clear()
            return
        for tag in tags:
            for key in list(self._by_tag.get(tag, ())):
                self._remove(key)
                self.dropped += 1

    def clear(self) -> None:
        """Drop everything."""
        self._entries.clear()
        self._by_tag.clear()

    def _remove(self, key: tuple[str, frozenset[str]]) -> None:
        kept = self._entries.pop(key, None)
        if kept is None:
            return
        for tag in kept.tags:
            keys = self._by_tag.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_tag[tag]

    async def changed(self, tags: Iterable[str]) -> None:
        """
        What ``tags`` name changed here: drop it at once, and tell every other replica
        (best effort: the TTL is the backstop for a lost message).
        """
        tags = set(tags)
        self.drop(tags)
        if self.redis is None:
            return
        try:
            await self.redis.publish(changes.CHANGES_CHANNEL, changes.encode(tags))
        except (RedisError, OSError) as exc:
            log.warning("answer_change_unpublished", error=type(exc).__name__)

    async def listen(self, *, heard: Callable[[set[str]], None] | None = None) -> None:
        """
        Hear every replica's changes until cancelled; resubscribe after a failure.

        Each (re)subscription starts from nothing kept: changes made while it was
        not listening were not heard. ``heard`` is told every change's tags too
        (the tracker's in-memory carrier answers go the same way).
        """
        if self.redis is None:
            return
        failed = False
        while True:
            pubsub: PubSub | None = None
            try:
                pubsub = await open_pubsub(self.redis, reread_slots=failed)
                failed = False
                await pubsub.subscribe(changes.CHANGES_CHANNEL)
                self.clear()
                self.listening = True
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                    if message is not None and message.get("type") == "message":
                        tags = changes.decode(message["data"])
                        self.drop(tags)
                        if heard is not None:
                            heard(tags)
            except (RedisError, OSError) as exc:
                log.warning("answer_changes_unheard", error=type(exc).__name__)
                failed = True
            except Exception:  # a bug must not leave this replica deaf for good: log it, listen again
                log.exception("answer_listener_failed")
            finally:
                self.listening = False
                self.clear()
                if pubsub is not None:
                    await asyncio.shield(pubsub.aclose())  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
            await asyncio.sleep(RESUBSCRIBE_S)
