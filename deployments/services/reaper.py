"""The reaper: settles releases whose worker died, so none stays active forever, and queues
again the queued releases whose task the broker lost."""

import time
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from deployments.integrations import IntegrationError
from deployments.models import Release, Step
from deployments.services.db_retry import db_retry
from deployments.services.helm_undo import undo_pending
from deployments.services.stage_run import StageRun, helm_timeout, release_publish_status


def release_reap(*, now=None, live_workers=None):
    """Settle releases whose worker died: past their stage's deadline, or held by a Celery
    worker process whose heartbeat is gone. Reads `helm status`, rolls back a release helm
    left pending, and marks the row terminal. Returns the ids settled.

    `live_workers` are the ids of the fresh heartbeats (heartbeat.live_workers): one per
    worker process (`name@host#<pid>.<random>`), so a claim is alive only while the very
    process that made it beats; a worker restarted under the same node name is another.
    """
    now = now or timezone.now()
    settled = []
    stale = Q(deadline__lt=now)
    if live_workers is not None:  # Celery node names look like name@host; "cli" has no "@"
        stale |= (
            Q(worker__contains="@") & ~Q(worker__in=live_workers) & ~Q(status=Release.Status.QUEUED)
        )
    for release in Release.objects.filter(stale, status__in=Release.ACTIVE):
        reason = f"the worker running it stopped during {release.status}"
        if release.status == Release.Status.QUEUED:
            reason = "no worker started it in time: is a worker running? (make run starts one)"
        if release_abandon(release=release, reason=reason):
            settled.append(release.pk)
    return settled


def release_abandon(*, release, reason):
    """End an active release that nothing will finish (its worker died, or its stage failed
    on something unforeseen): roll back what helm left pending-*, then mark the row failed
    or rolled back with `reason`. Returns False when it had already ended."""
    run = StageRun(release)
    spec, helm = run.spec, run.helm()
    final = Release.Status.FAILED
    if release.kind == Release.Kind.TEARDOWN:  # an uninstall half done is not undone
        return _end(run, release, final, f"{reason}; run the teardown again to finish it")
    try:
        status = _settled_status(helm, spec["name"], spec["namespace"])
        state = ((status or {}).get("info") or {}).get("status", "")
        # a killed helm may have recorded its upgrade as failed on the way out
        interrupted = state == "failed" and release.status == Release.Status.UPGRADING
        if state.startswith("pending-") or interrupted:
            run.log(f"reaper: helm release is {state}")
            if undo_pending(run, helm, status, reason) == "deployed":
                final = Release.Status.ROLLED_BACK
        elif state == "deployed" and release.status == Release.Status.UPGRADING:
            # helm --rollback-on-failure, stopped with its worker, may have rolled back itself
            description = (status.get("info") or {}).get("description", "")
            if description.lower().startswith("rollback"):
                final = Release.Status.ROLLED_BACK
        if final == Release.Status.ROLLED_BACK:
            reason += "; the previous revision was restored"
    except IntegrationError as exc:
        reason, final = f"{reason}; helm status failed: {exc}", Release.Status.FAILED
    return _end(run, release, final, reason)


def _end(run, release, final, reason):
    reason = run.redact(reason)
    updated = db_retry(
        lambda: Release.objects.filter(pk=release.pk, status__in=Release.ACTIVE).update(
            status=final, reason=reason, finished_at=timezone.now()
        )
    )
    if not updated:
        return False
    db_retry(
        lambda: Step.objects.filter(
            release=release, status__in=[Step.Status.PENDING, Step.Status.RUNNING]
        ).update(status=Step.Status.FAILED, finished_at=timezone.now())
    )
    run.log(f"reaper: {final}: {reason}")
    release_publish_status(release.pk)
    return True


def _settled_status(helm, name, namespace, *, quiet=5, poll=1.0):
    """`helm status`, once no helm is still at work on the release. A helm that lost its
    worker gets SIGTERM and, with --rollback-on-failure, may still be rolling back
    (pending-rollback: wait for it, up to the helm timeout); any other pending-* state is
    taken as abandoned once it has not changed for `quiet` seconds."""
    deadline = time.monotonic() + helm_timeout() + 60
    status, since = helm.status(name, namespace), time.monotonic()
    while time.monotonic() < deadline:
        state = ((status or {}).get("info") or {}).get("status", "")
        if not state.startswith("pending-"):
            return status
        if state != "pending-rollback" and time.monotonic() - since >= quiet:
            return status
        time.sleep(poll)
        latest = helm.status(name, namespace)
        if _key(latest) != _key(status):
            status, since = latest, time.monotonic()
    return status


def _key(status):
    return (status or {}).get("version"), ((status or {}).get("info") or {}).get("status")


def release_requeue(*, is_queued, enqueue, grace, now=None):
    """Queue again each release still queued after `grace` seconds whose task the broker
    no longer holds (`is_queued(pk)` is False): Redis restarted without persistence, or was
    down when the deploy was asked for. A duplicate message is harmless: the build stage
    claims the row with a conditional update, and a chain whose stage claims nothing stops.

    Releases put back in the queue by `deploy --wait` (worker "cli") are that process's.
    Returns the ids queued again.
    """
    cutoff = (now or timezone.now()) - timedelta(seconds=grace)
    waiting = Release.objects.filter(status=Release.Status.QUEUED, created_at__lt=cutoff).filter(
        Q(worker="") | Q(worker__contains="@")
    )
    requeued = []
    for release in waiting:
        if is_queued(release.pk):
            continue
        StageRun(release).log("its queued task was lost (Redis restarted?): queued again")
        enqueue(release.pk, release.kind)
        requeued.append(release.pk)
    return requeued
