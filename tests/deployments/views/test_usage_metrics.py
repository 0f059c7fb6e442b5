"""Resource usage from a REAL metrics-server: a private kwok cluster of this session runs
metrics-server (kwokctl --enable metrics-server), which scrapes kwok's emulated kubelet
resource metrics; kwok's ClusterResourceUsage takes each pod's usage from its
annotations. The page shows the numbers `kubectl top pods` shows, against the profile's
requests and limits, and flags the pod near its memory limit."""

import pytest
from django.core.cache import cache
from kubernetes import client

from deployments.models import Cluster
from deployments.services.usage import profile_usage
from tests.factories import ComponentFactory, ProfileFactory
from tests.fixtures.infra import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def make_pod(private_cluster, namespace, name, *, cpu, memory):
    body = client.V1Pod(
        metadata=client.V1ObjectMeta(
            name=name,
            labels={"app.kubernetes.io/instance": "shop", "app.kubernetes.io/component": "web"},
            annotations={"kwok.x-k8s.io/usage-cpu": cpu, "kwok.x-k8s.io/usage-memory": memory},
        ),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(
                    name="web",
                    image="shop-web:1.0.0",
                    resources=client.V1ResourceRequirements(
                        requests={"cpu": "500m", "memory": "512Mi"},
                        limits={"cpu": "500m", "memory": "512Mi"},
                    ),
                )
            ],
            termination_grace_period_seconds=0,
        ),
    )
    private_cluster.core.create_namespaced_pod(namespace, body)


def top_pods(private_cluster, namespace):
    """{pod: (cpu, memory)} as `kubectl top pods` prints them."""
    out = private_cluster.kubectl("top", "pods", "-n", namespace, "--no-headers")
    return {line.split()[0]: tuple(line.split()[1:3]) for line in out.splitlines() if line}


def test_it_shows_real_metrics_server_numbers_against_requests_and_limits(
    private_cluster, login, settings
):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    namespace = private_cluster.create_namespace("usage")
    cluster = Cluster.objects.create(
        name=f"private-{private_cluster.name}", kubeconfig_path=str(private_cluster.kubeconfig)
    )
    profile = ProfileFactory(name="shop", namespace=namespace, cluster=cluster)
    ComponentFactory(
        profile=profile,
        name="web",
        cpu_request="500m",
        cpu_limit="500m",
        memory_request="512Mi",
        memory_limit="512Mi",
    )
    make_pod(private_cluster, namespace, "shop-web-1", cpu="250m", memory="480Mi")
    make_pod(private_cluster, namespace, "shop-web-2", cpu="100m", memory="128Mi")

    def sampled():
        found = profile_usage(profile=profile, use_cache=False)
        assert not found.unavailable, found.unavailable
        return found if len(found.rows) == 2 else None

    # metrics-server reports a pod after two scrapes (15s apart in kwokctl's set-up)
    try:
        found = wait_until(sampled, timeout=180, interval=2, what="samples of 2 pods")
    except TimeoutError as error:
        raise AssertionError(f"{error}\n{private_cluster.metrics_report()}") from error
    rows = {row.pod: row for row in found.rows}
    hot, calm = rows["shop-web-1"], rows["shop-web-2"]
    assert (hot.component, hot.container) == ("web", "web")
    assert hot.memory.used_text == "480Mi" and hot.memory.percent == 94
    assert hot.memory.limit_text == "512Mi" and hot.oom_risk
    assert 248 <= hot.cpu.used * 1000 <= 252 and hot.cpu.percent == 50  # a counter's rate
    assert calm.memory.used_text == "128Mi" and calm.memory.percent == 25 and not calm.oom_risk
    assert found.window and found.sampled_at

    # the same numbers as kubectl top pods (memory exactly; CPU is a rate, within 2m)
    top = top_pods(private_cluster, namespace)
    assert top["shop-web-1"][1] == "480Mi" and top["shop-web-2"][1] == "128Mi"
    assert abs(int(top["shop-web-1"][0].rstrip("m")) - 250) <= 2

    cache.clear()  # the page asks the cluster itself
    body = (
        login("viewer")
        .get("/profiles/shop/usage/", headers={"HX-Request": "true"})
        .content.decode()
    )
    row = body[body.index('id="usage-shop-web-1-web"') :]
    row = row[: row.index("</tr>")]
    assert "480Mi</span> / 512Mi / 512Mi" in row and "94%" in row and "usage-oom-risk" in row
    assert "/ 500m / 500m" in row and "50%" in row
    assert "OOM risk: memory is at 94% of its 512Mi limit" in body
    assert f"kubectl top pods -n {namespace}" in body
    calm_row = body[body.index('id="usage-shop-web-2-web"') :]
    assert "128Mi</span> / 512Mi / 512Mi" in calm_row[: calm_row.index("</tr>")]
    assert body.count("OOM risk") == 1
    assert "metrics unavailable" not in body
