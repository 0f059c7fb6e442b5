"""The worker heartbeat behind /ready: a live worker refreshes a Redis key with a TTL.

Celery's own event heartbeats need `-E` and a monitor to collect them; a key with an
expiry answers "is a worker alive right now?" with one Redis SCAN from the web process.
"""

import contextlib
import logging
import threading
import time

import redis
from celery.signals import worker_ready, worker_shutdown
from django.conf import settings

KEY_PREFIX = "helmdeck:worker:"
log = logging.getLogger(__name__)
_stop = threading.Event()


def client():
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)


def beat(hostname):
    client().set(
        f"{KEY_PREFIX}{hostname}", int(time.time()), ex=settings.HELMDECK_WORKER_HEARTBEAT_TTL
    )


def live_workers(conn):
    return [key.decode()[len(KEY_PREFIX) :] for key in conn.scan_iter(f"{KEY_PREFIX}*", count=100)]


def reap_if_due(conn):
    """Settle releases whose worker died, and queue again those whose queued task Redis
    lost; at most once every HELMDECK_REAP_SECONDS across all workers (a Redis lock)."""
    from django.db import close_old_connections

    from deployments.services.reaper import release_reap
    from deployments.tasks import requeue_lost

    if not conn.set("helmdeck:reaper", "1", nx=True, ex=settings.HELMDECK_REAP_SECONDS):
        return []
    close_old_connections()
    try:
        settled = release_reap(live_workers=live_workers(conn))
        requeue_lost()
        return settled
    finally:
        close_old_connections()


def _run(hostname):
    while not _stop.is_set():
        with contextlib.suppress(redis.RedisError):  # /ready reports Redis; the next beat retries
            beat(hostname)
        try:
            reap_if_due(client())
        except Exception:  # the reaper must never stop the heartbeat
            log.exception("reaping releases failed")
        _stop.wait(settings.HELMDECK_WORKER_HEARTBEAT_SECONDS)


@worker_ready.connect
def _start(sender, **kwargs):
    _stop.clear()
    threading.Thread(target=_run, args=(sender.hostname,), daemon=True, name="heartbeat").start()


@worker_shutdown.connect
def _end(sender, **kwargs):
    _stop.set()
    with contextlib.suppress(redis.RedisError):
        client().delete(f"{KEY_PREFIX}{sender.hostname}")
