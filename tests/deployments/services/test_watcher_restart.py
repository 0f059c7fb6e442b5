"""The watcher against an apiserver that goes away and comes back, and against a
resourceVersion that is gone (410): it reconnects with backoff and misses no state change.

These run on a private kwok cluster of this session (tests/fixtures/infra.py
`private_cluster`): stopping the shared sandbox's apiserver would break every other test
running beside this one. Only that cluster's kube-apiserver is stopped; its etcd, kwok
and scheduler go on, as when a Minikube apiserver restarts.
"""

import logging
import re
import signal
import time
from types import SimpleNamespace

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from deployments.models import Cluster, PodState
from deployments.services.cluster_watch import ClusterWatch
from tests.deployments.services.test_watcher_sandbox import make_pod as sandbox_pod
from tests.factories import ProfileFactory
from tests.fixtures.infra import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def namespace(private_cluster):
    name = private_cluster.create_namespace("watch")
    yield name
    private_cluster.core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture
def cluster(private_cluster):
    return Cluster.objects.create(
        name=f"private-{private_cluster.name}",
        kubeconfig_path=str(private_cluster.kubeconfig),
        minikube_profile="",
    )


@pytest.fixture
def profile(cluster, namespace):
    return ProfileFactory(name="shop", namespace=namespace, cluster=cluster)


def make_pod(private_cluster, namespace, name, *, component="web"):
    where = SimpleNamespace(core=private_cluster.core, namespace=namespace)
    sandbox_pod(where, name, component=component)


def relabel(private_cluster, namespace, name, component):
    private_cluster.core.patch_namespaced_pod(
        name, namespace, {"metadata": {"labels": {"app.kubernetes.io/component": component}}}
    )


def delete(private_cluster, namespace, name):
    private_cluster.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)


def row(namespace, name, **wanted):
    """The pod's row once its fields have the wanted values, else None."""
    found = PodState.objects.filter(namespace=namespace, name=name).first()
    if found is None or any(getattr(found, k) != v for k, v in wanted.items()):
        return None
    return found


def retries(caplog, kind="pods"):
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "deployments.watcher"
        and f"{kind} watch on cluster" in r.getMessage()
        and "reconnecting in" in r.getMessage()
    ]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["crashed", "stopped"])
