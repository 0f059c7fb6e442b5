"""The watcher's pure parts and its row writes, without a cluster: pod_state_fields on
V1Pod objects built here, the upsert that reports changes, diagnosis of rows, backoff."""

from datetime import UTC, datetime, timedelta

import pytest
from kubernetes import client

from deployments.models import PodState
from deployments.services import pod_states as watcher
from deployments.services.diagnosis import FIXES, pod_state_problem
from deployments.services.watch_streams import BACKOFF_CAP, Backoff, Registry
from tests.factories import ProfileFactory

STARTED = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def container_status(
    *,
    name="app",
    ready=False,
    restarts=0,
    waiting=None,
    running=False,
    terminated=None,
    last=None,
    image="todo-backend:1.0.0",
):
    def term(spec):
        if spec is None:
            return None
        reason, code = spec
        return client.V1ContainerStateTerminated(exit_code=code, reason=reason)

    state = client.V1ContainerState(
        waiting=client.V1ContainerStateWaiting(reason=waiting[0], message=waiting[1])
        if waiting
        else None,
        running=client.V1ContainerStateRunning(started_at=STARTED) if running else None,
        terminated=term(terminated),
    )
    return client.V1ContainerStatus(
        name=name,
        ready=ready,
        restart_count=restarts,
        image=image,
        image_id="",
        state=state,
        last_state=client.V1ContainerState(terminated=term(last)),
    )


def pod(
    *,
    name="todo-app-backend-7d9f-abcde",
    phase="Running",
    ready=False,
    statuses=(),
    init_statuses=None,
    conditions=(),
    containers=("app",),
    labels=None,
    deleting=False,
    reason=None,
):
    conds = [client.V1PodCondition(type="Ready", status="True" if ready else "False")]
    conds += [
        client.V1PodCondition(type=t, status=s, reason=r, message=m) for t, s, r, m in conditions
    ]
    return client.V1Pod(
        metadata=client.V1ObjectMeta(
            name=name,
            namespace="todo-app",
            resource_version="4711",
            labels=labels
            if labels is not None
            else {
                "app.kubernetes.io/instance": "todo-app",
                "app.kubernetes.io/component": "backend",
            },
            deletion_timestamp=STARTED if deleting else None,
        ),
        spec=client.V1PodSpec(
            node_name="helmdeck" if phase != "Pending" else None,
            containers=[client.V1Container(name=c, image=f"todo-{c}:1.0.0") for c in containers],
        ),
        status=client.V1PodStatus(
            phase=phase,
            reason=reason,
            host_ip="198.18.0.1" if phase != "Pending" else None,
            start_time=STARTED,
            conditions=conds,
            container_statuses=list(statuses),
            init_container_statuses=init_statuses,
        ),
    )


# ---- pod_state_fields ---------------------------------------------------------------------


def test_it_reads_a_ready_pod():
    fields = watcher.pod_state_fields(
        pod(ready=True, statuses=[container_status(ready=True, running=True)])
    )
    assert fields == {
        "namespace": "todo-app",
        "name": "todo-app-backend-7d9f-abcde",
        "component": "backend",
        "phase": "Running",
        "ready": True,
        "ready_containers": 1,
        "total_containers": 1,
        "restarts": 0,
        "reason": "",
        "message": "",
        "exit_code": None,
        "node": "helmdeck",
        "host_ip": "198.18.0.1",
        "image": "todo-app:1.0.0",
        "started_at": STARTED,
        "resource_version": "4711",
    }


def test_it_reads_a_crash_loop_with_restarts_and_the_last_exit_code():
    fields = watcher.pod_state_fields(
        pod(
            statuses=[
                container_status(
                    restarts=3,
                    waiting=("CrashLoopBackOff", "back-off 10s restarting failed container=app"),
                    last=("Error", 1),
                )
            ]
        )
    )
    assert fields["reason"] == "CrashLoopBackOff"
    assert fields["message"] == "back-off 10s restarting failed container=app"
    assert (fields["restarts"], fields["exit_code"], fields["ready"]) == (3, 1, False)


def test_it_names_oomkilled_rather_than_the_restart_loop_it_causes():
    fields = watcher.pod_state_fields(
        pod(
            statuses=[
                container_status(
                    restarts=2, waiting=("CrashLoopBackOff", "back-off"), last=("OOMKilled", 137)
                )
            ]
        )
    )
    assert (fields["reason"], fields["exit_code"], fields["restarts"]) == ("OOMKilled", 137, 2)


def test_it_keeps_the_last_termination_reason_while_a_restarted_container_is_not_ready():
    fields = watcher.pod_state_fields(
        pod(statuses=[container_status(restarts=1, running=True, last=("Error", 1))])
    )
    assert (fields["reason"], fields["exit_code"]) == ("Error", 1)


def test_it_reads_image_pull_errors_of_a_pending_pod():
    fields = watcher.pod_state_fields(
        pod(
            phase="Pending",
            statuses=[container_status(waiting=("ImagePullBackOff", 'Back-off pulling image "x"'))],
        )
    )
    assert (fields["phase"], fields["reason"], fields["node"]) == (
        "Pending",
        "ImagePullBackOff",
        "",
    )
    assert fields["message"] == 'Back-off pulling image "x"'


