"""Which nodes a namespace's pods may use, and what is free there: unit tests with the API's
JSON (the client's model objects, serialized as the API sends them) standing in for what
the cluster returns."""

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from kubernetes import client

from benchmarks.cluster import SIMULATED_NODES
from deployments.integrations.kube import Resources
from deployments.services.capacity import (
    DEFAULT_TOLERATIONS,
    NODE_SELECTOR,
    Placement,
    namespace_capacity,
    node_accepts,
    tolerates,
)

GiB = Decimal(2**30)
SIMULATED_TAINT = {"key": "helmdeck.dev/simulated", "value": "true", "effect": "NoSchedule"}
_API = client.ApiClient()


def as_api(obj):
    """A model object as the API's JSON (camelCase keys, no nulls): what Kube's lists return."""
    return _API.sanitize_for_serialization(obj)


def node(name, *, cpu="4", memory="8Gi", labels=None, taints=None, unschedulable=None):
    return as_api(
        client.V1Node(
            metadata=client.V1ObjectMeta(name=name, labels=labels),
            spec=client.V1NodeSpec(taints=taints, unschedulable=unschedulable),
            status=client.V1NodeStatus(
                allocatable={"cpu": cpu, "memory": memory, "pods": "110"},
                capacity={"cpu": cpu, "memory": memory, "pods": "110"},
            ),
        )
    )


def namespace(annotations=None):
    return client.V1Namespace(metadata=client.V1ObjectMeta(name="ns", annotations=annotations))


def pod(
    name, node_name, *, namespace="other", cpu="500m", memory="512Mi", release=None, leaving=None
):
    labels = {"app.kubernetes.io/instance": release} if release else None
    return as_api(
        client.V1Pod(
            metadata=client.V1ObjectMeta(
                name=name, namespace=namespace, labels=labels, deletion_timestamp=leaving
            ),
            spec=client.V1PodSpec(
                node_name=node_name,
                containers=[
                    client.V1Container(
                        name="c",
                        resources=client.V1ResourceRequirements(
                            requests={"cpu": cpu, "memory": memory}
                        ),
                    )
                ],
            ),
        )
    )


REAL = node("real", cpu="2", memory="23Gi", labels={"type": "real"})
SIMULATED = node("sim", labels={"type": "kwok"}, taints=[SIMULATED_TAINT])


def test_a_plain_namespace_uses_the_untainted_nodes_only():
    placement = Placement.of(namespace())
    assert node_accepts(REAL, placement)
    assert not node_accepts(SIMULATED, placement)


def test_a_namespace_that_does_not_exist_yet_adds_nothing():
    assert Placement.of(None) == Placement({}, [])


def test_the_sandboxs_simulated_namespace_uses_the_simulated_nodes_only():
    placement = Placement.of(namespace(SIMULATED_NODES))
    assert placement.node_selector == {"type": "kwok"}
    assert not node_accepts(REAL, placement)  # its label does not match
    assert node_accepts(SIMULATED, placement)  # its taint is tolerated


def test_a_toleration_alone_admits_tainted_nodes_without_excluding_others():
    placement = Placement.of(namespace({DEFAULT_TOLERATIONS: SIMULATED_NODES[DEFAULT_TOLERATIONS]}))
    assert node_accepts(REAL, placement) and node_accepts(SIMULATED, placement)


def test_a_node_selector_needs_every_pair_to_match():
    placement = Placement.of(namespace({NODE_SELECTOR: " type = real , zone=a"}))
    assert placement.node_selector == {"type": "real", "zone": "a"}
    assert not node_accepts(REAL, placement)
    assert node_accepts(node("a", labels={"type": "real", "zone": "a", "x": "y"}), placement)


def test_a_cordoned_node_takes_nothing():
    assert not node_accepts(node("n", unschedulable=True), Placement.of(namespace()))


@pytest.mark.parametrize(
    ("effect", "accepted"),
    [("NoSchedule", False), ("NoExecute", False), ("PreferNoSchedule", True)],
)
def test_only_taints_that_filter_keep_pods_off(effect, accepted):
    tainted = node("n", taints=[{"key": "k", "value": "v", "effect": effect}])
    assert node_accepts(tainted, Placement.of(namespace())) is accepted


