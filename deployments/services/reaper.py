"""The reaper: settles releases whose worker died, so none stays active forever."""

from django.db.models import Q
from django.utils import timezone

from deployments.integrations import IntegrationError
from deployments.models import Release, Step
from deployments.services.release_stages import _publish_status, _Run, helm_timeout


def release_reap(*, now=None, live_workers=None):
    """Settle releases whose worker died: past their stage's deadline, or held by a Celery
    worker whose heartbeat is gone. Reads `helm status`, rolls back a release helm left
    pending, and marks the row terminal. Returns the ids settled."""
    now = now or timezone.now()
    settled = []
    stale = Q(deadline__lt=now)
    if live_workers is not None:  # Celery hostnames look like name@host
        stale |= Q(worker__contains="@") & ~Q(worker__in=live_workers) & ~Q(status=Release.QUEUED)
    for release in Release.objects.filter(stale, status__in=Release.ACTIVE):
        run = _Run(release)
        spec, helm = run.spec, run.helm()
        reason = f"the worker running it stopped during {release.status}"
        if release.status == Release.QUEUED:
            reason = "no worker started it in time: is a worker running? (make run starts one)"
        try:
            status = helm.status(spec["name"], spec["namespace"])
            state = ((status or {}).get("info") or {}).get("status", "")
            if state.startswith("pending-"):
                run.log(f"reaper: helm release is {state}; rolling back")
                helm.rollback(spec["name"], spec["namespace"], timeout=helm_timeout())
                final = Release.ROLLED_BACK
            else:
                final = Release.FAILED
        except IntegrationError as exc:
            reason, final = f"{reason}; helm status failed: {exc}", Release.FAILED
        updated = Release.objects.filter(pk=release.pk, status__in=Release.ACTIVE).update(
            status=final, reason=reason, finished_at=timezone.now()
        )
        if updated:
            Step.objects.filter(release=release, status__in=[Step.PENDING, Step.RUNNING]).update(
                status=Step.FAILED, finished_at=timezone.now()
            )
            run.log(f"reaper: {final}: {reason}")
            _publish_status(release.pk)
            settled.append(release.pk)
    return settled