def test_it_reads_an_unschedulable_pod_from_its_condition():
    message = "0/1 nodes are available: 1 Insufficient cpu."
    fields = watcher.pod_state_fields(
        pod(
            phase="Pending",
            statuses=[],
            conditions=[("PodScheduled", "False", "Unschedulable", message)],
        )
    )
    assert (fields["reason"], fields["message"]) == ("Unschedulable", message)
    assert (fields["ready_containers"], fields["total_containers"]) == (0, 1)


def test_it_prefixes_init_container_failures():
    fields = watcher.pod_state_fields(
        pod(
            phase="Pending",
            init_statuses=[
                container_status(
                    name="migrate", waiting=("CrashLoopBackOff", ""), last=("Error", 2)
                )
            ],
            statuses=[container_status(waiting=("PodInitializing", ""))],
        )
    )
    assert (fields["reason"], fields["exit_code"]) == ("Init:CrashLoopBackOff", 2)


def test_it_counts_ready_containers_and_restarts_over_all_containers():
    fields = watcher.pod_state_fields(
        pod(
            containers=("app", "sidecar"),
            statuses=[
                container_status(ready=True, running=True, restarts=1, last=("Completed", 0)),
                container_status(name="sidecar", running=True, restarts=2),
            ],
        )
    )
    assert (fields["ready_containers"], fields["total_containers"], fields["restarts"]) == (1, 2, 3)


def test_it_reads_evicted_and_terminating_pods():
    evicted = watcher.pod_state_fields(pod(phase="Failed", reason="Evicted"))
    assert evicted["reason"] == "Evicted"
    going = watcher.pod_state_fields(
        pod(ready=True, deleting=True, statuses=[container_status(ready=True, running=True)])
    )
    assert going["reason"] == "Terminating"


def test_it_survives_a_pod_without_status():
    bare = client.V1Pod(
        metadata=client.V1ObjectMeta(name="p", namespace="n", labels={}),
        spec=client.V1PodSpec(containers=[client.V1Container(name="app", image="a:1")]),
    )
    fields = watcher.pod_state_fields(bare)
    assert (fields["phase"], fields["component"], fields["total_containers"]) == ("", "", 1)


def test_it_reads_events_about_pods_only():
    at = STARTED + timedelta(seconds=5)
    event = client.CoreV1Event(
        metadata=client.V1ObjectMeta(name="e1", namespace="todo-app"),
        involved_object=client.V1ObjectReference(kind="Pod", name="p1", namespace="todo-app"),
        reason="BackOff",
        message="Back-off restarting failed container app",
        count=4,
        last_timestamp=at,
    )
    assert watcher.event_fields(event) == (
        "todo-app",
        "p1",
        "BackOff: Back-off restarting failed container app (x4)",
        at,
    )
    event.involved_object.kind = "Deployment"
    assert watcher.event_fields(event) is None


# ---- rows ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_writes_a_row_only_when_something_changed():
    profile = ProfileFactory(name="todo-app", namespace="todo-app")
    ready = pod(ready=True, statuses=[container_status(ready=True, running=True)])
    row, changed = watcher.pod_state_apply(
        profile_id=profile.pk, fields=watcher.pod_state_fields(ready)
    )
    assert changed and row.profile_id == profile.pk and row.ready_label == "1/1"
    assert PodState.objects.get().host_ip == "198.18.0.1"  # where its NodePorts answer
    stamp = row.updated_at

    ready.metadata.resource_version = "4712"  # a new resourceVersion alone is no news
    row, changed = watcher.pod_state_apply(
        profile_id=profile.pk, fields=watcher.pod_state_fields(ready)
    )
    assert not changed
    assert PodState.objects.get().updated_at == stamp

    crashing = pod(
        statuses=[
            container_status(restarts=1, waiting=("CrashLoopBackOff", "")),
        ]
    )
    row, changed = watcher.pod_state_apply(
        profile_id=profile.pk, fields=watcher.pod_state_fields(crashing)
    )
    assert changed
    saved = PodState.objects.get()
    assert (saved.reason, saved.restarts, saved.ready, saved.resource_version) == (
        "CrashLoopBackOff",
        1,
        False,
        "4711",
    )
    assert saved.updated_at > stamp
    assert watcher.event_id(saved) > watcher.event_id(row) - 1


