"""The doctor and the capacity check against the real sandbox cluster and dockerd."""

import io

import pytest
from django.core.management import call_command

from deployments.integrations.helm import Helm
from deployments.integrations.kube import Kube, Resources
from deployments.models import Cluster
from deployments.services.checks import capacity_fit, format_cpu, format_memory, profile_checks
from deployments.services.profiles import parse_spec_of, profile_import
from deployments.services.values import (
    CHART_DIR,
    secrets_file,
    value_files,
    values_file,
    values_for,
)
from deployments.validators import parse_quantity

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture
def sandbox_cluster_row(sandbox, dockerd, db):
    return Cluster.objects.create(
        name="sandbox",
        kubeconfig_path=str(sandbox.kubeconfig),
        minikube_profile="",
        docker_host=dockerd.base_url,
    )


def doctor(*args):
    out = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("doctor", *args, stdout=out)
    return exited.value.code, out.getvalue()


def expected_size_line(sandbox):
    """The doctor's "cluster size" line, from the nodes the API lists: their count and
    total, and the largest node (a pod runs on one node) that has the research's size."""
    nodes = sandbox.core.list_node().items
    sizes = [
        (
            parse_quantity(n.status.capacity["cpu"]),
            parse_quantity(n.status.capacity["memory"]),
            n.metadata.name,
        )
        for n in nodes
    ]
    total_cpu, total_memory = sum(s[0] for s in sizes), sum(s[1] for s in sizes)
    seed_sized = [s for s in sizes if s[0] >= 4 and s[1] >= 7680 * 2**20]
    assert seed_sized, "the sandbox's simulated nodes have the research's size"
    cpu, memory, name = max(seed_sized)
    return (
        f"ok   cluster size: {len(nodes)} nodes, {format_cpu(total_cpu)} and "
        f"{format_memory(total_memory)} in all; the largest, {name}, has {format_cpu(cpu)} and "
        f"{format_memory(memory)}"
    )


def test_it_passes_what_is_there_and_prints_the_seed_fix_for_missing_addons(
    sandbox_cluster_row, sandbox, helm_bin, settings, no_metrics_api
):
    settings.HELMDECK_HELM = str(helm_bin)
    code, out = doctor("--cluster", "sandbox")
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("ok   docker: Docker ")
    assert "ok   helm: helm v4." in out
    assert "ok   kube context: reachable, Kubernetes v1." in out
    assert expected_size_line(sandbox) in lines
    assert (
        "FAIL metrics-server addon: no APIService v1beta1.metrics.k8s.io: "
        "the Metrics API is not installed"
    ) in lines
    assert "     fix: minikube addons enable metrics-server" in out
    assert "     fix: minikube addons enable ingress" in out
    assert lines[-1] == "5 passed, 2 failed"


def test_it_passes_the_addon_check_once_metrics_server_is_available(
    sandbox_cluster_row, sandbox, helm_bin, settings
):
    """The shared sandbox runs metrics-server as a host process: there is no Deployment,
    only the APIService that serves the Metrics API, which is what counts."""
    settings.HELMDECK_HELM = str(helm_bin)
    with Kube(sandbox_cluster_row) as kube:
        sandbox.wait_until(
            lambda: (kube.api_service("v1beta1.metrics.k8s.io") or [False])[0],
            timeout=120,
            what="the Metrics API Available",
        )
    code, out = doctor("--cluster", "sandbox")
    assert "ok   metrics-server addon: APIService v1beta1.metrics.k8s.io is Available" in out
    assert "FAIL ingress addon" in out
    assert code == 1


def test_it_fails_clearly_when_the_cluster_is_unreachable(db, unreachable_kubeconfig):
    kubeconfig = unreachable_kubeconfig
    Cluster.objects.create(
        name="gone",
        kubeconfig_path=str(kubeconfig),
        minikube_profile="",
        docker_host="unix:///nonexistent.sock",
    )
    code, out = doctor("--cluster", "gone")
    assert code == 1
    assert "FAIL docker: the Docker daemon is unreachable" in out
    assert "FAIL kube context: reading the server version: the cluster is unreachable" in out
    assert "fix: Start the cluster: minikube start --cpus=4 --memory=8192 --driver=docker" in out


def allocatable(nodes):
    total = Resources()
    for node in nodes:
        alloc = node.status.allocatable
        total += Resources(parse_quantity(alloc["cpu"]), parse_quantity(alloc["memory"]))
    return total


