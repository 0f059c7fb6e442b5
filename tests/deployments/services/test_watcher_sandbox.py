"""The watcher against the sandbox cluster, PostgreSQL and Redis: pods of profiles become
PodState rows (and publishes), deleted pods are marked, new profiles are picked up, 410
Gone relists, an unreachable cluster is retried with backoff, and `manage.py watch_cluster`
runs as its own process and stops on SIGTERM. Failure states (crash loops, OOM kills,
images not on the node, failing probes) come from a real kubelet:
test_watcher_real_node.py."""

import json
import logging
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from kubernetes import client
from kubernetes.client.rest import ApiException

from deployments import events
from deployments.models import Cluster, PodState
from deployments.services.cluster_watch import ClusterWatch
from tests.factories import ProfileFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).parents[3]


@pytest.fixture
def cluster(sandbox):
    return Cluster.objects.create(
        name=f"sandbox-{sandbox.namespace[-6:]}",
        kubeconfig_path=str(sandbox.kubeconfig),
        minikube_profile="",
    )


@pytest.fixture
def profile(cluster, sandbox):
    return ProfileFactory(name="shop", namespace=sandbox.namespace, cluster=cluster)


@pytest.fixture
def subscribe(redis_url):
    """subscribe(profile) -> a function returning the 'pod' messages published so far."""
    conn = redis.Redis.from_url(redis_url)
    pubsubs = []

    def _subscribe(profile):
        pubsub = conn.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(events.channel("profile", profile.pk))
        pubsub.get_message(timeout=1)  # the subscribe confirmation
        pubsubs.append(pubsub)
        received = []

        def messages():
            while (message := pubsub.get_message(timeout=0.05)) is not None:
                received.append(json.loads(message["data"]))
            return received

        return messages

    yield _subscribe
    for pubsub in pubsubs:
        pubsub.close()
    conn.close()


def make_pod(sandbox, name, *, instance="shop", component="web", annotations=None):
    container = client.V1Container(
        name="app",
        image=f"{name}:1.0.0",
        resources=client.V1ResourceRequirements(
            requests={"cpu": "10m", "memory": "16Mi"}, limits={"cpu": "10m", "memory": "16Mi"}
        ),
    )
    body = client.V1Pod(
        metadata=client.V1ObjectMeta(
            name=name,
            labels={
                "app.kubernetes.io/instance": instance,
                "app.kubernetes.io/component": component,
            },
            annotations=annotations or {},
        ),
        spec=client.V1PodSpec(containers=[container], termination_grace_period_seconds=0),
    )
    sandbox.core.create_namespaced_pod(sandbox.namespace, body)
    return name


def row(sandbox, name, **conditions):
    """The pod's row once it has all the given field values (then it is returned)."""
    found = PodState.objects.filter(namespace=sandbox.namespace, name=name).first()
    if found is None:
        return None
    for field, wanted in conditions.items():
        value = getattr(found, field)
        if (wanted(value) if callable(wanted) else value == wanted) is False:
            return None
    return found


def test_it_keeps_rows_of_a_profiles_pods_current_and_publishes_them(
    sandbox, profile, cluster, watcher, subscribe
):
    messages = subscribe(profile)
    ProfileFactory(name="elsewhere", namespace="not-this-namespace", cluster=cluster)
    make_pod(sandbox, "shop-web-1")
    make_pod(sandbox, "stranger-1", instance="unknown-app")
    make_pod(sandbox, "wrong-ns-1", instance="elsewhere")
    started = time.monotonic()
    watcher()

    ready = sandbox.wait_until(
        lambda: row(sandbox, "shop-web-1", phase="Running", ready=True, last_event=bool),
        timeout=30,
        what="a Running, Ready row with the pod's last event",
    )
    assert (ready.profile_id, ready.component, ready.ready_label) == (profile.pk, "web", "1/1")
    assert (ready.node, ready.image, ready.restarts, ready.reason) == (
        "helmdeck",
        "shop-web-1:1.0.0",
        0,
        "",
    )
    assert ready.started_at is not None and ready.resource_version
    assert ready.last_event.startswith(
        ("Started:", "Created:", "Pulled:", "Pulling:", "Scheduled:")
    )
    print(f"row Ready {time.monotonic() - started:.1f}s after the watcher started")

    published = sandbox.wait_until(
        lambda: [m for m in messages() if m["data"]["ready_label"] == "1/1"],
        timeout=10,
        what="a publish of the Ready pod",
    )[-1]
    assert published["event"] == "pod"
    assert published["data"]["name"] == "shop-web-1"
    assert published["data"]["phase"] == "Running"
    assert isinstance(published["id"], int)
    ids = [m["id"] for m in messages()]
    assert ids == sorted(ids)

    sandbox.core.delete_namespaced_pod("shop-web-1", sandbox.namespace, grace_period_seconds=0)
    gone = sandbox.wait_until(
        lambda: row(sandbox, "shop-web-1", deleted=True), timeout=30, what="the row marked deleted"
    )
    assert (gone.reason, gone.ready) == ("Deleted", False)
    sandbox.wait_until(
        lambda: any(m["data"]["deleted"] for m in messages()), timeout=10, what="a deleted publish"
    )
    assert not PodState.objects.filter(name__in=["stranger-1", "wrong-ns-1"]).exists()


