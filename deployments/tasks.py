"""Celery tasks: thin. Load by id, call a service, store or publish the result."""

import functools
import hashlib
import logging
import time

import redis
from celery import chain, shared_task
from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from deployments import heartbeat
from deployments.models import Cluster, Profile, Release
from deployments.services import release_stages
from deployments.services.db_retry import db_retry
from deployments.services.doctor import cluster_doctor
from deployments.services.preview import fingerprint, profile_preview
from deployments.services.reaper import release_abandon, release_requeue

log = logging.getLogger(__name__)

PREVIEW_TTL = 15 * 60


def preview_key(profile_id, print_):
    return f"helmdeck:preview:{profile_id}:{print_}"


@shared_task(time_limit=300, soft_time_limit=240, ignore_result=True)
def render_preview(profile_id, print_):
    """Compute a profile's preview in the worker (the web process never runs helm)."""
    profile = Profile.objects.select_related("cluster").filter(pk=profile_id).first()
    if profile is None or fingerprint(profile) != print_:
        return  # deleted or changed since the request: a newer preview will be asked for
    cache.set(preview_key(profile_id, print_), profile_preview(profile=profile), PREVIEW_TTL)


def _cached_or_queued(key, pending_ttl, task, *args, valid):
    """A worker's cached result under `key`, or None after queueing `task(*args)` to make it.

    A `pending` marker (set with add(), so only the first caller enqueues) keeps a page that
    polls from queueing the same work again. A value that is not `valid` (the shape the
    worker stores) is not ours: dropped, it is a miss like a value that is not JSON
    (controlpanel/cache.py).
    """
    report = cache.get(key)
    if report is not None and report != "pending":
        if valid(report):
            return report
        log.warning("cache value under %r is not what the worker stores: ignored", key)
        cache.delete(key)
    if cache.add(key, "pending", pending_ttl):
        task.delay_on_commit(*args)
    return None


def preview_request(profile):
    """The cached preview of a profile as it is now, or None after queueing its computation."""
    print_ = fingerprint(profile)
    return _cached_or_queued(
        preview_key(profile.pk, print_),
        PREVIEW_TTL,
        render_preview,
        profile.pk,
        print_,
        valid=_is_preview,
    )


def _is_preview(value):
    return (
        isinstance(value, dict)
        and all(isinstance(value.get(k, {}), dict) for k in ("resources", "diff", "secrets"))
        and isinstance(value.get("checks", []), list)
        and all(isinstance(c, dict) for c in value.get("checks", []))
        and isinstance(value.get("problems", []), list)
    )


DOCTOR_TTL = 120  # results: a minute or two old at most
DOCTOR_PENDING_TTL = 300  # longer than the task's time limit: asked once while it runs


def doctor_key(cluster):
    """Changes when the cluster's settings change, so an edited cluster is checked again."""
    settings_ = (
        cluster.kubeconfig_path,
        cluster.kube_context,
        cluster.minikube_profile,
        cluster.docker_host,
        cluster.image_delivery,
        cluster.containerd_address,
        str(cluster.capacity_cpus),
        cluster.capacity_memory,
    )
    digest = hashlib.sha256(repr(settings_).encode()).hexdigest()[:12]
    return f"helmdeck:doctor:{cluster.pk}:{digest}"


@shared_task(time_limit=300, soft_time_limit=240, ignore_result=True)
def run_doctor(cluster_id, key):
    """The environment doctor for a cluster, in the worker (it runs docker, helm, kubectl)."""
    cluster = Cluster.objects.filter(pk=cluster_id).first()
    if cluster is None or doctor_key(cluster) != key:
        cache.delete(key)
        return
    cache.set(key, [vars(result) for result in cluster_doctor(cluster=cluster)], DOCTOR_TTL)


def doctor_request(cluster):
    """The cached doctor results ([{name, ok, detail, fix}]) of a cluster, or None after
    queueing the checks; poll it as the preview is polled."""
    key = doctor_key(cluster)
    return _cached_or_queued(
        key, DOCTOR_PENDING_TTL, run_doctor, cluster.pk, key, valid=_is_doctor_report
    )


def _is_doctor_report(value):
    return isinstance(value, list) and all(
        isinstance(r, dict) and {"name", "ok", "detail", "fix"} <= r.keys() for r in value
    )


def doctor_forget(cluster):
    """Drop a cluster's cached results, so the next request runs the checks again."""
    cache.delete(doctor_key(cluster))


# ---- releases: one task per stage, chained; each claims its row, so a redelivery is a no-op


# A stage task goes on with the next stages of its chain itself, in this process, while it
# is young: each hop through the broker (send, receive, claim, load) cost ~30 ms of a deploy
# (benchmarks/deploy.py). Every stage still claims its row, so the messages of a duplicated
# or redelivered chain stay no-ops. A stage that must retry gets its own message then, with
# the rest of the chain; an old task (a long build) leaves the next stage to its own
# message and its own time limit.
INLINE_WITHIN = 120  # seconds


