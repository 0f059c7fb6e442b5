"""Helmdeck's own use of Redis, besides Celery's, in one place: short-timeout clients for the
app's Redis (REDIS_URL: heartbeats, the reaper's lock, /ready) and for the broker's (the
marks of sent release chains), publishing on pub/sub through one pool per process, and the
pub/sub client the web process's hub listens on. Callers catch `RedisError`, the one error
type (redis-py's own), and never import redis themselves."""

import functools

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

__all__ = [
    "RedisError",
    "app_client",
    "broker_client",
    "database_number",
    "publish",
    "pubsub_client",
]


def app_client():
    """The app's Redis (REDIS_URL), answering within a second or failing."""
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)


def shared_client():
    """One client (a connection pool) per process for the app's Redis, for what runs on
    every request (the API's rate limits): no connection set up per call."""
    return _client_for(settings.REDIS_URL)


@functools.lru_cache(maxsize=4)
def _client_for(url):
    return redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)


def broker_client():
    """The Celery broker's Redis (CELERY_BROKER_URL), answering within two seconds."""
    return redis.Redis.from_url(
        settings.CELERY_BROKER_URL, socket_timeout=2, socket_connect_timeout=2
    )


@functools.cache
def database_number(url):
    """The database number a Redis URL names (0 when it names none)."""
    return redis.connection.parse_url(url).get("db") or 0


@functools.cache
def _publish_pool(url):
    return redis.ConnectionPool.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def publish(channel_name, message):
    """PUBLISH `message` on the app's Redis through this process's pool; raises RedisError."""
    redis.Redis(connection_pool=_publish_pool(settings.REDIS_URL)).publish(channel_name, message)


def pubsub_client(url, *, client_name):
    """An asyncio client for one long-lived pub/sub connection. redis-py's own retries are
    off: they would resubscribe silently, and the hub must know to tell its streams.
    (redis.asyncio is imported here: only the web process's hub needs it.)"""
    import redis.asyncio as aioredis

    return aioredis.Redis.from_url(
        url,
        socket_connect_timeout=2,
        socket_timeout=5,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
        client_name=client_name,
    )
