"""Typed application state keys (``request.app[settings_key]``)."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from tracksvc.core.redis import RedisClient
from tracksvc.core.settings import Settings
from tracksvc.economy.tracker import Tracker
from tracksvc.freshness.refresher import Refresher
from tracksvc.freshness.webhooks import Notifier, WebhookSender
from tracksvc.registry.store import Registry
from tracksvc.service.lookup import TrackService

settings_key = web.AppKey("settings_key", Settings)
redis_key: web.AppKey[RedisClient] = web.AppKey("redis_key")
http_key = web.AppKey("http_key", aiohttp.ClientSession)
tracker_key = web.AppKey("tracker_key", Tracker)
service_key = web.AppKey("service_key", TrackService)
registry_key = web.AppKey("registry_key", Registry)
# Push and the refresher (tracksvc.api.background).
notifier_key = web.AppKey("notifier_key", Notifier)
webhook_sender_key = web.AppKey("webhook_sender_key", WebhookSender)
refresher_key = web.AppKey("refresher_key", Refresher)