def test_it_reconnects_after_an_apiserver_restart_and_misses_no_state_change(
    private_cluster, namespace, profile, cluster, watcher, caplog, sig
):
    caplog.set_level(logging.INFO, logger="deployments.watcher")
    make_pod(private_cluster, namespace, "shop-web-1")
    make_pod(private_cluster, namespace, "shop-web-2")
    make_pod(private_cluster, namespace, "shop-web-4")
    w = watcher()
    for name in ("shop-web-1", "shop-web-2", "shop-web-4"):
        wait_until(lambda n=name: row(namespace, n, ready=True), timeout=60, what=f"{name} Ready")
    pods = w.clusters[cluster.pk].pods
    lists_before = pods.lists

    private_cluster.stop_apiserver(sig)
    try:
        wait_until(lambda: len(retries(caplog)) >= 3, timeout=60, what="three reconnect attempts")
    finally:
        private_cluster.start()
    back = time.monotonic()
    attempts = [int(re.search(r"\(attempt (\d+)\)", m)[1]) for m in retries(caplog)]
    assert attempts[:3] == [1, 2, 3], retries(caplog)  # backing off, one attempt after another
    delays = [float(re.search(r"reconnecting in ([\d.]+)s", m)[1]) for m in retries(caplog)]
    assert delays[2] > delays[0], delays  # exponential
    # one readable line per attempt (urllib3's own text would repeat the whole URL)
    assert any("the cluster is unreachable (" in m for m in retries(caplog)), retries(caplog)
    assert all("Max retries exceeded" not in m for m in retries(caplog))

    # changes right after the apiserver is back (the watcher may still be backing off)
    delete(private_cluster, namespace, "shop-web-1")
    relabel(private_cluster, namespace, "shop-web-2", "api")
    make_pod(private_cluster, namespace, "shop-web-3")

    gone = wait_until(
        lambda: row(namespace, "shop-web-1", deleted=True), timeout=90, what="shop-web-1 deleted"
    )
    assert (gone.reason, gone.ready) == ("Deleted", False)
    wait_until(
        lambda: row(namespace, "shop-web-2", component="api", ready=True),
        timeout=30,
        what="shop-web-2 relabelled",
    )
    wait_until(lambda: row(namespace, "shop-web-3"), timeout=30, what="a row for shop-web-3")
    caught_up = time.monotonic() - back
    # a new pod is Ready once the scheduler and kwok (clients of the apiserver that
    # reconnect on their own schedule) have handled it
    wait_until(lambda: row(namespace, "shop-web-3", ready=True), timeout=60, what="shop-web-3")
    assert row(namespace, "shop-web-4", ready=True, deleted=False)
    reconnected = [
        r.getMessage()
        for r in caplog.records
        if r.getMessage().startswith(f"pods@{cluster.name}: the API answers again after")
    ]
    assert reconnected, "no reconnect logged for the pod watch"
    how = "relisted (410)" if pods.lists > lists_before else "resumed from its resourceVersion"
    print(
        f"apiserver {signal.Signals(sig).name}: the pod watch {how}; the 3 changes were rows "
        f"{caught_up:.1f}s after the apiserver answered, shop-web-3 Ready after "
        f"{time.monotonic() - back:.1f}s; {reconnected[0]}"
    )

    # and it watches on: a change after the recovery arrives through the watch
    lists_after = pods.lists
    delete(private_cluster, namespace, "shop-web-4")
    wait_until(
        lambda: row(namespace, "shop-web-4", deleted=True), timeout=30, what="shop-web-4 deleted"
    )
    assert pods.lists == lists_after
    assert pods.is_alive() and w.clusters[cluster.pk].pods is pods


def test_a_gone_resource_version_relists_and_misses_no_change(
    private_cluster, namespace, profile, cluster, redis_url, settings
):
    settings.REDIS_URL = redis_url
    make_pod(private_cluster, namespace, "shop-web-1")
    make_pod(private_cluster, namespace, "shop-web-2")
    wait_until(
        lambda: all(
            p.status.phase == "Running"
            for p in private_cluster.core.list_namespaced_pod(namespace).items
        ),
        timeout=60,
        what="both pods Running",
    )
    cw = ClusterWatch(cluster, {(namespace, "shop"): profile.pk})
    stream = cw.pods
    core = client.CoreV1Api(private_cluster.api)
    stream.relist(core)  # the rows, as a watcher that ran before would have left them
    assert row(namespace, "shop-web-1", deleted=False, component="web")
    assert row(namespace, "shop-web-2", deleted=False, component="web")

    # while the watcher was away: one pod deleted, one changed, one new
    delete(private_cluster, namespace, "shop-web-1")
    relabel(private_cluster, namespace, "shop-web-2", "api")
    make_pod(private_cluster, namespace, "shop-web-3")

    stream.resource_version = "1"  # long gone: the API answers 410
    with pytest.raises(ApiException) as gone:
        stream.watch(core)
    assert gone.value.status == 410

    stream.resource_version = "1"
    cw.start()
    try:
        wait_until(
            lambda: row(namespace, "shop-web-1", deleted=True), timeout=30, what="deleted pod"
        )
        wait_until(
            lambda: row(namespace, "shop-web-2", component="api"), timeout=30, what="relabel"
        )
        wait_until(lambda: row(namespace, "shop-web-3", deleted=False), timeout=30, what="new")
        assert stream.lists == 2  # the 410 caused exactly one relist
        assert int(stream.resource_version) > 1
    finally:
        cw.stop()
        cw.join(10)
    assert not stream.is_alive()
