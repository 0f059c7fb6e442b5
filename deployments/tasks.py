"""Celery tasks: thin. Load by id and call a service (services enqueue them on commit:
preview.preview_request, doctor.doctor_request, releases.release_enqueue)."""

import time

from celery import shared_task
from django.conf import settings

import controlpanel.celery  # noqa: F401  (this project's app: the tasks are sent through it)
from deployments import heartbeat
from deployments.models import Cluster, Profile
from deployments.services import notifications, operations, release_stages, teardown
from deployments.services.doctor import doctor_store
from deployments.services.preview import preview_store
from deployments.services.release_queue import STAGES, release_stage_task_name
from deployments.services.releases import release_stage_attempt
from deployments.services.stage_run import RetryLater


@shared_task(time_limit=300, soft_time_limit=240, ignore_result=True)
def render_preview(profile_id, print_):
    """A profile's preview, in the worker (the web process never runs helm)."""
    profile = Profile.objects.select_related("cluster").filter(pk=profile_id).first()
    if profile is not None:  # deleted since: nobody waits for it
        preview_store(profile=profile, print_=print_)


@shared_task(time_limit=300, soft_time_limit=240, ignore_result=True)
def run_doctor(cluster_id, key):
    """The environment doctor for a cluster, in the worker (it runs docker, helm, kubectl)."""
    doctor_store(cluster=Cluster.objects.filter(pk=cluster_id).first(), key=key)


@shared_task(time_limit=600, soft_time_limit=540, ignore_result=True)
def sleep_idle_profiles():
    """Profiles whose sleep schedule is due go to sleep (heartbeat.reap_if_due sends it)."""
    operations.profiles_sleep_idle()


# ---- notifications: each message is its own task, retried with backoff; none holds a deploy


@shared_task(
    name=notifications.NOTIFY_RELEASE_TASK, time_limit=120, soft_time_limit=100, ignore_result=True
)
def notify_release(release_id):
    """A release ended: queue its messages (services/notifications.release_notify)."""
    notifications.release_notify(release_id=release_id)


@shared_task(
    name=notifications.DELIVER_TASK,
    bind=True,
    time_limit=notifications.DELIVERY_TIME_LIMIT,
    soft_time_limit=notifications.DELIVERY_TIME_LIMIT - 10,
    ignore_result=True,
    max_retries=None,  # the service counts attempts (HELMDECK_NOTIFY_RETRIES)
)
def deliver_notification(self, notification_id):
    """One attempt at a message; another, later, when it failed and may succeed yet."""
    outcome = notifications.notification_deliver(notification_id=notification_id)
    if outcome is not None and outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in)


@shared_task(time_limit=300, soft_time_limit=240, ignore_result=True)
def notifications_round():
    """Lost messages and releases told late, and the health notices (heartbeat.py sends it)."""
    notifications.notifications_round()


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
        name=release_stage_task_name(stage.__name__),
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
        except RetryLater as retry:
            # Same task, same chain links: the next stages still follow it.
            raise self.retry(kwargs={"attempt": attempt + 1}, countdown=retry.delay) from None
        chain = self.request.chain
        while claimed and chain and time.monotonic() - started < INLINE_WITHIN:
            if chain[-1].get("task") not in _STAGE_TASKS:
                break
            following_stage, following = _STAGE_TASKS[chain.pop()["task"]]
            try:
                claimed = _attempt(following_stage, release_id, 0)
            except RetryLater as retry:
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

    _STAGE_TASKS[release_stage_task_name(stage.__name__)] = (stage, task)
    return task


_STAGE_TASKS: dict = {}  # task name -> (stage, task)


def _attempt(stage, release_id, attempt):
    # the claim names this worker process, as its heartbeat does (heartbeat.py)
    return release_stage_attempt(
        stage=stage, release_id=release_id, attempt=attempt, worker=heartbeat.worker_id()
    )


# one task per stage, in release_queue.STAGES' order (the order the chain is sent in)
build_release, render_release, upgrade_release, verify_release = (
    _stage_task(getattr(release_stages, stage)) for stage in STAGES
)
teardown_release = _stage_task(teardown.release_teardown)
