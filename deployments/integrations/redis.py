"""Helmdeck's own use of Redis, besides Celery's: short-timeout clients for the app's Redis
(REDIS_URL: heartbeats, the reaper's lock, /ready) and for the broker's (the marks of sent
release chains)."""

import redis
from django.conf import settings


def app_client():
    """The app's Redis (REDIS_URL), answering within a second or failing."""
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)


def broker_client():
    """The Celery broker's Redis (CELERY_BROKER_URL), answering within two seconds."""
    return redis.Redis.from_url(
        settings.CELERY_BROKER_URL, socket_timeout=2, socket_connect_timeout=2
    )
