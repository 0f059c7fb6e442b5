"""The worker heartbeat behind /ready and the reaper: a live worker refreshes a Redis key
with a TTL.

Celery's own event heartbeats need `-E` and a monitor to collect them; a key with an
expiry answers "is a worker alive right now?" with one Redis SCAN from the web process.

A heartbeat names one worker *process*, not its Celery node name: a worker SIGKILLed and
started again as `-n name@host` (a container or service restart, often with the same pid)
is a new incarnation, `name@host#<pid>.<random>`. Its claims (Release.worker) and its key
carry that id, so the reaper settles the dead incarnation's release at once even though a
worker under the same node name is alive. Ids are compared whole: a claim by a worker
without incarnations (a bare `name@host`, from before) is alive only while a key of that
exact name is refreshed, which only such a worker writes.
"""

import contextlib
import logging
import os
import secrets
import threading
import time

from django.conf import settings

from deployments.integrations.redis import RedisError, app_client

KEY_PREFIX = "helmdeck:worker:"
# Set by the worker process at start-up; its pool's child processes (which claim releases)
# inherit it, whether forked or spawned. Never set at import: a launcher that imports
# Django would hand one id to every worker it starts.
ID_ENV = "HELMDECK_WORKER_ID"
SEPARATOR = "#"
log = logging.getLogger(__name__)
_stop = threading.Event()


def new_worker_id(hostname, *, max_length=None):
    """A fresh incarnation id for the worker process `hostname` (its Celery node name):
    `name@host#<pid>.<random>`, cut to fit Release.worker (the node name gives way, never
    the part that makes it unique)."""
    if max_length is None:
        from deployments.models import Release

        max_length = Release._meta.get_field("worker").max_length
    suffix = f"{SEPARATOR}{os.getpid()}.{secrets.token_hex(6)}"
    return f"{hostname[: max_length - len(suffix)]}{suffix}"


def worker_id():
    """This process's incarnation id, as its heartbeat key and its claims record it; "" in a
    process that is not a Celery worker (a claim without an id is settled by its deadline,
    never taken for a dead worker's)."""
    return os.environ.get(ID_ENV, "")


def beat(identity):
    app_client().set(
        f"{KEY_PREFIX}{identity}", int(time.time()), ex=settings.HELMDECK_WORKER_HEARTBEAT_TTL
    )


def live_workers(conn):
    """The ids of the worker processes whose heartbeat is fresh."""
    return [key.decode()[len(KEY_PREFIX) :] for key in conn.scan_iter(f"{KEY_PREFIX}*", count=100)]


def reap_if_due(conn):
    """Settle releases whose worker died, queue again those whose queued task Redis lost,
    and send the sleep schedule's and the notifications' rounds; at most once every
    HELMDECK_REAP_SECONDS across all workers (a Redis lock)."""
    from django.db import close_old_connections

    from deployments.services.reaper import release_reap
    from deployments.services.release_queue import release_requeue_lost

    if not conn.set("helmdeck:reaper", "1", nx=True, ex=settings.HELMDECK_REAP_SECONDS):
        return []
    close_old_connections()
    try:
        settled = release_reap(live_workers=live_workers(conn))
        release_requeue_lost()
        _send_sleep_round()
        _send_notifications_round()
        return settled
    finally:
        close_old_connections()


def _send_sleep_round():
    """The sleep schedule's round (services/operations.profiles_sleep_idle) as a task of its
    own: it calls the cluster, which must never hold up this thread's heartbeat. Sent only
    when some awake profile has a schedule."""
    from deployments.models import Profile
    from deployments.tasks import sleep_idle_profiles

    if Profile.objects.filter(sleep_after_hours__isnull=False, asleep_since=None).exists():
        # expires: a round nobody ran before the next one is sent is dropped, not piled up
        sleep_idle_profiles.apply_async(expires=settings.HELMDECK_REAP_SECONDS, retry=False)


def _send_notifications_round():
    """The notifications' round (services/notifications.notifications_round): lost messages
    and the health notices. Sent only when some rule exists."""
    from deployments.models import NotificationRule
    from deployments.tasks import notifications_round

    if NotificationRule.objects.exists():
        notifications_round.apply_async(expires=settings.HELMDECK_REAP_SECONDS, retry=False)


def _run(identity):
    while not _stop.is_set():
        with contextlib.suppress(RedisError):  # /ready reports Redis; the next beat retries
            beat(identity)
        try:
            reap_if_due(app_client())
        except Exception:  # the reaper must never stop the heartbeat
            log.exception("reaping releases failed")
        _stop.wait(settings.HELMDECK_WORKER_HEARTBEAT_SECONDS)


def worker_incarnate(sender, **kwargs):
    """On worker_init (controlpanel/celery.py connects this and the two below), sent in the
    worker's main process before its pool starts: a new id every start
    (also after Celery's own re-exec on SIGHUP, which keeps pid and environment)."""
    os.environ[ID_ENV] = new_worker_id(sender.hostname)


def _identity(sender):
    """The name this worker beats under: its incarnation id (the node name if it has none)."""
    return worker_id() or sender.hostname


def worker_heartbeat_start(sender, **kwargs):
    """On worker_ready: beat (and reap when due) in a thread until the worker stops."""
    _stop.clear()
    threading.Thread(target=_run, args=(_identity(sender),), daemon=True, name="heartbeat").start()


def worker_heartbeat_stop(sender, **kwargs):
    """On worker_shutdown: stop beating and take the key away at once."""
    _stop.set()
    with contextlib.suppress(RedisError):
        app_client().delete(f"{KEY_PREFIX}{_identity(sender)}")
