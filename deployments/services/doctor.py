"""The environment doctor: is this machine ready to deploy? docker, helm, kubectl, the
kube context, the cluster's size and its addons.

Each check says what it found and, when it fails, the command or setting that fixes it.
"""

import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache

from deployments.integrations import IntegrationError
from deployments.integrations.containerd import server_version
from deployments.integrations.docker import daemon_info
from deployments.integrations.helm import Helm
from deployments.integrations.kube import Kube, Resources
from deployments.services.capacity import node_capacity
from deployments.services.checks import capacity_fit, format_cpu, format_memory
from deployments.services.worker_cache import cached_or_queued

SEED_CPUS = Decimal(4)
SEED_MEMORY = Decimal(7680 * 2**20)  # `--memory=8192` shows as a little under 8Gi in capacity
MINIKUBE_START = "minikube start --cpus=4 --memory=8192 --driver=docker"


@dataclass(frozen=True)
class Result:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def cluster_doctor(*, cluster, spec=None):
    results = [docker_check(cluster), *containerd_check(cluster), helm_check(), kubectl_check()]
    try:
        kube = Kube(cluster)
    except IntegrationError as exc:
        return [
            *results,
            Result(
                "kube context",
                False,
                str(exc),
                "Start the cluster (minikube start) or set KUBECONFIG / the "
                "Cluster's kubeconfig path and context in the admin.",
            ),
        ]
    with kube:
        try:
            version = kube.server_version()
        except IntegrationError as exc:
            return [
                *results,
                Result("kube context", False, str(exc), f"Start the cluster: {MINIKUBE_START}"),
            ]
        results.append(Result("kube context", True, f"reachable, Kubernetes {version}"))
        results.append(size_check(kube))
        if spec is not None:
            results.append(fits_check(spec, cluster, kube))
        results += addon_checks(kube)
    return results


def docker_check(cluster):
    try:
        name, version, env = daemon_info(cluster)
    except IntegrationError as exc:
        return Result(
            "docker",
            False,
            str(exc),
            "Start Docker, then point builds at Minikube: eval $(minikube docker-env)",
        )
    if cluster.docker_host:
        return Result("docker", True, f"Docker {version} at {cluster.docker_host} ({name})")
    if cluster.loads_into_containerd:
        return Result(
            "docker",
            True,
            f"Docker {version} ({name}) builds; images are then loaded into the node's containerd",
        )
    if cluster.minikube_profile and not env:
        return Result(
            "docker",
            False,
            f"Docker {version} is the local daemon, not Minikube's: minikube is not installed, "
            "so built images would be invisible to the cluster (ImagePullBackOff)",
            "Install minikube and run: eval $(minikube docker-env); or set the Cluster's "
            "Docker host in the admin",
        )
    return Result(
        "docker",
        True,
        f"Docker {version}, Minikube's daemon ({name})" if env else f"Docker {version} ({name})",
    )


def containerd_check(cluster):
    """When built images are loaded into the node's containerd: does it answer at the
    Cluster's socket? (Nothing to check for the cluster's Docker.)"""
    if not cluster.loads_into_containerd:
        return []
    address = cluster.containerd_address
    try:
        version = server_version(address)
    except IntegrationError as exc:
        return [
            Result(
                "containerd",
                False,
                str(exc),
                "Set the Cluster's containerd socket to the node's (kind and Minikube: "
                "/run/containerd/containerd.sock inside the node) and give the worker access "
                "to it, or set HELMDECK_CTR to a wrapper that runs ctr on the node",
            )
        ]
    return [Result("containerd", True, f"containerd {version} at {address} (namespace k8s.io)")]


def helm_check():
    try:
        major, minor, patch = Helm().version()
    except IntegrationError as exc:
        return Result(
            "helm",
            False,
            str(exc),
            "Install helm 3.x or 4.x and put it on PATH (or set HELMDECK_HELM)",
        )
    return Result(
        "helm",
        major >= 3,
        f"helm v{major}.{minor}.{patch}",
        "" if major >= 3 else "Helmdeck needs helm 3 or 4",
    )


