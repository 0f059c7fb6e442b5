"""Why pods are not Ready, from pod status and events, in the research's terms.

`pod_problems` reads the same fields `kubectl describe pod` shows: container waiting
reasons (ErrImagePull, ImagePullBackOff, CrashLoopBackOff), the last termination (exit
code, OOMKilled), readiness, and scheduling events (Insufficient cpu/memory).
`pod_state_problem` says the same about a PodState row (what the status pages show).
"""

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

FIXES = {
    "image": "Put the image where the node finds it: build it into the cluster's Docker "
    "(eval $(minikube docker-env)) or load it into the node's containerd (the Cluster's image "
    "delivery), and keep imagePullPolicy Never/IfNotPresent for local images.",
    "oom": "Raise the component's memory limit (and request); check usage with kubectl top pods.",
    "crash": "The container exits on start: read its last log lines and fix the cause.",
    "pending": "Requests exceed what the cluster has free: lower them, or "
    "minikube start --cpus=4 --memory=8192.",
    "not-ready": "The readiness probe fails: check the probe path and the app's dependencies.",
}


# Short names for the diagnosis badge (status page, pod table).
LABELS = {
    "image": "Image pull",
    "oom": "OOMKilled",
    "crash": "Crash loop",
    "pending": "Unschedulable",
    "not-ready": "Not ready",
}
# The profile form field a user changes to fix each kind (None: there is no field, read the
# logs). The status and profile pages link to it (`#component-<name>-<field>`).
FIELDS = {
    "image": "image",
    "oom": "memory_limit",
    "crash": None,
    "pending": "cpu_request",
    "not-ready": "readiness_path",
}


@dataclass(frozen=True)
class Problem:
    kind: str
    pod: str
    message: str
    component: str = ""
    log: str = ""  # a crashed container's last log lines

    @property
    def fix(self):
        return FIXES[self.kind]

    @property
    def label(self):
        return LABELS[self.kind]

    @property
    def field(self):
        return FIELDS[self.kind]

    def __str__(self):
        return f"{self.pod}: {self.message}"


# what the kubelet says when a container's image cannot be had: pulls that fail (a registry
# or no registry), a name it cannot parse, and imagePullPolicy Never without the image on
# the node (the local-image case; a simulation once said ImagePullBackOff here)
IMAGE_REASONS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")


def _not_on_node(image):
    return f"image {image} is not on the node (not in the cluster's Docker or containerd)"


def pod_problems(pods, events=()):
    """The problems of each pod that is not Ready (none for Ready pods)."""
    problems = []
    scheduling = {}
    for event in events:
        obj = event.involved_object
        if event.reason == "FailedScheduling" and obj is not None:
            scheduling[obj.name] = event.message or ""
    for pod in pods:
        problem = _pod_problem(pod, scheduling.get(pod.metadata.name))
        if problem is not None:
            problems.append(problem)
    return problems


def _pod_problem(pod, scheduling_message):
    name = pod.metadata.name
    if pod.metadata.deletion_timestamp is not None:
        return None
    statuses = pod.status.container_statuses or []
    for status in statuses:
        waiting = status.state.waiting if status.state else None
        last = status.last_state.terminated if status.last_state else None
        if last is not None and last.reason == "OOMKilled":
            return Problem(
                "oom",
                name,
                f"container {status.name} was OOMKilled (exit code "
                f"{last.exit_code}) after {status.restart_count} restarts: its "
                "memory limit is too low",
            )
        if waiting is not None and waiting.reason in IMAGE_REASONS:
            return Problem("image", name, f"{waiting.reason}: {_not_on_node(status.image)}")
        if waiting is not None and waiting.reason == "CrashLoopBackOff":
            code = f"exit code {last.exit_code}" if last is not None else "no exit code"
            return Problem(
                "crash",
                name,
                f"container {status.name} is in CrashLoopBackOff "
                f"({code}, {status.restart_count} restarts)",
            )
    if pod.status.phase == "Pending" and scheduling_message:
        return Problem("pending", name, f"Pending: {scheduling_message}")
    ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
    if (
        pod.status.phase == "Running"
        and not ready
        and statuses
        and all(s.state and s.state.running for s in statuses)
    ):
        return Problem("not-ready", name, "Running but not Ready: the readiness probe fails")
    return None


# ---- the watcher's rows ------------------------------------------------------------------
NOT_READY_GRACE = timedelta(minutes=2)
READINESS_FAILED = "Unhealthy: Readiness probe failed"


def pod_state_problem(row, *, now=None, grace=NOT_READY_GRACE):
    """The problem of one PodState row (deployments.services.watcher keeps them current),
    in the same kinds and words as `pod_problems`; None when the pod is fine or gone.

    A pod that is Running but not Ready is a problem once a readiness probe failed
    (an `Unhealthy` event) or it has been so for longer than `grace`: before that it may
    simply be inside its probe's initialDelaySeconds.
    """
    if row.deleted or row.ready:
        return None
    reason = row.reason.removeprefix("Init:")
    code = f"exit code {row.exit_code}" if row.exit_code is not None else "no exit code"

    def problem(kind, message, log=""):
        return Problem(kind, row.name, message, row.component, log)

    if reason == "OOMKilled":
        return problem(
            "oom", f"OOMKilled ({code}) after {row.restarts} restarts: its memory limit is too low"
        )
    if reason in IMAGE_REASONS:
        return problem("image", f"{reason}: {_not_on_node(row.image)}")
    if reason == "CrashLoopBackOff":
        return problem("crash", f"CrashLoopBackOff ({code}, {row.restarts} restarts)", row.last_log)
    if row.phase == "Pending" and reason == "Unschedulable":
        return problem("pending", f"Pending: {row.message or 'cannot be scheduled'}")
    if row.phase == "Running" and not reason:
        probe_failed = row.last_event.startswith(READINESS_FAILED)
        now = now or timezone.now()
        stuck = row.started_at is not None and now - row.started_at > grace
        if probe_failed or stuck:
            detail = f" ({row.last_event})" if probe_failed else ""
            return problem("not-ready", f"Running but not Ready: the readiness probe fails{detail}")
    return None


def _reasons(*names):
    return [*names, *(f"Init:{name}" for name in names)]


def problem_q(*, prefix="", now=None, grace=NOT_READY_GRACE):
    """`pod_state_problem(row) is not None` as a database filter on PodState (`prefix`
    "pods__" from Profile), so the status page can count problems and filter by health
    for every profile in one query instead of loading every pod. Kept beside the Python
    rule it mirrors; a test checks they agree row by row."""
    now = now or timezone.now()

    def q(**lookups):
        return Q(**{f"{prefix}{name}": value for name, value in lookups.items()})

    known = q(reason__in=_reasons("OOMKilled", "CrashLoopBackOff", *IMAGE_REASONS))
    pending = q(phase="Pending", reason__in=_reasons("Unschedulable"))
    not_ready = q(phase="Running", reason__in=("", "Init:")) & (
        q(last_event__startswith=READINESS_FAILED) | q(started_at__lt=now - grace)
    )
    return q(deleted=False, ready=False) & (known | pending | not_ready)
