"""The watcher and the diagnosis against the kubelet itself (the sandbox's real node): a
container that exits, one that allocates past its memory limit, an image the node does not
have under pull policy Never, a failing readiness probe and requests no node can hold are
reported in the words `kubectl describe` uses, from what the kubelet really wrote."""

import pytest
from kubernetes import client

from deployments.models import Cluster
from deployments.services.diagnosis import FIXES, pod_state_problem
from tests.deployments.services.test_watcher_sandbox import row
from tests.factories import ProfileFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def profile(real_node):
    cluster = Cluster.objects.create(
        name=f"real-{real_node.namespace[-6:]}",
        kubeconfig_path=str(real_node.kubeconfig),
        minikube_profile="",
    )
    return ProfileFactory(name="shop", namespace=real_node.namespace, cluster=cluster)


def make_pod(ns, name, image, *, env=None, memory="48Mi", cpu="20m", readiness=False):
    container = client.V1Container(
        name="app",
        image=image,
        image_pull_policy="Never",
        env=[client.V1EnvVar(name=k, value=v) for k, v in (env or {}).items()],
        ports=[client.V1ContainerPort(container_port=8080, name="http")],
        readiness_probe=client.V1Probe(
            http_get=client.V1HTTPGetAction(path="/ready", port="http"), period_seconds=1
        )
        if readiness
        else None,
        resources=client.V1ResourceRequirements(
            requests={"cpu": cpu, "memory": memory}, limits={"cpu": cpu, "memory": memory}
        ),
    )
    body = client.V1Pod(
        metadata=client.V1ObjectMeta(
            name=name,
            labels={"app.kubernetes.io/instance": "shop", "app.kubernetes.io/component": "web"},
        ),
        spec=client.V1PodSpec(containers=[container], termination_grace_period_seconds=1),
    )
    ns.core.create_namespaced_pod(ns.namespace, body)


def test_it_reports_what_the_kubelet_reports(real_node, profile, watcher, probe_image):
    make_pod(
        real_node,
        "shop-crash",
        probe_image,
        env={"SAY": "KeyError: 'DATABASE_URL'", "EXIT_CODE": "1"},
    )
    make_pod(real_node, "shop-oom", probe_image, env={"ALLOCATE_MB": "300"}, memory="64Mi")
    make_pod(real_node, "shop-missing", "docker.io/helmdeck-test/not-on-the-node:1")
    make_pod(real_node, "shop-unready", probe_image, env={"NOT_READY": "1"}, readiness=True)
    make_pod(real_node, "shop-huge", probe_image, cpu="8")
    watcher()

    crash = real_node.wait_until(
        lambda: row(
            real_node,
            "shop-crash",
            reason="CrashLoopBackOff",
            exit_code=1,
            restarts=lambda n: n >= 1,
        ),
        timeout=60,
        what="CrashLoopBackOff with exit code 1",
    )
    assert (crash.phase, crash.ready) == ("Running", False)
    problem = pod_state_problem(crash)
    assert problem.kind == "crash" and "exit code 1" in problem.message
    assert problem.fix == FIXES["crash"]
    crash = real_node.wait_until(
        lambda: row(real_node, "shop-crash", last_log=lambda t: "KeyError" in t),
        timeout=30,
        what="the crashed container's own last lines on the row",
    )
    assert pod_state_problem(crash).log.splitlines()[-1] == "KeyError: 'DATABASE_URL'"
    real_node.wait_until(
        lambda: row(
            real_node,
            "shop-crash",
            last_event=lambda t: t.startswith("BackOff: Back-off restarting failed"),
        ),
        timeout=60,
        what="the kubelet's BackOff event on the row",
    )

    oom = real_node.wait_until(
        lambda: row(real_node, "shop-oom", reason="OOMKilled", exit_code=137),
        timeout=60,
        what="OOMKilled, exit code 137",
    )
    assert pod_state_problem(oom).kind == "oom"
    assert pod_state_problem(oom).fix == FIXES["oom"]

    missing = real_node.wait_until(
        lambda: row(real_node, "shop-missing", reason="ErrImageNeverPull"),
        timeout=60,
        what="ErrImageNeverPull",
    )
    assert missing.phase == "Pending"
    problem = pod_state_problem(missing)
    assert problem.kind == "image" and "not-on-the-node:1" in problem.message

    unready = real_node.wait_until(
        lambda: row(
            real_node,
            "shop-unready",
            phase="Running",
            last_event=lambda t: t.startswith("Unhealthy: Readiness probe failed"),
        ),
        timeout=60,
        what="the kubelet's failing readiness probe on the row",
    )
    assert "HTTP probe failed with statuscode: 503" in unready.last_event
    assert unready.ready_label == "0/1"
    assert pod_state_problem(unready).kind == "not-ready"

    huge = real_node.wait_until(
        lambda: row(real_node, "shop-huge", phase="Pending", reason="Unschedulable"),
        timeout=60,
        what="Pending, Unschedulable",
    )
    problem = pod_state_problem(huge)
    assert problem.kind == "pending" and "Insufficient cpu" in problem.message
