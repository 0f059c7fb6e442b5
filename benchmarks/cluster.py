"""The sandbox cluster: API clients, bench-* namespaces, bare pods, free nodePorts and the
real node (its name, its containerd's socket), and when a deploy's pods appeared and became
Ready."""

import contextlib
import os
import secrets
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.harness import PREFIX, BenchError, wait_for

# A namespace with these annotations lands its pods on the sandbox's simulated (kwok)
# nodes: the apiserver's PodNodeSelector and PodTolerationRestriction give every pod in it
# the simulated nodes' selector and the toleration of their taint (scripts/sandbox/up).
# Pods of every other namespace run on the real node. Tests use it too.
SIMULATED_NODES = {
    "scheduler.alpha.kubernetes.io/node-selector": "type=kwok",
    "scheduler.alpha.kubernetes.io/defaultTolerations": (
        '[{"key": "helmdeck.dev/simulated", "operator": "Exists", "effect": "NoSchedule"}]'
    ),
}


def kube():
    """(CoreV1Api, ApiClient) for $KUBECONFIG (the sandbox)."""
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=os.environ.get("KUBECONFIG"))
    return client.CoreV1Api(api), api


def kubectl_bin():
    return os.environ.get("HELMDECK_KUBECTL") or shutil.which("kubectl") or "kubectl"


def helm_bin():
    return os.environ.get("HELMDECK_HELM") or shutil.which("helm") or "helm"


def remove_leftover_namespaces(core, age=timedelta(minutes=60)):
    """bench-* namespaces an interrupted run left (older than `age`: a younger one may
    belong to a run going on beside this one)."""
    cutoff = datetime.now(UTC) - age
    for ns in core.list_namespace().items:
        if ns.metadata.name.startswith(PREFIX) and ns.metadata.creation_timestamp < cutoff:
            with contextlib.suppress(Exception):
                core.delete_namespace(ns.metadata.name)


@contextlib.contextmanager
def namespace(core, kind, *, simulated=True):
    """A fresh bench-<kind>-<hex> namespace on the simulated nodes (the real node when not
    `simulated`), deleted (with its kwok log files) afterwards."""
    from kubernetes import client

    name = f"{PREFIX}{kind}-{secrets.token_hex(3)}"
    annotations = SIMULATED_NODES if simulated else None
    core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, annotations=annotations))
    )
    wait_for(
        lambda: (
            core.list_namespaced_service_account(name, field_selector="metadata.name=default").items
        ),
        timeout=30,
        what=f"the default service account in {name}",
    )
    try:
        yield name
    finally:
        with contextlib.suppress(Exception):
            core.delete_namespace(name)
        shutil.rmtree(sandbox_logs() / name, ignore_errors=True)


def sandbox_dir():
    cache = Path(os.environ.get("HELMDECK_CACHE", Path.home() / ".cache" / "helmdeck"))
    return cache / "sandbox"


def sandbox_logs():
    return sandbox_dir() / "logs"


# kwok manages the simulated nodes only: they carry this annotation (scripts/sandbox/up).
KWOK_NODE = "kwok.x-k8s.io/node"


def real_node(core):
    """The sandbox's real node (kubelet + containerd, scripts/sandbox/node): the one node
    kwok does not manage. BenchError when the sandbox has none."""
    for node in core.list_node().items:
        if (node.metadata.annotations or {}).get(KWOK_NODE) != "fake":
            return node
    raise BenchError("the sandbox has no real node; start it with scripts/sandbox/node up")


def node_containerd():
    """The real node's containerd socket, where images must be before its pods start
    (pull policy Never: there is no registry)."""
    return sandbox_dir() / "node" / "containerd.sock"


def bare_pod(core, ns, name, instance, *, annotations=None, ready_delay=None):
    """A pod labelled as release `instance`'s (so the watcher keeps its row), with no
    readiness probe (Ready as soon as kwok starts it, unless `ready_delay`)."""
    from kubernetes import client

    notes = dict(annotations or {})
    if ready_delay:
        notes["helmdeck.dev/ready-delay"] = ready_delay
    from deployments.integrations.kube import COMPONENT_LABEL, INSTANCE_LABEL

    labels = {INSTANCE_LABEL: instance, COMPONENT_LABEL: "web"}
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels=labels, annotations=notes),
        spec=client.V1PodSpec(
            containers=[client.V1Container(name="web", image="bench/web:1")],
            termination_grace_period_seconds=0,
        ),
    )
    core.create_namespaced_pod(ns, pod)

    def running():
        status = core.read_namespaced_pod(name, ns).status
        return status.phase == "Running" and status.container_statuses

    wait_for(running, timeout=60, what=f"pod {name} Running", interval=0.2)


def free_node_port(core):
    used = {
        port.node_port
        for svc in core.list_service_for_all_namespaces().items
        for port in (svc.spec.ports or [])
        if port.node_port
    }
    from deployments.models import Component

    used |= set(Component.objects.exclude(node_port=None).values_list("node_port", flat=True))
    for _ in range(1000):
        port = 30000 + secrets.randbelow(2768)
        if port not in used:
            return port
    raise BenchError("no free nodePort in 30000-32767")


@contextlib.contextmanager
def pod_timeline(core, ns):
    """Watch the pods of `ns` while the body runs (a deploy into it). Yields a dict that
    afterwards holds "created": time.time() when the first pod appeared, and "ready": when
    the last of them was first seen Ready; both None when not seen. That span is the
    cluster's part of a deploy (scheduling, image, container start, the kubelet's probes),
    whatever tool made the pods."""
    import threading
    import time

    from kubernetes import watch

    created, ready = {}, {}
    marks = {"created": None, "ready": None}
    since = core.list_namespaced_pod(ns).metadata.resource_version
    stream = watch.Watch()

    def follow():
        with contextlib.suppress(Exception):  # the stream ends when stopped or the ns goes
            for event in stream.stream(
                core.list_namespaced_pod, ns, resource_version=since, timeout_seconds=900
            ):
                now, pod = time.time(), event["object"]
                name = pod.metadata.name
                created.setdefault(name, now)
                conditions = (pod.status and pod.status.conditions) or []
                if name not in ready and any(
                    c.type == "Ready" and c.status == "True" for c in conditions
                ):
                    ready[name] = now

    thread = threading.Thread(target=follow, name=f"pod-timeline-{ns}", daemon=True)
    thread.start()
    try:
        yield marks
    finally:
        # The deploy ended after its pods were Ready: give the watch a moment to have read
        # that event (it is normally milliseconds ahead), then stop it.
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and (not created or set(created) - set(ready)):
            time.sleep(0.02)
        stream.stop()  # the thread ends at the next event (the uninstall sends some)
        if created and not set(created) - set(ready):
            marks["created"], marks["ready"] = min(created.values()), max(ready.values())
