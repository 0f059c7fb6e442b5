"""The doctor's cluster size and Metrics API checks against a fake Kube (the sandbox runs
them for real in test_doctor_sandbox.py)."""

import pytest

from deployments.integrations.kube import KubeError
from deployments.services.doctor import metrics_api_check, size_check
from tests.deployments.services.test_capacity import node


class FakeKube:
    def __init__(self, nodes=(), metrics=None, error=None):
        self._nodes, self._metrics, self._error = list(nodes), metrics, error

    def nodes(self):
        if self._error:
            raise self._error
        return self._nodes

    def api_service(self, name):
        assert name == "v1beta1.metrics.k8s.io"
        if self._error:
            raise self._error
        return self._metrics


def test_one_node_of_the_researchs_size_passes():
    result = size_check(FakeKube([node("minikube", cpu="4", memory="7935Mi")]))
    assert (result.ok, result.detail) == (True, "1 node, 4 CPU and 7.75Gi")


def test_one_smaller_node_fails_with_the_seeds_fix():
    result = size_check(FakeKube([node("minikube", cpu="2", memory="4Gi")]))
    assert not result.ok
    assert result.detail == "1 node, 2 CPU and 4Gi: below the research's 4 CPUs / 8 GB"
    assert result.fix == "minikube delete && minikube start --cpus=4 --memory=8192 --driver=docker"


def test_several_nodes_show_the_total_and_the_largest_node_that_has_the_size():
    nodes = [node("real", cpu="2", memory="23Gi"), node("sim", cpu="4", memory="8Gi")]
    result = size_check(FakeKube(nodes))
    assert result.ok
    assert result.detail == ("2 nodes, 6 CPU and 31Gi in all; the largest, sim, has 4 CPU and 8Gi")


def test_several_nodes_fail_when_none_has_the_size_even_if_the_total_does():
    nodes = [node("cpus", cpu="8", memory="2Gi"), node("memory", cpu="2", memory="16Gi")]
    result = size_check(FakeKube(nodes))
    assert not result.ok
    assert result.detail == (
        "2 nodes, 10 CPU and 18Gi in all; the largest, cpus, has 8 CPU and 2Gi: "
        "no node has the research's 4 CPUs / 8 GB (a pod runs on one node)"
    )


@pytest.mark.parametrize(
    ("kube", "ok", "detail"),
    [
        (
            FakeKube(metrics=(True, "Passed: all checks passed")),
            True,
            "APIService v1beta1.metrics.k8s.io is Available",
        ),
        (
            FakeKube(metrics=None),
            False,
            "no APIService v1beta1.metrics.k8s.io: the Metrics API is not installed",
        ),
        (
            FakeKube(metrics=(False, "MissingEndpoints: endpoints for service/metrics-server")),
            False,
            "APIService v1beta1.metrics.k8s.io is not Available "
            "(MissingEndpoints: endpoints for service/metrics-server)",
        ),
        (
            FakeKube(error=KubeError("reading APIService: the API answered 403", permanent=True)),
            False,
            "reading APIService: the API answered 403",
        ),
    ],
)
def test_the_metrics_check_is_the_apiservices_available_condition(kube, ok, detail):
    result = metrics_api_check(kube)
    assert (result.name, result.ok, result.detail) == ("metrics-server addon", ok, detail)
    assert result.fix == ("" if ok else "minikube addons enable metrics-server")