@pytest.mark.parametrize(
    ("toleration", "expected"),
    [
        ({"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"}, True),
        ({"key": "k", "value": "v"}, True),  # Equal by default; any effect
        ({"key": "k", "value": "w"}, False),
        ({"key": "k", "operator": "Exists"}, True),
        ({"operator": "Exists"}, True),  # an empty key with Exists tolerates everything
        ({"key": "other", "operator": "Exists"}, False),
        ({"key": "k", "operator": "Exists", "effect": "NoExecute"}, False),
    ],
)
def test_it_matches_tolerations_as_kubernetes_does(toleration, expected):
    taint = {"key": "k", "value": "v", "effect": "NoSchedule"}
    assert tolerates(toleration, taint) is expected


def test_every_filtering_taint_must_be_tolerated():
    both = node(
        "n",
        taints=[SIMULATED_TAINT, {"key": "gpu", "value": "yes", "effect": "NoExecute"}],
    )
    placement = Placement.of(namespace(SIMULATED_NODES))
    assert not node_accepts(both, placement)


def test_malformed_annotations_add_nothing():
    placement = Placement.of(namespace({NODE_SELECTOR: "nonsense", DEFAULT_TOLERATIONS: "[{"}))
    assert placement == Placement({}, [])


class FakeKube:
    def __init__(self, *, namespaces, nodes, pods):
        self._namespaces, self._nodes, self._pods = namespaces, nodes, pods

    def namespace(self, name):
        return self._namespaces.get(name)

    def nodes(self):
        return self._nodes

    def active_pods(self):
        return self._pods


def test_it_sums_the_eligible_nodes_and_what_pods_bound_there_request():
    second = node("sim-2", cpu="2", memory="4Gi", labels={"type": "kwok"}, taints=[SIMULATED_TAINT])
    kube = FakeKube(
        namespaces={"shop": namespace(SIMULATED_NODES)},
        nodes=[REAL, SIMULATED, second],
        pods=[
            pod("on-real", "real", cpu="1500m", memory="20Gi"),  # not on a node shop can use
            pod("on-sim", "sim", cpu="1", memory="1Gi"),
            pod("on-sim-2", "sim-2", cpu="250m", memory="256Mi"),
            pod("pending", None, cpu="3", memory="3Gi"),  # not bound: holds nothing yet
            pod("mine", "sim", namespace="shop", cpu="2", memory="2Gi", release="shop"),
            pod("same-name", "sim", cpu="500m", memory="512Mi", release="shop"),
            # terminating (an uninstall's pods stopping): frees its requests in seconds
            pod("leaving", "sim", cpu="2", memory="2Gi", leaving=datetime.now(UTC)),
        ],
    )
    found = namespace_capacity(kube=kube, namespace="shop", exclude_release="shop")
    assert found.nodes == ["sim", "sim-2"] and found.of_nodes == 3
    assert found.total == Resources(Decimal(6), 12 * GiB)
    # this release's own pod is left out; a same-named release elsewhere is not
    assert found.used == Resources(Decimal("1.75"), Decimal("1.75") * GiB)


def test_a_namespace_not_created_yet_gets_the_untainted_nodes():
    kube = FakeKube(namespaces={}, nodes=[REAL, SIMULATED], pods=[pod("p", "sim")])
    found = namespace_capacity(kube=kube, namespace="new")
    assert found.nodes == ["real"]
    assert found.total == Resources(Decimal(2), 23 * GiB) and found.used == Resources()


def test_the_eligibility_rule_reads_the_annotations_as_json():
    text = json.dumps([{"key": "dedicated", "operator": "Equal", "value": "team-a"}])
    placement = Placement.of(namespace({DEFAULT_TOLERATIONS: text}))
    dedicated = {"key": "dedicated", "value": "team-a", "effect": "NoExecute"}
    assert node_accepts(node("n", taints=[dedicated]), placement)
