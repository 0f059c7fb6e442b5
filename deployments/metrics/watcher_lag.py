"""The watcher's lag, from a Kubernetes Event's time to the PodState row that shows it.

The rows cannot say it afterwards: a pod's row has the time of its last event
(`last_event_at`) and of its last write (`updated_at`), but any later change of the pod
rewrites `updated_at`. So the watcher measures it as it writes (watch_streams.EventStream:
the row's new `updated_at` minus the event's time, for events that arrive on the watch, not
the hour of old events a relist reads again) and adds it to a histogram kept in one Redis
hash, `helmdeck:watcher-lag`: a cumulative count per bucket (`le:<bound>`), `count` and
`sum`. It survives watcher restarts (Prometheus reads it as a counter that only grows;
a Redis that loses it is a counter reset).

Kubernetes gives an Event's time in whole seconds (lastTimestamp), truncated: a lag reads up
to a second long, and a clock of the watcher's host behind the API server's reads as 0 (a
negative lag is recorded as 0).
"""

import logging
import math
import time

from deployments.integrations.redis import RedisError, shared_client

KEY = "helmdeck:watcher-lag"
BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)
QUIET_SECONDS = 10.0  # after a Redis failure, record nothing for this long
log = logging.getLogger(__name__)
_quiet_until = 0.0


def bucket_field(bound):
    return f"le:{bound:g}"


def watcher_lag_observe(seconds, *, conn=None):
    """Add one lag to the histogram (one round trip). A Redis that fails is left alone for
    QUIET_SECONDS: the watch thread that calls this must not wait on it event after event."""
    global _quiet_until
    if time.monotonic() < _quiet_until or not math.isfinite(seconds):
        return
    seconds = max(0.0, seconds)
    pipe = (conn or shared_client()).pipeline(transaction=False)
    for bound in BUCKETS:
        if seconds <= bound:
            pipe.hincrby(KEY, bucket_field(bound), 1)
    pipe.hincrby(KEY, "count", 1)
    pipe.hincrbyfloat(KEY, "sum", seconds)
    try:
        pipe.execute()
    except RedisError as exc:
        _quiet_until = time.monotonic() + QUIET_SECONDS
        log.warning("could not record the watcher's lag (%s)", type(exc).__name__)


def watcher_lag_read(conn):
    """([(bound, cumulative count)], count, sum) of the histogram; raises RedisError."""
    fields = {key.decode(): value for key, value in conn.hgetall(KEY).items()}
    count = int(fields.get("count", 0))
    buckets = [(bound, int(fields.get(bucket_field(bound), 0))) for bound in BUCKETS]
    return buckets, count, float(fields.get("sum", 0.0))
