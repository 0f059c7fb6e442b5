"""The log viewer against a real container on the sandbox's node: it follows what the
process writes (the kubelet's own readiness probes make it write a line a second), resumes
after Last-Event-ID without repeating a line, and shows the previous container's output
after a real restart."""

import pytest
from kubernetes import client

from deployments.models import Cluster
from tests.deployments.views.test_logs_sandbox import lines_of, read_stream, wait_for_cleanup
from tests.factories import ComponentFactory, ProfileFactory
from tests.fixtures.infra import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def shop(real_node):
    cluster = Cluster.objects.create(
        name=f"real-{real_node.namespace[-6:]}",
        kubeconfig_path=str(real_node.kubeconfig),
        minikube_profile="",
    )
    profile = ProfileFactory(name="shop", namespace=real_node.namespace, cluster=cluster)
    ComponentFactory(profile=profile, name="web")
    return profile


def probe_pod(ns, name, image, **env):
    container = client.V1Container(
        name="web",
        image=image,
        image_pull_policy="Never",
        env=[client.V1EnvVar(name=k, value=v) for k, v in env.items()],
        ports=[client.V1ContainerPort(container_port=8080, name="http")],
        readiness_probe=client.V1Probe(
            http_get=client.V1HTTPGetAction(path="/ready", port="http"), period_seconds=1
        ),
        resources=client.V1ResourceRequirements(
            requests={"cpu": "20m", "memory": "48Mi"}, limits={"cpu": "100m", "memory": "48Mi"}
        ),
    )
    labels = {"app.kubernetes.io/instance": "shop", "app.kubernetes.io/component": "web"}
    ns.core.create_namespaced_pod(
        ns.namespace,
        client.V1Pod(
            metadata=client.V1ObjectMeta(name=name, labels=labels),
            spec=client.V1PodSpec(containers=[container], termination_grace_period_seconds=1),
        ),
    )
    return name


def test_it_follows_a_real_containers_output_and_resumes_without_repeats(
    real_node, shop, probe_image, viewer_client, follow_streams
):
    pod = probe_pod(real_node, "shop-web-1", probe_image, GREETING="real-logs")
    real_node.wait_until(
        lambda: real_node.pod(pod).status.phase == "Running", timeout=60, what="Running"
    )
    url = f"/profiles/shop/logs/stream/?pod={pod}"

    def probes_seen(count):
        return lambda m: [t for _, t in lines_of(m)].count("request /ready") >= count

    first = read_stream(viewer_client, url, probes_seen(3))
    texts = [text for _, text in lines_of(first)]
    assert texts[0] == "probe starting: real-logs"
    assert set(texts[1:]) == {"request /ready"}  # written live by the kubelet's probes
    wait_for_cleanup(follow_streams)

    token = [event_id for event, event_id, _ in first if event == "line"][-1]
    seen = {event_id for event, event_id, _ in first if event == "line"}
    again = read_stream(viewer_client, url, probes_seen(2), headers={"Last-Event-ID": token})
    resumed = [event_id for event, event_id, _ in again if event == "line"]
    assert resumed and not seen & set(resumed), "a line came twice after Last-Event-ID"
    assert "probe starting: real-logs" not in [t for _, t in lines_of(again)]
    wait_for_cleanup(follow_streams)


def test_the_previous_container_is_the_one_that_really_crashed(real_node, shop, probe_image, login):
    pod = probe_pod(
        real_node, "shop-web-crashed", probe_image, SAY="Traceback: boom", EXIT_CODE="1"
    )
    real_node.wait_until(
        lambda: (
            (s := real_node.pod(pod).status.container_statuses)
            and s[0].restart_count >= 1
            and s[0].last_state.terminated
        ),
        timeout=60,
        what="a real restart",
    )
    viewer = login("viewer")
    # the kubelet keeps the exited container's log once it has restarted it; under load the
    # API may answer for the previous container a moment after the restart shows
    body = wait_until(
        lambda: (
            ">Traceback: boom<"
            in (page := viewer.get(f"/profiles/shop/logs/?pod={pod}&previous=1").content.decode())
            and page
        ),
        timeout=30,
        what="the previous container's log on the page",
    )
    assert "previous container" in body
    download = viewer.get(f"/profiles/shop/logs/download/?pod={pod}&previous=1")
    assert download.content.decode().splitlines() == ["probe starting: hello", "Traceback: boom"]
