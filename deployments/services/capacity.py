"""What a profile's namespace can use of a cluster: the nodes its pods may land on, their
allocatable cpu and memory, and what pods already bound there request.

Where a pod may run is decided by the node (cordoned, NoSchedule/NoExecute taints, labels)
and by the pod (tolerations, node selector). The chart gives its pods neither
(charts/app), so a profile's pods carry what their namespace gives them through the
standard admission plugins: PodNodeSelector (annotation
`scheduler.alpha.kubernetes.io/node-selector`, "k=v,k2=v2") and PodTolerationRestriction
(`scheduler.alpha.kubernetes.io/defaultTolerations`, a JSON list of tolerations). A
namespace that does not exist yet has neither. Cluster-wide defaults configured in the
apiserver's admission configuration are not visible through the API and are not applied.

The eligible nodes are summed: there is no per-node bin packing, so a profile can "fit"
in the sum and still leave a pod Pending when no single node has room for it. Minikube,
the cluster Helmdeck is made for, has one node, where the sum is exact.
"""

import json
from dataclasses import dataclass

from deployments.integrations.kube import INSTANCE_LABEL, Resources
from deployments.validators import parse_quantity

NODE_SELECTOR = "scheduler.alpha.kubernetes.io/node-selector"
DEFAULT_TOLERATIONS = "scheduler.alpha.kubernetes.io/defaultTolerations"
FILTERING_EFFECTS = ("NoSchedule", "NoExecute")  # PreferNoSchedule only ranks nodes


@dataclass(frozen=True)
class Placement:
    """What a namespace's admission annotations add to each pod created in it."""

    node_selector: dict
    tolerations: list

    @classmethod
    def of(cls, namespace):
        """From a Namespace object (None: not created yet, so nothing is added)."""
        annotations = (namespace and namespace.metadata.annotations) or {}
        return cls(
            _node_selector(annotations.get(NODE_SELECTOR, "")),
            _tolerations(annotations.get(DEFAULT_TOLERATIONS, "")),
        )


def _node_selector(text):
    """The selector "k=v,k2=v2" as PodNodeSelector reads it (labels.ConvertSelectorToLabelsMap)."""
    selector = {}
    for pair in text.split(","):
        key, sep, value = pair.partition("=")
        if sep and key.strip():
            selector[key.strip()] = value.strip()
    return selector


def _tolerations(text):
    try:
        tolerations = json.loads(text) if text.strip() else []
    except ValueError:
        return []
    return [t for t in tolerations if isinstance(t, dict)] if isinstance(tolerations, list) else []


def tolerates(toleration, taint):
    """Kubernetes' Toleration.ToleratesTaint: an empty effect or key (with Exists) matches all."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    return operator == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


def node_accepts(node, placement):
    """Would the scheduler put a pod with this placement on the node (resources aside)?
    Nodes and pods here are the API's JSON (Kube.nodes, Kube.active_pods)."""
    spec = node.get("spec") or {}
    if spec.get("unschedulable"):
        return False
    labels = node["metadata"].get("labels") or {}
    if any(labels.get(key) != value for key, value in placement.node_selector.items()):
        return False
    return all(
        any(tolerates(t, taint) for t in placement.tolerations)
        for taint in spec.get("taints") or []
        if taint.get("effect") in FILTERING_EFFECTS
    )


def _resources(mapping):
    mapping = mapping or {}
    return Resources(
        parse_quantity(mapping.get("cpu", "0")), parse_quantity(mapping.get("memory", "0"))
    )


def node_allocatable(node):
    return _resources((node.get("status") or {}).get("allocatable"))


def node_capacity(node):
    """What the node was started with (Minikube's --cpus/--memory)."""
    return _resources((node.get("status") or {}).get("capacity"))


def pod_requests(pod):
    total = Resources()
    for container in pod["spec"].get("containers") or []:
        total += _resources((container.get("resources") or {}).get("requests"))
    return total


@dataclass(frozen=True)
class NamespaceCapacity:
    total: Resources  # allocatable of the eligible nodes
    used: Resources  # requests of pods bound to them (not terminating)
    nodes: list  # names of the eligible nodes
    of_nodes: int  # nodes in the cluster


def namespace_capacity(*, kube, namespace, exclude_release=None):
    """The eligible nodes' allocatable and what other pods bound to them request; the
    release's own pods in `namespace` are left out, since an upgrade replaces them, and so
    are pods already terminating."""
    placement = Placement.of(kube.namespace(namespace))
    nodes = kube.nodes()
    eligible = [n for n in nodes if node_accepts(n, placement)]
    names = {n["metadata"]["name"] for n in eligible}
    total = Resources()
    for node in eligible:
        total += node_allocatable(node)
    used = Resources()
    for pod in kube.active_pods():
        if pod["spec"].get("nodeName") not in names:
            continue
        # A terminating pod (deletionTimestamp set) holds its requests only until its grace
        # period ends; the scheduler places the new pods then. Counting it refused a deploy
        # right after an uninstall whose pods were still stopping.
        meta = pod["metadata"]
        if meta.get("deletionTimestamp") is not None:
            continue
        labels = meta.get("labels") or {}
        if (
            exclude_release
            and meta.get("namespace") == namespace
            and labels.get(INSTANCE_LABEL) == exclude_release
        ):
            continue
        used += pod_requests(pod)
    return NamespaceCapacity(total, used, sorted(names), len(nodes))
