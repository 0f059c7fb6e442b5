"""deployments.services.diagnosis: the SQL filter the status page counts problems with
(`problem_q`) says exactly what `pod_state_problem` says, row by row; each kind names the
form field to change."""

import itertools
from datetime import timedelta

import pytest
from django.utils import timezone

from deployments.models import PodState
from deployments.services.diagnosis import FIELDS, FIXES, LABELS, pod_state_problem, problem_q
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