def test_it_picks_up_a_profile_created_after_it_started(sandbox, profile, cluster, watcher):
    make_pod(sandbox, "late-web-1", instance="late")
    make_pod(sandbox, "shop-web-1")
    w = watcher()
    sandbox.wait_until(lambda: row(sandbox, "shop-web-1", ready=True), timeout=30, what="shop")
    assert not PodState.objects.filter(name="late-web-1").exists()

    late = ProfileFactory(name="late", namespace=sandbox.namespace, cluster=cluster)
    picked = sandbox.wait_until(
        lambda: row(sandbox, "late-web-1", ready=True), timeout=30, what="the new profile's pod"
    )
    assert picked.profile_id == late.pk
    make_pod(sandbox, "late-web-2", instance="late")  # and its new pods, through the watch
    sandbox.wait_until(lambda: row(sandbox, "late-web-2", ready=True), timeout=30, what="late-2")
    assert len(w.clusters) == 1


def test_it_watches_a_cluster_whose_first_profile_appears_later(sandbox, cluster, watcher):
    w = watcher()
    make_pod(sandbox, "first-web-1", instance="first")
    time.sleep(1)  # a few refreshes with no profile: nothing is watched
    assert w.clusters == {}
    ProfileFactory(name="first", namespace=sandbox.namespace, cluster=cluster)
    sandbox.wait_until(lambda: row(sandbox, "first-web-1", ready=True), timeout=30, what="row")


def test_it_relists_when_its_resource_version_is_gone(
    sandbox, profile, cluster, redis_url, settings
):
    settings.REDIS_URL = redis_url
    make_pod(sandbox, "shop-web-1")
    sandbox.wait_until(
        lambda: sandbox.pod("shop-web-1").status.phase == "Running", timeout=30, what="Running"
    )
    cw = ClusterWatch(cluster, {(sandbox.namespace, "shop"): profile.pk})
    stream = cw.pods
    stream.resource_version = "1"  # long compacted away: the API answers 410 Gone
    core = client.CoreV1Api(sandbox.api)
    with pytest.raises(ApiException) as gone:
        stream.watch(core)
    assert gone.value.status == 410

    stream.resource_version = "1"
    cw.start()
    try:
        sandbox.wait_until(lambda: row(sandbox, "shop-web-1"), timeout=30, what="the relisted row")
        # rows are written before the list counts as done: wait on the counter itself
        sandbox.wait_until(lambda: stream.lists >= 1, timeout=30, what="the list to finish")
        assert stream.lists == 1
        assert int(stream.resource_version) > 1
    finally:
        cw.stop()
        cw.join(10)
    assert not stream.is_alive()


def test_it_retries_an_unreachable_cluster_with_backoff_until_it_answers(
    sandbox, profile, cluster, watcher, unreachable_kubeconfig, caplog
):
    caplog.set_level(logging.INFO, logger="deployments.watcher")
    path = unreachable_kubeconfig.with_name("kubeconfig")
    unreachable = unreachable_kubeconfig
    shutil.copyfile(unreachable, path)
    Cluster.objects.filter(pk=cluster.pk).update(kubeconfig_path=str(path))
    make_pod(sandbox, "shop-web-1")
    w = watcher()

    def retries():
        return [
            r.getMessage()
            for r in caplog.records
            if r.name == "deployments.watcher" and "pods watch" in r.getMessage()
        ]

    sandbox.wait_until(lambda: len(retries()) >= 3, timeout=30, what="three retries")
    delays = [float(m.split("reconnecting in ")[1].split("s")[0]) for m in retries()[:3]]
    assert "unreachable" in retries()[0] or "Connection" in retries()[0], retries()[0]
    assert delays[0] <= 0.5 and delays[2] >= 1.0  # 0.25-0.5, 0.5-1, 1-2
    assert "(attempt 3)" in retries()[2]
    assert not PodState.objects.exists()

    shutil.copyfile(sandbox.kubeconfig, path)  # the cluster answers again: same file, fixed
    sandbox.wait_until(
        lambda: row(sandbox, "shop-web-1", ready=True), timeout=40, what="a row after recovery"
    )

    # a watch that was running loses its cluster: it backs off, then resumes where it was
    stream = w.clusters[cluster.pk].pods
    # the row is written inside the list, before the list counts as done
    sandbox.wait_until(lambda: stream.lists >= 1, timeout=30, what="the list to finish")
    assert stream.lists == 1
    caplog.clear()
    shutil.copyfile(unreachable, path)
    stream.interrupt()  # the open connection would otherwise last until the server ends it
    sandbox.wait_until(lambda: len(retries()) >= 3, timeout=30, what="retries of the resume")
    attempts = [int(m.split("(attempt ")[1].rstrip(")")) for m in retries()]
    assert attempts[:3] == [1, 2, 3], retries()
    make_pod(sandbox, "shop-web-2")  # created while the watcher cannot see the cluster
    shutil.copyfile(sandbox.kubeconfig, path)
    sandbox.wait_until(
        lambda: row(sandbox, "shop-web-2", ready=True), timeout=40, what="the pod made meanwhile"
    )
    assert stream.lists == 1  # resumed from its resourceVersion: no relist was needed


