"""Resource usage of a real container: the sandbox's metrics-server reads the real node's
kubelet, and the usage section shows what the process really holds (it allocates 100 MiB
under a 128Mi limit), the same figure `kubectl top pods` prints, flagged near its limit."""

import pytest
from django.core.cache import cache
from kubernetes import client

from deployments.models import Cluster
from deployments.services.usage import profile_usage
from tests.factories import ComponentFactory, ProfileFactory
from tests.fixtures.infra import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db]
MiB = 1024 * 1024


def test_it_shows_what_a_real_container_uses(real_node, probe_image, login, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    cluster = Cluster.objects.create(
        name=f"real-{real_node.namespace[-6:]}", kubeconfig_path=str(real_node.kubeconfig)
    )
    profile = ProfileFactory(name="shop", namespace=real_node.namespace, cluster=cluster)
    ComponentFactory(
        profile=profile,
        name="web",
        cpu_request="50m",
        cpu_limit="200m",
        memory_request="128Mi",
        memory_limit="128Mi",
    )
    real_node.core.create_namespaced_pod(
        real_node.namespace,
        client.V1Pod(
            metadata=client.V1ObjectMeta(
                name="shop-web-1",
                labels={"app.kubernetes.io/instance": "shop", "app.kubernetes.io/component": "web"},
            ),
            spec=client.V1PodSpec(
                containers=[
                    client.V1Container(
                        name="web",
                        image=probe_image,
                        image_pull_policy="Never",
                        env=[client.V1EnvVar(name="ALLOCATE_MB", value="100")],
                        resources=client.V1ResourceRequirements(
                            requests={"cpu": "50m", "memory": "128Mi"},
                            limits={"cpu": "200m", "memory": "128Mi"},
                        ),
                    )
                ],
                termination_grace_period_seconds=1,
            ),
        ),
    )

    def sampled():
        found = profile_usage(profile=profile, use_cache=False)
        assert not found.unavailable, found.unavailable
        return found if found.rows else None

    # metrics-server has a new pod after two of its 15 s scrapes
    found = wait_until(sampled, timeout=180, interval=2, what="metrics-server's sample")
    row = found.rows[0]
    assert (row.pod, row.component, row.container) == ("shop-web-1", "web", "web")
    assert 100 * MiB <= row.memory.used <= 128 * MiB  # the process's own 100 MiB and Python
    assert row.memory.percent >= 78 and row.memory.limit_text == "128Mi"
    assert row.cpu.used >= 0

    top = real_node.kubectl("top", "pods", "--no-headers").split()
    assert top[0] == "shop-web-1" and top[2].endswith("Mi")
    # what kubectl top reads (a sample may have come in between: a few MiB either way)
    assert abs(int(top[2].removesuffix("Mi")) * MiB - row.memory.used) <= 4 * MiB

    cache.clear()
    body = login("viewer").get("/profiles/shop/usage/", headers={"HX-Request": "true"})
    html = body.content.decode()
    assert f"{row.memory.used_text}</span> / 128Mi / 128Mi" in html
    assert "metrics unavailable" not in html
