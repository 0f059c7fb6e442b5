"""deployments.services.profile_health: one badge per case, from PodState rows and the last
release."""

from datetime import timedelta

import pytest
from django.utils import timezone

from deployments.models import PodState, Release
from deployments.services.profile_health import (
    DEGRADED,
    FAILED,
    HEALTHY,
    NOT_DEPLOYED,
    PROGRESSING,
    UNKNOWN,
    profile_health,
)

NOW = timezone.now()


def pod(name="p1", **fields):
    defaults = {
        "name": name,
        "phase": "Running",
        "ready": True,
        "ready_containers": 1,
        "total_containers": 1,
        "started_at": NOW - timedelta(minutes=30),
    }
    return PodState(**{**defaults, **fields})


def starting(name="p2"):
    return pod(name, ready=False, ready_containers=0, started_at=NOW - timedelta(seconds=5))


def crashing(name="p2"):
    return pod(
        name, ready=False, ready_containers=0, reason="CrashLoopBackOff", exit_code=1, restarts=4
    )


def release(status):
    return Release(status=status)


def health(pods, last):
    return profile_health(pods=pods, last_release=last, now=NOW)


@pytest.mark.parametrize(
    ("pods", "last", "expected"),
    [
        ([], None, NOT_DEPLOYED),
        ([pod(), pod("p2")], release("succeeded"), HEALTHY),
        ([pod()], None, HEALTHY),  # deployed outside the panel
        ([pod()], release("upgrading"), PROGRESSING),
        ([], release("queued"), PROGRESSING),
        ([pod(), starting()], release("succeeded"), PROGRESSING),
        ([pod(), crashing()], release("succeeded"), DEGRADED),
        ([crashing()], release("succeeded"), DEGRADED),
        ([crashing()], release("failed"), FAILED),
        ([], release("rolled_back"), FAILED),
        ([pod(), crashing()], release("rolled_back"), DEGRADED),  # the old pods still serve
        ([], release("succeeded"), UNKNOWN),  # no watcher report yet
        ([pod(deleted=True, ready=False)], None, NOT_DEPLOYED),
    ],
    ids=[
        "not-deployed",
        "healthy",
        "healthy-without-release",
        "active-release",
        "queued-no-pods",
        "pod-starting",
        "one-crashing",
        "all-crashing",
        "failed-release",
        "rolled-back-no-pods",
        "rolled-back-old-pods-ready",
        "unknown",
        "deleted-ignored",
    ],
)
def test_it_derives_each_badge(pods, last, expected):
    assert health(pods, last).status == expected


def test_it_counts_ready_pods_of_live_rows_only():
    result = health([pod(), crashing(), pod("gone", deleted=True)], release("succeeded"))
    assert (result.ready, result.total, result.ready_label) == (1, 2, "1/2")
    assert result.label == "Degraded"


def test_it_calls_a_pod_degraded_once_its_readiness_probe_fails():
    failing = pod(
        "p2",
        ready=False,
        ready_containers=0,
        last_event="Unhealthy: Readiness probe failed: HTTP 503",
        started_at=NOW - timedelta(seconds=20),
    )
    assert health([pod(), failing], release("succeeded")).status == DEGRADED