def test_it_runs_as_a_command_that_stops_on_sigterm(
    sandbox, profile, child_env, tmp_path, subscribe
):
    heartbeat = tmp_path / "watcher.heartbeat"
    env = {**child_env, "HELMDECK_WATCHER_HEARTBEAT_FILE": str(heartbeat)}
    messages = subscribe(profile)
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "watch_cluster", "--refresh", "0.5"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        sandbox.wait_until(heartbeat.exists, timeout=30, what="the heartbeat file")
        check = subprocess.run(
            [sys.executable, "manage.py", "watch_cluster", "--check"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert check.returncode == 0, check.stderr
        assert "watcher alive" in check.stdout

        make_pod(sandbox, "shop-web-1")
        sandbox.wait_until(
            lambda: row(sandbox, "shop-web-1", ready=True), timeout=30, what="the process's row"
        )
        sandbox.wait_until(
            lambda: any(m["data"]["name"] == "shop-web-1" for m in messages()),
            timeout=10,
            what="the process's publish",
        )
        print(f"row from the process {time.monotonic() - started:.1f}s after it started")
    finally:
        proc.send_signal(signal.SIGTERM)
        stopping = time.monotonic()
        try:
            output, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, output
    assert time.monotonic() - stopping < 10
    assert "stopped" in output
    assert not heartbeat.exists()
    failed = subprocess.run(
        [sys.executable, "manage.py", "watch_cluster", "--check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert failed.returncode == 1


def test_it_shows_the_pods_of_a_real_helm_deploy_by_component(deployable, sandbox, watcher):
    from deployments.models import Component, Release
    from deployments.services.releases import release_request, release_run

    # NodePorts are cluster-wide and the sandbox is shared: keep this deploy's off them
    Component.objects.filter(profile=deployable).update(service_type="ClusterIP", node_port=None)
    watcher()
    release = release_run(release_request(profile=deployable, actor=None, build=False).pk)
    assert release.status == Release.Status.SUCCEEDED, release.reason

    def both_ready():
        rows = PodState.objects.filter(profile=deployable, deleted=False, ready=True)
        return {r.component: r for r in rows} if rows.count() == 2 else None

    rows = sandbox.wait_until(both_ready, timeout=30, what="Ready rows of both components")
    assert set(rows) == {"frontend", "backend"}
    assert rows["backend"].image == "todo-backend:1.0.0"
    assert all(r.namespace == sandbox.namespace and r.phase == "Running" for r in rows.values())
    assert all(r.ready_label == "1/1" for r in rows.values())


def test_it_restarts_a_clusters_watch_when_its_kubeconfig_changes(
    sandbox, profile, cluster, watcher, unreachable_kubeconfig
):
    Cluster.objects.filter(pk=cluster.pk).update(kubeconfig_path=str(unreachable_kubeconfig))
    make_pod(sandbox, "shop-web-1")
    w = watcher()
    first = sandbox.wait_until(lambda: w.clusters.get(cluster.pk), timeout=10, what="a watch")
    Cluster.objects.filter(pk=cluster.pk).update(kubeconfig_path=str(sandbox.kubeconfig))
    sandbox.wait_until(lambda: row(sandbox, "shop-web-1", ready=True), timeout=30, what="row")
    assert w.clusters[cluster.pk] is not first
    assert first.stopped.is_set()
    first.join(10)
    assert not any(stream.is_alive() for stream in first.streams)