def kubectl_check():
    binary = shutil.which(settings.HELMDECK_KUBECTL) or settings.HELMDECK_KUBECTL
    try:
        out = subprocess.run(
            [binary, "version", "--client", "-o", "json"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        version = json.loads(out)["clientVersion"]["gitVersion"]
    except (OSError, subprocess.SubprocessError, ValueError, KeyError) as exc:
        return Result(
            "kubectl",
            False,
            f"cannot run {binary}: {exc}",
            "Install kubectl and put it on PATH (or set HELMDECK_KUBECTL)",
        )
    return Result("kubectl", True, f"kubectl {version}")


def size_check(kube):
    """The cluster's size against the research's Minikube (4 CPUs / 8 GB). A pod runs on
    one node, so on a cluster of several the largest node has to be that size; the total
    is shown beside it."""
    try:
        nodes = kube.nodes()
    except IntegrationError as exc:
        return Result("cluster size", False, str(exc), f"Start the cluster: {MINIKUBE_START}")
    name, largest = largest_node(nodes)
    detail = f"1 node, {format_cpu(largest.cpu)} and {format_memory(largest.memory)}"
    if len(nodes) != 1:
        total = Resources()
        for node in nodes:
            total += node_capacity(node)
        detail = (
            f"{len(nodes)} nodes, {format_cpu(total.cpu)} and {format_memory(total.memory)} in all"
        )
        if nodes:
            detail += (
                f"; the largest, {name}, has {format_cpu(largest.cpu)} and "
                f"{format_memory(largest.memory)}"
            )
    if not _seed_sized(largest):
        below = (
            "below the research's 4 CPUs / 8 GB"
            if len(nodes) == 1
            else "no node has the research's 4 CPUs / 8 GB (a pod runs on one node)"
        )
        return Result(
            "cluster size", False, f"{detail}: {below}", f"minikube delete && {MINIKUBE_START}"
        )
    return Result("cluster size", True, detail)


def _seed_sized(size):
    return size.cpu >= SEED_CPUS and size.memory >= SEED_MEMORY


def largest_node(nodes):
    """(name, capacity) of the largest node: of those of the research's size if any, the
    one with the most cpu, then memory; ("", zero) without nodes."""
    sizes = [(node_capacity(node), node["metadata"]["name"]) for node in nodes]
    if not sizes:
        return "", Resources()
    size, name = max(sizes, key=lambda s: (_seed_sized(s[0]), s[0].cpu, s[0].memory, s[1]))
    return name, size


def fits_check(spec, cluster, kube):
    fit = capacity_fit(spec=spec, cluster=cluster, kube=kube)
    detail = (
        f"{spec['name']} requests {format_cpu(fit.needed.cpu)} and "
        f"{format_memory(fit.needed.memory)}; {format_cpu(fit.free.cpu)} and "
        f"{format_memory(fit.free.memory)} free ({fit.where})"
    )
    return Result(
        "profile fits",
        fit.fits,
        detail,
        "" if fit.fits else f"Lower requests or replicas, or: {MINIKUBE_START}",
    )


def addon_checks(kube):
    return [ingress_check(kube), metrics_api_check(kube)]


def ingress_check(kube):
    namespace, deployment = "ingress-nginx", "ingress-nginx-controller"
    fix = "minikube addons enable ingress"
    try:
        ok = kube.deployment_available(namespace, deployment)
    except IntegrationError as exc:
        return Result("ingress addon", False, str(exc), fix)
    detail = (
        f"{namespace}/{deployment} is available" if ok else f"no available {namespace}/{deployment}"
    )
    return Result("ingress addon", ok, detail, "" if ok else fix)


METRICS_API = "v1beta1.metrics.k8s.io"


def metrics_api_check(kube):
    """What `kubectl top` and the usage section need: the Metrics API served, i.e. its
    APIService Available (Minikube's addon registers it; so does any metrics-server,
    however it runs)."""
    fix = "minikube addons enable metrics-server"
    try:
        found = kube.api_service(METRICS_API)
    except IntegrationError as exc:
        return Result("metrics-server addon", False, str(exc), fix)
    if found is None:
        return Result(
            "metrics-server addon",
            False,
            f"no APIService {METRICS_API}: the Metrics API is not installed",
            fix,
        )
    available, reason = found
    if not available:
        return Result(
            "metrics-server addon",
            False,
            f"APIService {METRICS_API} is not Available ({reason})",
            fix,
        )
    return Result("metrics-server addon", True, f"APIService {METRICS_API} is Available")


# ---- the page asks, a worker runs the checks (tasks.run_doctor), the cache keeps ---------
DOCTOR_TTL = 120  # results: a minute or two old at most
DOCTOR_PENDING_TTL = 300  # longer than the task's time limit: asked once while it runs


def doctor_key(cluster):
    """Changes when the cluster's settings change, so an edited cluster is checked again."""
    settings_ = (
        cluster.kubeconfig_path,
        cluster.kube_context,
        cluster.minikube_profile,
        cluster.docker_host,
        cluster.image_delivery,
        cluster.containerd_address,
        str(cluster.capacity_cpus),
        cluster.capacity_memory,
    )
    digest = hashlib.sha256(repr(settings_).encode()).hexdigest()[:12]
    return f"helmdeck:doctor:{cluster.pk}:{digest}"


def doctor_request(cluster):
    """The cached doctor results ([{name, ok, detail, fix}]) of a cluster, or None after
    queueing the checks; poll it as the preview is polled."""
    from deployments.tasks import run_doctor  # the worker's side (tasks import services)

    key = doctor_key(cluster)
    return cached_or_queued(
        key, DOCTOR_PENDING_TTL, run_doctor, cluster.pk, key, valid=_is_doctor_report
    )


def _is_doctor_report(value):
    return isinstance(value, list) and all(
        isinstance(r, dict) and {"name", "ok", "detail", "fix"} <= r.keys() for r in value
    )


def doctor_forget(cluster):
    """Drop a cluster's cached results, so the next request runs the checks again."""
    cache.delete(doctor_key(cluster))


def doctor_store(*, cluster, key):
    """The worker's side of doctor_request: run the checks and keep the results, unless the
    cluster is gone or its settings changed since (the request's pending mark goes)."""
    if cluster is None or doctor_key(cluster) != key:
        cache.delete(key)
        return
    cache.set(key, [vars(result) for result in cluster_doctor(cluster=cluster)], DOCTOR_TTL)
