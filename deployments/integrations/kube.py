"""A thin adapter over the Kubernetes API (the official `kubernetes` client).

A Cluster with no kubeconfig of its own uses $KUBECONFIG and its current context, as
kubectl does. Every call has a timeout; failures become IntegrationError, transient
(permanent=False) when the API could not be reached.
"""

import os
from dataclasses import dataclass
from decimal import Decimal

import urllib3
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.config.config_exception import ConfigException

from deployments.integrations import IntegrationError
from deployments.validators import parse_quantity

TIMEOUT = (3, 10)  # connect, read seconds


class KubeError(IntegrationError):
    pass


def kubeconfig_path(cluster):
    return (
        cluster.kubeconfig_path
        or os.environ.get("KUBECONFIG", "")
        or os.path.expanduser("~/.kube/config")
    )


def api_client(cluster):
    try:
        return config.new_client_from_config(
            config_file=kubeconfig_path(cluster), context=cluster.kube_context or None
        )
    except (ConfigException, OSError, TypeError) as exc:
        raise KubeError(
            f"cannot load kubeconfig {kubeconfig_path(cluster)}: {exc}", permanent=True
        ) from None


def _call(what, fn, *args, **kwargs):
    try:
        return fn(*args, _request_timeout=TIMEOUT, **kwargs)
    except ApiException as exc:
        raise KubeError(
            f"{what}: the API answered {exc.status} {exc.reason}",
            permanent=exc.status in (400, 401, 403, 404, 422),
        ) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise KubeError(
            f"{what}: the cluster is unreachable ({type(exc).__name__})", permanent=False
        ) from None


@dataclass
class Resources:
    cpu: Decimal = Decimal(0)
    memory: Decimal = Decimal(0)

    def __add__(self, other):
        return Resources(self.cpu + other.cpu, self.memory + other.memory)

    def __sub__(self, other):
        return Resources(self.cpu - other.cpu, self.memory - other.memory)


class Kube:
    def __init__(self, cluster):
        self.cluster = cluster
        self._api = api_client(cluster)
        self.core = client.CoreV1Api(self._api)

    def close(self):
        self._api.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def server_version(self):
        info = _call("reading the server version", client.VersionApi(self._api).get_code)
        return info.git_version

    def capacity(self):
        """Sum of nodes' capacity (what Minikube was started with), and the node count."""
        nodes = _call("listing nodes", self.core.list_node).items
        total = Resources()
        for node in nodes:
            cap = node.status.capacity or {}
            total += Resources(
                parse_quantity(cap.get("cpu", "0")), parse_quantity(cap.get("memory", "0"))
            )
        return total, len(nodes)

    def deployment_available(self, namespace, name):
        """True when the Deployment exists and has an available replica; False if absent."""
        apps = client.AppsV1Api(self._api)
        try:
            deployment = apps.read_namespaced_deployment(name, namespace, _request_timeout=TIMEOUT)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise KubeError(
                f"reading deployment {namespace}/{name}: the API answered "
                f"{exc.status} {exc.reason}",
                permanent=False,
            ) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeError(
                f"reading deployment {namespace}/{name}: the cluster is unreachable "
                f"({type(exc).__name__})",
                permanent=False,
            ) from None
        return bool(deployment.status.available_replicas)

    def allocatable(self):
        """Sum of schedulable nodes' allocatable cpu and memory."""
        nodes = _call("listing nodes", self.core.list_node).items
        total = Resources()
        for node in nodes:
            if node.spec.unschedulable:
                continue
            alloc = node.status.allocatable or {}
            total += Resources(
                parse_quantity(alloc.get("cpu", "0")), parse_quantity(alloc.get("memory", "0"))
            )
        return total

    def requested(self, *, exclude_release=None):
        """Sum of requests of pods that hold resources (not finished), minus one release's."""
        pods = _call(
            "listing pods",
            self.core.list_pod_for_all_namespaces,
            field_selector="status.phase!=Succeeded,status.phase!=Failed",
        ).items
        total = Resources()
        for pod in pods:
            labels = pod.metadata.labels or {}
            if exclude_release and labels.get("app.kubernetes.io/instance") == exclude_release:
                continue
            for container in pod.spec.containers:
                requests = (container.resources and container.resources.requests) or {}
                total += Resources(
                    parse_quantity(requests.get("cpu", "0")),
                    parse_quantity(requests.get("memory", "0")),
                )
        return total

    def node_ports(self):
        """{nodePort: "namespace/service"} for every NodePort in the cluster."""
        services = _call("listing services", self.core.list_service_for_all_namespaces).items
        return {
            port.node_port: f"{svc.metadata.namespace}/{svc.metadata.name}"
            for svc in services
            for port in (svc.spec.ports or [])
            if port.node_port
        }

    def release_pods(self, namespace, release):
        return _call(
            "listing pods",
            self.core.list_namespaced_pod,
            namespace,
            label_selector=f"app.kubernetes.io/instance={release}",
        ).items

    def events(self, namespace):
        return _call("listing events", self.core.list_namespaced_event, namespace).items

    def release_deployments(self, namespace, release):
        apps = client.AppsV1Api(self._api)
        return _call(
            "listing deployments",
            apps.list_namespaced_deployment,
            namespace,
            label_selector=f"app.kubernetes.io/instance={release}",
        ).items