def test_it_counts_only_the_nodes_a_plain_namespace_can_use(sandbox_cluster_row, real_node):
    """A namespace without SIMULATED_NODES gets the untainted node(s): the real one."""
    spec = {"name": "plain", "namespace": real_node.namespace, "components": []}
    untainted = [
        n
        for n in real_node.core.list_node().items
        if not n.spec.unschedulable
        and not any(t.effect in ("NoSchedule", "NoExecute") for t in n.spec.taints or [])
    ]
    with Kube(sandbox_cluster_row) as kube:
        fit = capacity_fit(spec=spec, cluster=sandbox_cluster_row, kube=kube)
    assert fit.source == "cluster"
    assert fit.total == allocatable(untainted)
    assert "helmdeck-real" in {n.metadata.name for n in untainted}


# Alone (the serial pass): its Running pod holds 3 of the simulated node's 4 CPUs, and every
# deploy another test process started meanwhile was refused for capacity (two CI runs).
@pytest.mark.serial
def test_it_predicts_pending_pods_before_helm_leaves_them_pending(
    sandbox_cluster_row, sandbox, helm_bin
):
    profile = profile_import(
        data={
            "name": "too-big",
            "namespace": sandbox.namespace,
            "cluster": "sandbox",
            "components": {
                "api": {
                    "port": 8000,
                    "replicas": 2,
                    "resources": {"requests": {"cpu": "3", "memory": "1Gi"}},
                }
            },
        },
        actor=None,
    )
    spec = parse_spec_of(profile)
    with Kube(sandbox_cluster_row) as kube:
        fit = capacity_fit(spec=spec, cluster=sandbox_cluster_row, kube=kube)
        findings = profile_checks(
            spec=spec, cluster=sandbox_cluster_row, profile=profile, kube=kube
        )
    # only the simulated nodes take the namespace's pods (SIMULATED_NODES' node selector)
    simulated = sandbox.core.list_node(label_selector="type=kwok").items
    assert fit.source == "cluster"
    assert fit.total == allocatable(simulated)
    assert len(simulated) < len(sandbox.core.list_node().items)
    assert fit.scope.startswith(f"{len(simulated)} of ")
    assert not fit.fits
    assert [f.check for f in findings if f.level == "error"] == ["capacity"]

    with values_file(values_for(spec)) as path, secrets_file({}) as secrets:
        Helm(binary=helm_bin, kubeconfig=str(sandbox.kubeconfig)).upgrade_install(
            "too-big", sandbox.namespace, CHART_DIR, [*value_files(spec), path, secrets], wait=False
        )

    def one_running_one_pending_for_cpu():
        phases = sorted(p.status.phase for p in sandbox.pods("app.kubernetes.io/instance=too-big"))
        events = [e for e in sandbox.events() if e.reason == "FailedScheduling"]
        return phases == ["Pending", "Running"] and any(
            "Insufficient cpu" in (e.message or "") for e in events
        )

    sandbox.wait_until(
        one_running_one_pending_for_cpu,
        timeout=90,
        what="one pod Running and one Pending with Insufficient cpu",
    )


def test_the_deploy_checks_see_a_node_port_a_service_made_by_hand_holds(
    sandbox_cluster_row, sandbox
):
    """A NodePort Service made with kubectl (no profile holds the port): the checks read
    every Service of the cluster, as the API's JSON, and name it."""
    from kubernetes import client

    from deployments.services.checks import node_port_conflicts

    service = sandbox.core.create_namespaced_service(
        sandbox.namespace,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="by-hand"),
            spec=client.V1ServiceSpec(
                type="NodePort", selector={"app": "none"}, ports=[client.V1ServicePort(port=80)]
            ),
        ),
    )
    port = service.spec.ports[0].node_port  # the API's choice: free by definition
    spec = {
        "name": "wants-it",
        "namespace": f"{sandbox.namespace}-other",
        "components": [{"name": "web", "service": {"nodePort": port}}],
    }
    with Kube(sandbox_cluster_row) as kube:
        found = node_port_conflicts(spec=spec, cluster=sandbox_cluster_row, kube=kube)
        assert kube.node_ports()[port] == f"{sandbox.namespace}/by-hand"
    assert found == [(port, "web", f"service {sandbox.namespace}/by-hand")]
