"""deployments.services.diagnosis: the SQL filter the status page counts problems with
(`problem_q`) says exactly what `pod_state_problem` says, row by row; each kind names the
form field to change."""

import itertools
from datetime import timedelta

import pytest
from django.utils import timezone

from deployments.models import PodState
from deployments.services.diagnosis import (
    FIELDS,
    FIXES,
    LABELS,
    pod_problems,
    pod_state_problem,
    problem_q,
)
from tests.factories import ProfileFactory

NOW = timezone.now()
REASONS = (
    "",
    "Init:",
    "OOMKilled",
    "Init:OOMKilled",
    "CrashLoopBackOff",
    "Init:CrashLoopBackOff",
    "ErrImagePull",
    "ImagePullBackOff",
    "Init:ErrImageNeverPull",
    "InvalidImageName",
    "Unschedulable",
    "ContainerCreating",
    "Completed",
    "Terminating",
)
PHASES = ("Pending", "Running", "Succeeded", "")
EVENTS = ("", "Unhealthy: Readiness probe failed: 503", "Started: Started container app")
STARTS = (None, NOW - timedelta(seconds=20), NOW - timedelta(minutes=10))


@pytest.mark.django_db
def test_it_agrees_with_its_sql_filter_on_every_combination():
    profile = ProfileFactory()
    rows = []
    combos = itertools.product(REASONS, PHASES, EVENTS, STARTS, (False, True), (False, True))
    for n, (reason, phase, event, started, ready, deleted) in enumerate(combos):
        rows.append(
            PodState(
                profile=profile,
                namespace="ns",
                name=f"pod-{n}",
                reason=reason,
                phase=phase,
                last_event=event,
                started_at=started,
                ready=ready,
                deleted=deleted,
            )
        )
    PodState.objects.bulk_create(rows)
    in_sql = set(PodState.objects.filter(problem_q(now=NOW)).values_list("name", flat=True))
    in_python = {row.name for row in rows if pod_state_problem(row, now=NOW) is not None}
    assert in_sql == in_python
    assert 0 < len(in_sql) < len(rows)


def test_it_names_a_label_a_fix_and_a_field_for_every_kind():
    assert set(LABELS) == set(FIXES) == set(FIELDS)
    row = PodState(name="web-1", component="web", reason="OOMKilled", exit_code=137, restarts=2)
    problem = pod_state_problem(row, now=NOW)
    assert (problem.kind, problem.component, problem.field) == ("oom", "web", "memory_limit")
    assert problem.label == "OOMKilled" and "memory limit" in problem.fix
    crash = pod_state_problem(PodState(name="web-2", reason="CrashLoopBackOff"), now=NOW)
    assert crash.field is None  # nothing to edit: read the previous container's log


def _pod(
    name="web-1",
    *,
    phase="Running",
    ready=False,
    waiting=None,
    last=None,
    started=20,
    scheduled=None,
    deleting=False,
):
    """A V1Pod as the API returns it: one container `app`, started `started` s ago."""
    from kubernetes import client as k

    state = (
        k.V1ContainerState(waiting=k.V1ContainerStateWaiting(reason=waiting))
        if waiting
        else k.V1ContainerState(running=k.V1ContainerStateRunning(started_at=NOW))
    )
    last_state = (
        k.V1ContainerState(terminated=k.V1ContainerStateTerminated(exit_code=137, reason=last))
        if last
        else None
    )
    conditions = [k.V1PodCondition(type="Ready", status=str(ready))]
    if scheduled is not None:
        conditions.append(
            k.V1PodCondition(
                type="PodScheduled", status="False", reason="Unschedulable", message=scheduled
            )
        )
    return k.V1Pod(
        metadata=k.V1ObjectMeta(
            name=name,
            namespace="ns",
            labels={"app.kubernetes.io/component": "web"},
            deletion_timestamp=NOW if deleting else None,
        ),
        spec=k.V1PodSpec(containers=[k.V1Container(name="app", image="shop/web:1")]),
        status=k.V1PodStatus(
            phase=phase,
            start_time=NOW - timedelta(seconds=started),
            conditions=conditions,
            container_statuses=[]
            if phase == "Pending" and scheduled
            else [
                k.V1ContainerStatus(
                    name="app",
                    image="shop/web:1",
                    image_id="",
                    ready=ready,
                    restart_count=2 if last else 0,
                    state=state,
                    last_state=last_state,
                )
            ],
        ),
    )


def _event(pod, reason, message, seconds_ago=1):
    from kubernetes import client as k

    return k.CoreV1Event(
        metadata=k.V1ObjectMeta(namespace="ns", name=f"{pod}.1"),
        involved_object=k.V1ObjectReference(kind="Pod", name=pod, namespace="ns"),
        reason=reason,
        message=message,
        last_timestamp=NOW - timedelta(seconds=seconds_ago),
    )


def test_a_pod_inside_its_readiness_delay_is_not_a_problem_until_the_kubelet_says_so():
    """Running, not Ready, no probe has failed yet: the pod may be inside its readiness
    initialDelaySeconds, so a deploy does not call it failing (it once did, every deploy)."""
    pod = _pod(started=5)
    assert pod_problems([pod], [_event("web-1", "Started", "Started container app")], now=NOW) == []
    failed = _event("web-1", "Unhealthy", "Readiness probe failed: HTTP 503")
    (problem,) = pod_problems([pod], [failed], now=NOW)
    assert problem.kind == "not-ready" and problem.component == "web"
    assert problem.message == (
        "Running but not Ready: the readiness probe fails "
        "(Unhealthy: Readiness probe failed: HTTP 503)"
    )
    (stuck,) = pod_problems([_pod(started=600)], [], now=NOW)  # long past any delay
    assert stuck.kind == "not-ready"


def test_pod_objects_and_their_rows_get_the_same_diagnosis():
    cases = [
        (_pod(waiting="CrashLoopBackOff", last="OOMKilled"), "oom"),
        (_pod(waiting="ErrImageNeverPull"), "image"),
        (_pod(waiting="CrashLoopBackOff", last="Error"), "crash"),
        (
            _pod(phase="Pending", scheduled="0/3 nodes are available: 3 Insufficient cpu."),
            "pending",
        ),
        (_pod(ready=True), None),
        (_pod(waiting="CrashLoopBackOff", last="Error", deleting=True), None),
    ]
    for pod, kind in cases:
        found = pod_problems([pod], now=NOW)
        assert [p.kind for p in found] == ([kind] if kind else []), pod.status
    oom, image, crash, pending = (pod_problems([pod], now=NOW)[0] for pod, _ in cases[:4])
    assert oom.message == "OOMKilled (exit code 137) after 2 restarts: its memory limit is too low"
    assert image.message.startswith("ErrImageNeverPull: image shop/web:1 is not on the node")
    assert crash.message == "CrashLoopBackOff (exit code 137, 2 restarts)"
    assert pending.message == "Pending: 0/3 nodes are available: 3 Insufficient cpu."