@pytest.mark.django_db
def test_it_keeps_the_newest_event_and_marks_deleted_pods():
    profile = ProfileFactory(name="todo-app", namespace="todo-app")
    fields = watcher.pod_state_fields(pod())
    watcher.pod_state_apply(profile_id=profile.pk, fields=fields)
    later, earlier = STARTED + timedelta(seconds=9), STARTED + timedelta(seconds=3)
    key = {"namespace": "todo-app", "name": fields["name"]}
    assert watcher.pod_state_event(**key, text="Unhealthy: Readiness probe failed", at=later)
    assert watcher.pod_state_event(**key, text="Pulled: old news", at=earlier) is None
    assert (
        watcher.pod_state_event(**key, text="Unhealthy: Readiness probe failed", at=later) is None
    )
    assert PodState.objects.get().last_event == "Unhealthy: Readiness probe failed"

    gone = watcher.pod_states_reconcile(profile_ids={profile.pk}, seen=set())
    assert [r.name for r in gone] == [fields["name"]]
    row = PodState.objects.get()
    assert row.deleted and row.reason == "Deleted" and not row.ready
    assert watcher.pod_state_mark_deleted(**key) is None  # already marked: no change
    assert watcher.pod_state_data(row) == {
        "name": fields["name"],
        "component": "backend",
        "phase": "Running",
        "ready": False,
        "ready_label": "0/1",
        "restarts": 0,
        "reason": "Deleted",
        "last_event": "Unhealthy: Readiness probe failed",
        "deleted": True,
    }


# ---- diagnosis of rows -----------------------------------------------------------------------


def row(**fields):
    defaults = {"name": "p1", "phase": "Running", "image": "todo-backend:1.0.0"}
    return PodState(**{**defaults, **fields})


@pytest.mark.parametrize(
    ("fields", "kind", "words"),
    [
        ({"reason": "CrashLoopBackOff", "exit_code": 1, "restarts": 3}, "crash", "exit code 1, 3"),
        ({"reason": "OOMKilled", "exit_code": 137, "restarts": 2}, "oom", "exit code 137"),
        ({"reason": "ImagePullBackOff", "phase": "Pending"}, "image", "todo-backend:1.0.0"),
        ({"reason": "ErrImagePull", "phase": "Pending"}, "image", "ErrImagePull"),
        (
            {"reason": "Unschedulable", "phase": "Pending", "message": "1 Insufficient cpu."},
            "pending",
            "Insufficient cpu",
        ),
        (
            {"last_event": "Unhealthy: Readiness probe failed: HTTP probe failed (x3)"},
            "not-ready",
            "Readiness probe failed",
        ),
    ],
)
def test_it_diagnoses_rows_with_the_seed_fixes(fields, kind, words):
    problem = pod_state_problem(row(**fields))
    assert problem.kind == kind
    assert words in problem.message
    assert problem.fix == FIXES[kind]


def test_it_finds_no_problem_in_ready_deleted_or_starting_pods():
    now = STARTED + timedelta(seconds=30)
    assert pod_state_problem(row(ready=True), now=now) is None
    assert pod_state_problem(row(reason="CrashLoopBackOff", deleted=True), now=now) is None
    assert pod_state_problem(row(started_at=STARTED), now=now) is None  # inside the probe delay
    stuck = pod_state_problem(row(started_at=STARTED), now=STARTED + timedelta(minutes=5))
    assert stuck.kind == "not-ready"


# ---- loop helpers -------------------------------------------------------------------------


def test_it_backs_off_exponentially_with_jitter_up_to_a_cap():
    low = Backoff(base=0.5, rng=lambda: 0.0)
    assert [low.next() for _ in range(4)] == [0.25, 0.5, 1.0, 2.0]
    high = Backoff(base=0.5, rng=lambda: 1.0)
    delays = [high.next() for _ in range(12)]
    assert delays[:3] == [0.5, 1.0, 2.0]
    assert max(delays) == BACKOFF_CAP
    high.reset()
    assert high.next() == 0.5


def test_it_notices_new_profiles_and_keeps_only_the_newest_event_per_pod():
    registry = Registry()
    assert registry.set_profiles({("ns", "a"): 1}) is True
    assert registry.set_profiles({("ns", "a"): 1}) is False
    assert registry.set_profiles({("ns", "a"): 1, ("other", "b"): 2}) is True
    assert registry.namespaces == {"ns", "other"}
    registry.remember("ns", "p", "new", STARTED + timedelta(seconds=2))
    registry.remember("ns", "p", "old", STARTED)
    assert registry.last_event("ns", "p") == ("new", STARTED + timedelta(seconds=2))


@pytest.mark.django_db
def test_it_prunes_rows_of_pods_deleted_a_while_ago():
    profile = ProfileFactory(name="todo-app", namespace="todo-app")
    fields = watcher.pod_state_fields(pod())
    watcher.pod_state_apply(profile_id=profile.pk, fields=fields)
    live = watcher.pod_state_fields(pod(name="todo-app-backend-live"))
    watcher.pod_state_apply(profile_id=profile.pk, fields=live)
    watcher.pod_state_mark_deleted(namespace="todo-app", name=fields["name"])
    assert watcher.pod_states_prune() == 0  # just deleted: pages still show it as gone
    PodState.objects.filter(deleted=True).update(updated_at=STARTED)
    assert watcher.pod_states_prune() == 1
    assert list(PodState.objects.values_list("name", flat=True)) == ["todo-app-backend-live"]
    assert watcher.event_id_time(watcher.event_id(PodState.objects.get())) == (
        PodState.objects.get().updated_at
    )
