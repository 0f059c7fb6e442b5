"""The Django cache on Redis, with JSON values instead of pickles.

Django's RedisCache pickles every value and unpickles whatever it reads back: anyone who can
write a key (a local user on a Redis without a password, a shared Redis) would run code in
the web process and the workers. Helmdeck caches only JSON-shaped worker results (previews,
doctor reports, metrics answers), so values are stored as JSON; a value that is not JSON (a
planted pickle, garbage) is a miss: it is logged, deleted, and the caller computes afresh.
"""

import json
import logging

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

log = logging.getLogger(__name__)


class UndecodableValue(ValueError):
    """A cached value that is not JSON: never trusted, treated as a miss."""


class JSONSerializer:
    """Django's RedisSerializer contract (`dumps`/`loads`), JSON instead of pickle. Integers
    stay plain, as Django's does, so incr()/decr() work on them."""

    def dumps(self, obj):
        if type(obj) is int:
            return obj
        return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()

    def loads(self, data):
        try:
            return int(data)
        except ValueError:
            pass
        try:
            return json.loads(data)
        except ValueError:  # JSONDecodeError and UnicodeDecodeError (a pickle's bytes)
            raise UndecodableValue("not a JSON value") from None


class JSONRedisCacheClient(RedisCacheClient):
    _serializer: JSONSerializer  # RedisCacheClient's own, set from options["serializer"]

    def __init__(self, servers, **options):
        options["serializer"] = JSONSerializer  # never pickle, whatever OPTIONS say
        super().__init__(servers, **options)

    def _forget(self, key):
        log.warning("cache value under %r is not JSON: ignored and deleted", key)
        self.get_client(key, write=True).delete(key)

    def get(self, key, default):
        try:
            return super().get(key, default)
        except UndecodableValue:
            self._forget(key)
            return default

    def get_many(self, keys):
        client = self.get_client(None)
        found = {}
        for key, value in zip(keys, client.mget(keys), strict=True):
            if value is None:
                continue
            try:
                found[key] = self._serializer.loads(value)
            except UndecodableValue:
                self._forget(key)
        return found


class JSONRedisCache(RedisCache):
    """settings.CACHES' backend: django.core.cache.backends.redis.RedisCache, JSON values."""

    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = JSONRedisCacheClient
