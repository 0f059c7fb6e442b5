"""Live updates: every event is first a row, then a publish on Redis pub/sub.

A page that reconnects with Last-Event-ID replays from rows (LogLine.sequence), so a
publish that nobody heard loses nothing. Publishing never fails a deploy: Redis being
down only delays what pages show until they reconnect.
"""

import json
import logging

from django.conf import settings

from deployments.integrations import redis

log = logging.getLogger(__name__)


def channel(kind, pk):
    """`helmdeck:<db>:<kind>:<pk>`: "release" (log and status events of one release) and
    "profile" (pod events of one profile's pods). Redis has one pub/sub namespace for all
    of a server's databases: the database number of REDIS_URL keeps two panels that share
    a Redis server (each with its own database) from hearing each other's events."""
    return f"helmdeck:{redis.database_number(settings.REDIS_URL)}:{kind}:{pk}"


def pattern(kind):
    """Every channel of `kind`, for a pattern subscription: the status page listens to all
    profiles' pod events and all releases' status events (deployments.hub)."""
    return channel(kind, "*")


def message_fields(raw):
    """(event, data, id) of a published message's body (what `publish` wrote), or None for
    a body that is not one: subscribers read what any Redis client could have put there."""
    try:
        payload = json.loads(raw)
    except (TypeError, ValueError):
        return None
    if not isinstance(payload, dict):
        return None
    return payload.get("event"), payload.get("data"), payload.get("id")


def publish(channel_name, event, data, event_id=None):
    message = json.dumps({"event": event, "data": data, "id": event_id})
    try:
        redis.publish(channel_name, message)
    except redis.RedisError as exc:
        log.warning("publish to %s failed: %s", channel_name, type(exc).__name__)
