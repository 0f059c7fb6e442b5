"""Why pods are not Ready: one table of rules (RULES) over a pod's PodState columns, the
fields `kubectl describe pod` shows (the first container reason that says something:
ErrImagePull, CrashLoopBackOff, OOMKilled, Unschedulable, ...; phase; readiness; the last
event; when it started).

Three readers, one rule table:
- `pod_state_problem(row)`: a PodState row (the watcher keeps them; the status pages);
- `problem_q()`: the same as a database filter (counting problems of many profiles at once);
- `pod_problems(pods, events)`: Kubernetes pod objects and their namespace's events (a
  deploy watching its pods), read into the same columns by the watcher's own
  `pod_state_fields`.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from deployments.models import PodState
from deployments.services.pod_states import event_fields, pod_state_fields

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


def _code(row):
    return f"exit code {row.exit_code}" if row.exit_code is not None else "no exit code"


NOT_READY_GRACE = timedelta(minutes=2)
READINESS_FAILED = "Unhealthy: Readiness probe failed"


@dataclass(frozen=True)
class Rule:
    """A pod not Ready and not being deleted has problem `kind` when its reason (with or
    without an "Init:" prefix: an init container's) is one of `reasons`, its phase is
    `phase` (when given), and, when `probed`, a readiness probe failed (the last event says
    so) or it has been Running unready for longer than the grace (before that it may simply
    be inside its probe's initialDelaySeconds)."""

    kind: str
    reasons: tuple
    message: Callable
    phase: str = ""
    probed: bool = False


# In order: the first that matches names the problem.
RULES = (
    Rule(
        "oom",
        ("OOMKilled",),
        lambda r: (
            f"OOMKilled ({_code(r)}) after {r.restarts} restarts: its memory limit is too low"
        ),
    ),
    Rule(
        "image",
        IMAGE_REASONS,
        lambda r: f"{r.reason.removeprefix('Init:')}: {_not_on_node(r.image)}",
    ),
    Rule(
        "crash",
        ("CrashLoopBackOff",),
        lambda r: f"CrashLoopBackOff ({_code(r)}, {r.restarts} restarts)",
    ),
    Rule(
        "pending",
        ("Unschedulable",),
        lambda r: f"Pending: {r.message or 'cannot be scheduled'}",
        phase="Pending",
    ),
    Rule(
        "not-ready",
        ("",),
        lambda r: (
            "Running but not Ready: the readiness probe fails"
            + (f" ({r.last_event})" if r.last_event.startswith(READINESS_FAILED) else "")
        ),
        phase="Running",
        probed=True,
    ),
)


def _matches(rule, row, now, grace):
    if row.reason.removeprefix("Init:") not in rule.reasons:
        return False
    if rule.phase and row.phase != rule.phase:
        return False
    if rule.probed:
        probe_failed = row.last_event.startswith(READINESS_FAILED)
        stuck = row.started_at is not None and now - row.started_at > grace
        return probe_failed or stuck
    return True


def pod_state_problem(row, *, now=None, grace=NOT_READY_GRACE):
    """The problem of one PodState row by RULES; None when the pod is fine or gone."""
    if row.deleted or row.ready:
        return None
    now = now or timezone.now()
    for rule in RULES:
        if _matches(rule, row, now, grace):
            log = row.last_log if rule.kind == "crash" else ""
            return Problem(rule.kind, row.name, rule.message(row), row.component, log)
    return None


def _reasons(*names):
    return [*names, *(f"Init:{name}" for name in names)]


def problem_q(*, prefix="", now=None, grace=NOT_READY_GRACE):
    """`pod_state_problem(row) is not None` as a database filter on PodState (`prefix`
    "pods__" from Profile), built from the same RULES, so the status page can count
    problems and filter by health for every profile in one query."""
    now = now or timezone.now()

    def q(**lookups):
        return Q(**{f"{prefix}{name}": value for name, value in lookups.items()})

    matches = Q()
    for rule in RULES:
        match = q(reason__in=_reasons(*rule.reasons))
        if rule.phase:
            match &= q(phase=rule.phase)
        if rule.probed:
            match &= q(last_event__startswith=READINESS_FAILED) | q(started_at__lt=now - grace)
        matches |= match
    return q(deleted=False, ready=False) & matches


def pod_problems(pods, events=(), *, now=None):
    """The problems of Kubernetes pods (none for Ready pods or pods being deleted), each
    read into PodState's columns with the namespace's latest event about it."""
    latest: dict[str, tuple] = {}  # pod -> (text, time) of its newest event
    for event in events:
        found = event_fields(event)
        if found is not None:
            _, pod, text, at = found
            known = latest.get(pod)
            if known is None or (at is not None and (known[1] is None or at >= known[1])):
                latest[pod] = (text, at)
    problems = []
    for pod in pods:
        if pod.metadata.deletion_timestamp is not None:
            continue
        fields = pod_state_fields(pod)
        fields.pop("resource_version")
        row = PodState(**fields, last_event=latest.get(pod.metadata.name, ("", None))[0])
        problem = pod_state_problem(row, now=now)
        if problem is not None:
            problems.append(problem)
    return problems
