"""Results a worker computes for a page that polls (a profile's preview, a cluster's doctor
checks): kept in the cache under a key that changes with their inputs, queued once."""

import logging

from django.core.cache import cache

log = logging.getLogger(__name__)
PENDING = "pending"


def cached_or_queued(key, pending_ttl, task, *args, valid):
    """A worker's cached result under `key`, or None after queueing `task(*args)` (once
    the request's transaction commits) to make it.

    A `pending` marker (set with add(), so only the first caller enqueues) keeps a page that
    polls from queueing the same work again. A value that is not `valid` (the shape the
    worker stores) is not ours: dropped, it is a miss like a value that is not JSON
    (controlpanel/cache.py).
    """
    report = cache.get(key)
    if report is not None and report != PENDING:
        if valid(report):
            return report
        log.warning("cache value under %r is not what the worker stores: ignored", key)
        cache.delete(key)
    if cache.add(key, PENDING, pending_ttl):
        task.delay_on_commit(*args)
    return None
