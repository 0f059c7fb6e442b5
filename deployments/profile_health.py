"""A profile's health, from its pods (PodState rows) and its last release: one pure function
the status page calls per profile, unit-tested badge by badge."""

from dataclasses import dataclass

from deployments.models import Release
from deployments.services.diagnosis import pod_state_problem

HEALTHY, PROGRESSING, DEGRADED, FAILED = "healthy", "progressing", "degraded", "failed"
NOT_DEPLOYED, UNKNOWN = "not_deployed", "unknown"
LABELS = {
    HEALTHY: "Healthy",
    PROGRESSING: "Progressing",
    DEGRADED: "Degraded",
    FAILED: "Failed",
    NOT_DEPLOYED: "Not deployed",
    UNKNOWN: "Unknown",
}
FAILED_RELEASES = (Release.FAILED, Release.ROLLED_BACK)


@dataclass(frozen=True)
class Health:
    status: str
    ready: int
    total: int

    @property
    def label(self):
        return LABELS[self.status]

    @property
    def ready_label(self):
        return f"{self.ready}/{self.total}"


def profile_health(*, pods, last_release, now=None):
    """Healthy (all pods Ready), Progressing (an active release, or pods starting), Degraded
    (some pods not Ready with a problem), Failed (last release failed or rolled back and no
    Ready pod), Not deployed (no release and no pods); Unknown when a release is there but
    no pod is known (the watcher has not reported any yet).

    `pods` are PodState rows (deleted ones are ignored), `last_release` a Release or None.
    """
    live = [pod for pod in pods if not pod.deleted]
    ready = sum(1 for pod in live if pod.ready)
    status = last_release.status if last_release is not None else None

    def health(value):
        return Health(value, ready, len(live))

    if status is None and not live:
        return health(NOT_DEPLOYED)
    if status in Release.ACTIVE:
        return health(PROGRESSING)
    if status in FAILED_RELEASES and ready == 0:
        return health(FAILED)
    if not live:
        return health(UNKNOWN)
    if ready == len(live):
        return health(HEALTHY)
    if any(pod_state_problem(pod, now=now) for pod in live if not pod.ready):
        return health(DEGRADED)
    return health(PROGRESSING)
