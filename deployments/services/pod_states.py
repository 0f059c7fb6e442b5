"""PodState rows from what the Kubernetes API says about pods and their events.

The watch loop (deployments/services/cluster_watch.py, run by `manage.py watch_cluster`)
feeds pods and events here. This module holds no Kubernetes connection:

- `pod_state_fields(pod)`: a V1Pod -> the PodState columns (pure; the same reading of
  container states `kubectl get pods` shows in its STATUS column),
- `event_fields(event)`: a core/v1 Event about a pod -> (namespace, pod, text, time),
- `pod_state_apply` / `pod_state_event` / `pod_state_mark_deleted` /
  `pod_states_reconcile`: write a row only when something changed and say so,
- `pod_state_publish(row)`: the "pod" event on the profile's channel, after the write,
- `crashed_container(pod)` / `pod_state_set_last_log`: a crash-looping pod's last lines.

Every event id is the row's `updated_at` in microseconds since the epoch, so a page that
reconnects can replay the rows updated after its Last-Event-ID.
"""

from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.utils import timezone

from deployments import events
from deployments.integrations.kube import COMPONENT_LABEL
from deployments.models import PodState

# Columns the watch keeps current (resource_version is written along with a change, but a
# new resourceVersion alone is not a change: kwok and kubelets bump it without news).
POD_FIELDS = (
    "component",
    "phase",
    "ready",
    "ready_containers",
    "total_containers",
    "restarts",
    "reason",
    "message",
    "exit_code",
    "node",
    "host_ip",
    "image",
    "started_at",
)
MESSAGE_MAX = 1000


def _ready(pod):
    conditions = (pod.status and pod.status.conditions) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _waiting(status):
    return status.state.waiting if status.state else None


def _terminated(status):
    return status.state.terminated if status.state else None


def _last_terminated(status):
    return status.last_state.terminated if status.last_state else None


def _container_reason(statuses, prefix=""):
    """(reason, message, exit code) of the first container that has something to say."""
    exit_code = None
    for status in statuses:
        waiting, now, last = _waiting(status), _terminated(status), _last_terminated(status)
        finished = now or last
        if finished is not None and exit_code is None:
            exit_code = finished.exit_code
        if waiting is not None and waiting.reason:
            if waiting.reason == "CrashLoopBackOff" and last and last.reason == "OOMKilled":
                # the restart loop is the symptom; the memory limit is the cause
                return "OOMKilled", waiting.message or "", last.exit_code
            code = finished.exit_code if finished is not None else exit_code
            return prefix + waiting.reason, waiting.message or "", code
        if now is not None:
            reason = now.reason or f"ExitCode:{now.exit_code}"
            return prefix + reason, now.message or "", now.exit_code
        if not status.ready and last is not None and last.reason:
            return prefix + last.reason, last.message or "", last.exit_code
    return "", "", exit_code


def pod_state_fields(pod):
    """The PodState columns for one pod (no profile, no events: those come from elsewhere)."""
    meta, spec, status = pod.metadata, pod.spec, pod.status
    labels = meta.labels or {}
    containers = (spec.containers if spec else None) or []
    statuses = (status.container_statuses if status else None) or []
    init_statuses = (status.init_container_statuses if status else None) or []
    phase = (status.phase if status else None) or ""

    reason, message, exit_code = "", "", None
    if phase == "Pending" and init_statuses:
        reason, message, exit_code = _container_reason(init_statuses, prefix="Init:")
    if not reason:
        reason, message, code = _container_reason(statuses)
        exit_code = code if code is not None else exit_code
    if not reason and status is not None and status.reason:  # Evicted, NodeLost, ...
        reason, message = status.reason, status.message or ""
    if not reason and phase == "Pending":
        for condition in (status and status.conditions) or []:
            if condition.type == "PodScheduled" and condition.status == "False":
                reason, message = condition.reason or "Unschedulable", condition.message or ""
    if meta.deletion_timestamp is not None and not reason:
        reason = "Terminating"

    return {
        "namespace": meta.namespace or "",
        "name": meta.name,
        "component": labels.get(COMPONENT_LABEL, ""),
        "phase": phase,
        "ready": _ready(pod),
        "ready_containers": sum(1 for s in statuses if s.ready),
        "total_containers": len(containers) or len(statuses),
        "restarts": sum(s.restart_count or 0 for s in statuses),
        "reason": reason[:128],
        "message": (message or "")[:MESSAGE_MAX],
        "exit_code": exit_code,
        "node": (spec.node_name if spec else None) or "",
        "host_ip": ((status.host_ip if status else None) or "")[:45],
        "image": (containers[0].image if containers else "") or "",
        "started_at": status.start_time if status else None,
        "resource_version": meta.resource_version or "",
    }


