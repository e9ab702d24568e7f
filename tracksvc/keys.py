"""Typed application state keys (``request.app[settings_key]``)."""

from __future__ import annotations

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web

from tracksvc.refresher import Refresher
from tracksvc.registry import Registry
from tracksvc.service import TrackService
from tracksvc.settings import Settings
from tracksvc.tracker import Tracker
from tracksvc.webhooks import Notifier, WebhookSender

settings_key = web.AppKey("settings_key", Settings)
redis_key = web.AppKey("redis_key", aioredis.Redis)
http_key = web.AppKey("http_key", aiohttp.ClientSession)
tracker_key = web.AppKey("tracker_key", Tracker)
service_key = web.AppKey("service_key", TrackService)
registry_key = web.AppKey("registry_key", Registry)
# Push and the refresher (tracksvc.background).
notifier_key = web.AppKey("notifier_key", Notifier)
webhook_sender_key = web.AppKey("webhook_sender_key", WebhookSender)
refresher_key = web.AppKey("refresher_key", Refresher)
