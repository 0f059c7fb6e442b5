"""3. The status page at 10, 100 and 1,000 profiles with 10 pods each.

Rows are generated with bulk_create (profiles with two components, a succeeded release
and 10 PodState rows: 8 Ready, one CrashLoopBackOff, one Pending), then `GET /` is asked
through Django's test Client (the whole middleware stack, no socket) as a logged-in user.
Server time p50/p95 per scale and the query count (CaptureQueriesContext), which must not
grow with the number of profiles. The generated rows are deleted afterwards.
"""

import time
from datetime import timedelta

from benchmarks import harness
from benchmarks.report import Goal, Result, median, percentile

NAME = "status_page"
TITLE = "Status page at scale (GET /, 10 pods per profile)"
GROUP = f"{harness.PREFIX}sp-"


def _generate(start, stop):
    from django.utils import timezone

    from deployments.models import Cluster, Component, PodState, Profile, Release

    cluster = Cluster.objects.get(name="minikube")
    now = timezone.now()
    profiles = Profile.objects.bulk_create(
        Profile(name=f"{GROUP}{i:04d}", namespace=f"{GROUP}{i:04d}", cluster=cluster)
        for i in range(start, stop)
    )
    Component.objects.bulk_create(
        Component(profile=p, position=pos, name=comp, image=f"bench/{comp}", tag="1.0.0", port=port)
        for p in profiles
        for pos, (comp, port) in enumerate((("frontend", 3000), ("backend", 8000)))
    )
    Release.objects.bulk_create(
        Release(
            profile=p,
            status=Release.Status.SUCCEEDED,
            snapshot={},
            build=False,
            helm_revision=1,
            requested_by_name="bench",
            started_at=now - timedelta(minutes=5),
            finished_at=now - timedelta(minutes=4),
        )
        for p in profiles
    )
    pods = []
    for p in profiles:
        for j in range(10):
            state = {"phase": "Running", "ready": True, "ready_containers": 1}
            if j == 8:
                state = {
                    "phase": "Running",
                    "ready": False,
                    "ready_containers": 0,
                    "reason": "CrashLoopBackOff",
                    "exit_code": 1,
                    "restarts": 4,
                }
            elif j == 9:
                state = {
                    "phase": "Pending",
                    "ready": False,
                    "ready_containers": 0,
                    "reason": "Unschedulable",
                    "message": "0/1 nodes are available: 1 Insufficient cpu.",
                }
            pods.append(
                PodState(
                    profile=p,
                    namespace=p.namespace,
                    name=f"{p.name}-web-{j}",
                    component="frontend" if j % 2 else "backend",
                    total_containers=1,
                    node="helmdeck",
                    image="bench/web:1.0.0",
                    started_at=now - timedelta(minutes=3),
                    last_event="Started container web",
                    last_event_at=now,
                    **state,
                )
            )
    PodState.objects.bulk_create(pods, batch_size=2000)


def _measure(client, n):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    times, queries, size = [], [], 0
    for _ in range(n):
        with CaptureQueriesContext(connection) as ctx:
            started = time.perf_counter()
            response = client.get("/")
            times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise harness.BenchError(f"GET / answered {response.status_code}")
        queries.append(len(ctx.captured_queries))
        size = len(response.content)
    return times, queries, size


def run(*, quick=False):
    from django.test import Client

    harness.delete_profiles(name__startswith=GROUP)
    n = 5 if quick else 20
    client = Client()
    client.force_login(harness.bench_user())
    client.get("/")  # warm: templates compiled, permissions cached per request anyway
    result = Result(NAME, TITLE)
    counts, done = [], 0
    try:
        for scale in (10, 100, 1000):
            _generate(done, scale)
            done = scale
            _measure(client, 1)
            times, queries, size = _measure(client, n)
            counts.append(max(queries))
            goal = Goal("<=", 100, unit="ms") if scale == 1000 else None
            result.add(f"{scale:,} profiles: server time p50", median(times))
            result.add(f"{scale:,} profiles: server time p95", percentile(times, 95), goal=goal)
            result.add(
                f"{scale:,} profiles: queries",
                max(queries),
                unit="",
                note=f"{size // 1024} KiB page",
            )
            result.notes.append(f"{scale:,} profiles: page of {size / 1024:,.0f} KiB")
    finally:
        harness.delete_profiles(name__startswith=GROUP)
    result.add(
        "query count constant",
        max(counts) - min(counts),
        unit="",
        goal=Goal("==", 0, unit="queries more"),
    )
    result.notes.append(f"{n} requests per scale through django.test.Client (no socket)")
    return result