def event_fields(event):
    """(namespace, pod name, text, time) of an Event about a pod; None for other objects."""
    obj = event.involved_object
    if obj is None or obj.kind != "Pod" or not obj.name:
        return None
    at = (
        event.last_timestamp
        or event.event_time
        or event.first_timestamp
        or event.metadata.creation_timestamp
    )
    text = f"{event.reason}: {event.message}" if event.reason else (event.message or "")
    if event.count and event.count > 1:
        text = f"{text} (x{event.count})"
    namespace = obj.namespace or event.metadata.namespace or ""
    return namespace, obj.name, text[:MESSAGE_MAX], at


def _changed(row, fields):
    return [name for name, value in fields.items() if getattr(row, name) != value]


def pod_state_apply(*, profile_id, fields, last_event=None):
    """Upsert the row of one pod; return (row, changed). `fields` is pod_state_fields(pod);
    `last_event` an optional (text, time) newer than what the row holds."""
    values = {name: fields[name] for name in POD_FIELDS}
    values["profile_id"] = profile_id
    values["deleted"] = False
    if last_event is not None:
        values["last_event"], values["last_event_at"] = last_event
    with transaction.atomic():
        row = (
            PodState.objects.select_for_update()
            .filter(namespace=fields["namespace"], name=fields["name"])
            .first()
        )
        if row is None:
            row = PodState.objects.create(
                namespace=fields["namespace"],
                name=fields["name"],
                resource_version=fields["resource_version"],
                **values,
            )
            return row, True
        if last_event is not None and row.last_event_at and last_event[1] < row.last_event_at:
            values.pop("last_event"), values.pop("last_event_at")
        changed = _changed(row, values)
        if not changed:
            return row, False
        for name in changed:
            setattr(row, name, values[name])
        row.resource_version = fields["resource_version"]
        row.save(update_fields=[*changed, "resource_version", "updated_at"])
        return row, True


def pod_state_event(*, namespace, name, text, at):
    """Record the newest event of a pod on its row; the row if it changed, else None."""
    with transaction.atomic():
        row = PodState.objects.select_for_update().filter(namespace=namespace, name=name).first()
        if row is None or row.deleted:
            return None
        if row.last_event_at and at and at < row.last_event_at:
            return None
        if (row.last_event, row.last_event_at) == (text, at):
            return None
        row.last_event, row.last_event_at = text, at
        row.save(update_fields=["last_event", "last_event_at", "updated_at"])
        return row


def pod_state_mark_deleted(*, namespace, name):
    """The pod is gone: mark its row deleted; the row if that changed it, else None."""
    with transaction.atomic():
        row = PodState.objects.select_for_update().filter(namespace=namespace, name=name).first()
        if row is None or row.deleted:
            return None
        row.deleted, row.ready, row.ready_containers = True, False, 0
        row.reason = "Deleted"
        row.save(update_fields=["deleted", "ready", "ready_containers", "reason", "updated_at"])
        return row


def pod_states_reconcile(*, profile_ids, seen):
    """After a full list: rows of these profiles whose pod was not listed are deleted.
    `seen` is a set of (namespace, name). Returns the rows it marked."""
    stale = (
        PodState.objects.filter(profile_id__in=profile_ids, deleted=False)
        .only("namespace", "name")
        .order_by("pk")
    )
    marked = []
    for row in stale:
        if (row.namespace, row.name) not in seen:
            changed = pod_state_mark_deleted(namespace=row.namespace, name=row.name)
            if changed is not None:
                marked.append(changed)
    return marked


def pod_states_prune(*, older_than=timedelta(minutes=10)):
    """Forget pods deleted a while ago (pages show them as gone until then)."""
    cutoff = timezone.now() - older_than
    return PodState.objects.filter(deleted=True, updated_at__lt=cutoff).delete()[0]


def event_id(row):
    return int(row.updated_at.timestamp() * 1_000_000)


def event_id_time(value):
    """The inverse of event_id, for replaying rows updated after a Last-Event-ID."""
    return datetime.fromtimestamp(int(value) / 1_000_000, tz=UTC)


def pod_state_data(row):
    return {
        "name": row.name,
        "component": row.component,
        "phase": row.phase,
        "ready": row.ready,
        "ready_label": row.ready_label,
        "restarts": row.restarts,
        "reason": row.reason,
        "last_event": row.last_event,
        "deleted": row.deleted,
    }


def pod_state_publish(row):
    events.publish(
        events.channel("profile", row.profile_id), "pod", pod_state_data(row), event_id(row)
    )


CRASH_LOG_LINES = 5
CRASH_LOG_MAX = 2000


def crashed_container(pod):
    """The name of the pod's container in CrashLoopBackOff, or None."""
    statuses = (pod.status.container_statuses if pod.status else None) or []
    for status in statuses:
        waiting = _waiting(status)
        if waiting is not None and waiting.reason == "CrashLoopBackOff":
            return status.name
    return None


def pod_state_set_last_log(row, text):
    """Keep the crashed container's last lines on the row (the diagnosis shows them)."""
    text = text.strip()[-CRASH_LOG_MAX:]
    if text != row.last_log:
        PodState.objects.filter(pk=row.pk).update(last_log=text)
        row.last_log = text