def _stage_task(stage):
    @shared_task(
        name=f"deployments.tasks.{stage.__name__}",
        bind=True,
        acks_late=True,
        time_limit=settings.HELMDECK_BUILD_TIMEOUT * 4,
        ignore_result=True,
        # the stage counts its attempts (HELMDECK_TRANSIENT_RETRIES); Celery's own limit
        # (3 by default) would otherwise end a fourth retry with the release left queued
        max_retries=None,
    )
    def task(self, release_id, attempt=0):
        started = time.monotonic()
        try:
            claimed = _attempt(stage, release_id, attempt)
        except release_stages.RetryLater as retry:
            # Same task, same chain links: the next stages still follow it.
            raise self.retry(kwargs={"attempt": attempt + 1}, countdown=retry.delay) from None
        chain = self.request.chain
        while claimed and chain and time.monotonic() - started < INLINE_WITHIN:
            if chain[-1].get("task") not in _STAGE_TASKS:
                break
            following_stage, following = _STAGE_TASKS[chain.pop()["task"]]
            try:
                claimed = _attempt(following_stage, release_id, 0)
            except release_stages.RetryLater as retry:
                following.apply_async(
                    (release_id,), {"attempt": 1}, countdown=retry.delay, chain=list(chain)
                )
                chain.clear()
                return True
        if not claimed:
            # This run holds nothing (another run has the release, or this stage ended it):
            # the rest of a duplicated or redelivered chain must not run beside the real one.
            self.request.chain = None
        return claimed

    _STAGE_TASKS[f"deployments.tasks.{stage.__name__}"] = (stage, task)
    return task


_STAGE_TASKS = {}  # task name -> (stage, task)


def _attempt(stage, release_id, attempt):
    """Run one stage; True when it holds the release and ended well. RetryLater passes
    through; anything unforeseen ends the release now, with words, rather than leaving it
    active until the reaper's deadline (hours for a build)."""
    try:
        # the claim names this worker process, as its heartbeat does (heartbeat.py)
        return stage(release_id, heartbeat.worker_id(), attempt)
    except release_stages.RetryLater:
        raise
    except Exception:
        log.exception("%s of release #%s failed", stage.__name__, release_id)
        _abandon(
            release_id,
            f"its {stage.__name__.removeprefix('release_')} stage stopped "
            "on an unexpected error (the worker's log has the details)",
        )
        return False


def _abandon(release_id, reason):
    try:
        release = db_retry(
            lambda: (
                Release.objects.select_related("profile__cluster")
                .filter(pk=release_id, status__in=Release.ACTIVE)
                .first()
            )
        )
        if release is not None:
            release_abandon(release=release, reason=reason)
    except Exception:  # the reaper's deadline remains the last resort
        log.exception("release #%s could not be marked failed", release_id)


build_release = _stage_task(release_stages.release_build)
render_release = _stage_task(release_stages.release_render)
upgrade_release = _stage_task(release_stages.release_upgrade)
verify_release = _stage_task(release_stages.release_verify)


QUEUED_KEY = "helmdeck:queued:"


def _broker():
    return redis.Redis.from_url(
        settings.CELERY_BROKER_URL, socket_timeout=2, socket_connect_timeout=2
    )


def _send(release_id):
    """Send a release's chain, then mark it sent in the broker's own Redis. The mark lives
    and dies with the message: a Redis that restarts without persistence loses both, and
    the reaper (`requeue_lost`) sends the release again. A broker that is down now only
    delays the release: it stays queued, unmarked, and is sent once Redis is back."""
    stages = chain(
        build_release.si(release_id),
        render_release.si(release_id),
        upgrade_release.si(release_id),
        verify_release.si(release_id),
    )
    try:
        stages.apply_async()
        _broker().set(f"{QUEUED_KEY}{release_id}", 1, ex=settings.HELMDECK_QUEUE_TIMEOUT)
    except Exception as exc:  # kombu's OperationalError, redis' errors, OSError
        log.warning("release #%s not sent to the queue yet: %s", release_id, exc)


def release_enqueue(release):
    """Start a requested release's chain once its row is committed."""
    transaction.on_commit(functools.partial(_send, release.pk))


def requeue_lost(conn=None):
    """Send again the queued releases whose message the broker lost (see `_send`)."""
    conn = conn or _broker()
    return release_requeue(
        is_queued=lambda pk: bool(conn.exists(f"{QUEUED_KEY}{pk}")),
        enqueue=_send,
        grace=settings.HELMDECK_WORKER_HEARTBEAT_TTL,
    )
