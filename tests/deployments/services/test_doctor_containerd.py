"""The doctor of a cluster whose images are loaded into the node's containerd: the real
dockerd and a private containerd (the cluster itself unreachable: not what is checked)."""

import pytest

from deployments.models import Cluster
from deployments.services.doctor import cluster_doctor

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def _results(cluster):
    return {r.name: r for r in cluster_doctor(cluster=cluster)}


@pytest.fixture
def kind_cluster(dockerd, unreachable_kubeconfig):
    return Cluster.objects.create(
        name="kind",
        kubeconfig_path=str(unreachable_kubeconfig),
        minikube_profile="minikube",  # left over: containerd delivery never asks minikube
        image_delivery=Cluster.CONTAINERD,
    )


def test_it_checks_the_nodes_containerd(kind_cluster, containerd, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")  # no minikube on it either way
    kind_cluster.containerd_address = containerd.address
    results = _results(kind_cluster)
    assert results["docker"].ok, results["docker"]
    assert "images are then loaded into the node's containerd" in results["docker"].detail
    assert results["containerd"].ok
    assert results["containerd"].detail.startswith("containerd 1.")
    assert f"at {containerd.address} (namespace k8s.io)" in results["containerd"].detail


def test_it_says_how_to_fix_an_unreachable_containerd(kind_cluster, tmp_path):
    kind_cluster.containerd_address = str(tmp_path / "containerd.sock")
    result = _results(kind_cluster)["containerd"]
    assert not result.ok
    assert result.detail.startswith(f"containerd at {kind_cluster.containerd_address} is")
    assert "HELMDECK_CTR" in result.fix


def test_it_has_no_containerd_check_for_the_clusters_docker(dockerd, unreachable_kubeconfig):
    cluster = Cluster.objects.create(
        name="mk",
        kubeconfig_path=str(unreachable_kubeconfig),
        minikube_profile="",
        docker_host=dockerd.base_url,
    )
    assert "containerd" not in _results(cluster)
