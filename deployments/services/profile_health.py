"""A profile's health, from its pods (PodState rows) and its last release: one pure function
the status page calls per profile, unit-tested badge by badge."""

from dataclasses import dataclass

from deployments.models import Release
from deployments.services.diagnosis import pod_state_problem

HEALTHY, PROGRESSING, DEGRADED, FAILED = "healthy", "progressing", "degraded", "failed"
NOT_DEPLOYED, UNKNOWN, ASLEEP = "not_deployed", "unknown", "asleep"
# The order of the status page's health filter (worst first).
ORDER = (FAILED, DEGRADED, PROGRESSING, UNKNOWN, HEALTHY, ASLEEP, NOT_DEPLOYED)
LABELS = {
    HEALTHY: "Healthy",
    PROGRESSING: "Progressing",
    DEGRADED: "Degraded",
    FAILED: "Failed",
    NOT_DEPLOYED: "Not deployed",
    UNKNOWN: "Unknown",
    ASLEEP: "Asleep",
}
FAILED_RELEASES = (Release.Status.FAILED, Release.Status.ROLLED_BACK)


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


def health_status(*, release_status, live, ready, problems, asleep=False, torn_down=False):
    """The badge from counts: the last release's status (or None), live pods, Ready pods and
    not-Ready pods with a problem, and whether the profile was put to sleep. The status page
    computes these counts in SQL for every profile (selectors.status_page) and the row from
    the pods; both land here. A profile whose last release was a teardown is Not deployed
    once its pods are gone."""
    if (release_status is None or (torn_down and release_status in Release.TERMINAL)) and not live:
        return NOT_DEPLOYED
    if release_status in Release.ACTIVE:
        return PROGRESSING
    if asleep and not ready:  # its pods stopping are not a problem: they were asked to
        return ASLEEP
    if release_status in FAILED_RELEASES and ready == 0:
        return FAILED
    if not live:
        return UNKNOWN
    if ready == live:
        return HEALTHY
    if problems:
        return DEGRADED
    return PROGRESSING


def profile_health(*, pods, last_release, asleep=False, now=None):
    """Healthy (all pods Ready), Progressing (an active release, or pods starting), Degraded
    (some pods not Ready with a problem), Failed (last release failed or rolled back and no
    Ready pod), Not deployed (no release and no pods); Unknown when a release is there but
    no pod is known (the watcher has not reported any yet); Asleep when put to sleep
    (services/operations.py) and no release is running.

    `pods` are PodState rows (deleted ones are ignored), `last_release` a Release or None.
    """
    live = [pod for pod in pods if not pod.deleted]
    ready = sum(1 for pod in live if pod.ready)
    problems = sum(1 for pod in live if pod_state_problem(pod, now=now) is not None)
    status = health_status(
        release_status=last_release.status if last_release is not None else None,
        live=len(live),
        ready=ready,
        problems=problems,
        asleep=asleep,
        torn_down=last_release is not None and last_release.kind == Release.Kind.TEARDOWN,
    )
    return Health(status, ready, len(live))
