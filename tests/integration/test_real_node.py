"""The sandbox's real node (scripts/sandbox/node): a kubelet with containerd runs real
containers; probes, logs, exec, DNS, ClusterIP and NodePort are the real thing; the
simulated nodes only take namespaces that ask; `node down` leaves the host as it was."""

from __future__ import annotations

import os
import re
import subprocess
import urllib.request
from pathlib import Path

import pytest
from kubernetes import client

from tests.fixtures.infra import SCRIPTS, node_load, wait_until

pytestmark = pytest.mark.integration

NODE = "helmdeck-real"
NODE_IP = "198.18.0.1"
SANDBOX_RANGE = re.compile(r"^198\.1[89]\.")


def _answer(url: str, timeout: float = 30) -> tuple[int, str]:
    """GET once kube-proxy has programmed the service (a Ready pod does not mean that yet)."""
    return wait_until(lambda: _get(url), timeout=timeout, what=f"{url} to answer")


def _get(url: str, timeout: float = 5) -> tuple[int, str]:
    assert SANDBOX_RANGE.match(url.split("//")[1]), f"{url}: only the sandbox's own addresses"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _ready(pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def _probe_deployment(ns, name: str, image: str, *, env=None, replicas: int = 1):
    labels = {"app": name}
    container = client.V1Container(
        name="app",
        image=image,
        image_pull_policy="Never",
        ports=[client.V1ContainerPort(container_port=8080, name="http")],
        env=[client.V1EnvVar(name=k, value=v) for k, v in (env or {}).items()],
        readiness_probe=client.V1Probe(
            http_get=client.V1HTTPGetAction(path="/ready", port="http"), period_seconds=1
        ),
        liveness_probe=client.V1Probe(
            http_get=client.V1HTTPGetAction(path="/health", port="http"), period_seconds=5
        ),
        resources=client.V1ResourceRequirements(
            requests={"cpu": "50m", "memory": "48Mi"}, limits={"cpu": "200m", "memory": "96Mi"}
        ),
    )
    ns.apps.create_namespaced_deployment(
        ns.namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1DeploymentSpec(
                replicas=replicas,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(containers=[container]),
                ),
            ),
        ),
    )
    service = ns.core.create_namespaced_service(
        ns.namespace,
        client.V1Service(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1ServiceSpec(
                type="NodePort",
                selector=labels,
                ports=[client.V1ServicePort(port=80, target_port="http")],
            ),
        ),
    )
    return service


def _wait_ready(ns, selector: str, count: int = 1, timeout: float = 90):
    return wait_until(
        lambda: (
            (pods := ns.pods(selector)) and len([p for p in pods if _ready(p)]) == count and pods
        ),
        timeout=timeout,
        what=f"{count} pod(s) {selector} Ready",
    )


def test_the_real_node_is_a_kubelet_with_containerd_and_the_simulated_ones_are_tainted(
    sandbox_cluster,
):
    nodes = {n.metadata.name: n for n in sandbox_cluster.core.list_node().items}

    real = nodes[NODE]
    assert real.status.node_info.container_runtime_version.startswith("containerd://")
    assert real.status.node_info.kubelet_version.startswith("v1.")
    assert {(a.type, a.address) for a in real.status.addresses} >= {("InternalIP", NODE_IP)}
    assert int(real.status.capacity["cpu"]) == os.cpu_count()  # the machine's own size
    assert not real.spec.taints
    assert "kwok.x-k8s.io/node" not in (real.metadata.annotations or {})
    assert any(c.type == "Ready" and c.status == "True" for c in real.status.conditions)

    simulated = [n for name, n in nodes.items() if name != NODE]
    assert simulated
    for node in simulated:
        assert node.metadata.annotations["kwok.x-k8s.io/node"] == "fake"
        assert [(t.key, t.effect) for t in node.spec.taints] == [
            ("helmdeck.dev/simulated", "NoSchedule")
        ]


def test_the_kubelet_answers_no_one_without_a_client_certificate(sandbox_cluster):
    """A local user (or a pod) who reaches 198.18.0.1:10250 must not get the kubelet's
    pods, logs or exec: anonymous requests are refused, the read-only port is off, and
    the health port listens on loopback only."""
    import socket
    import ssl

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # we test the kubelet's refusal, not its cert
    for path in ("/pods", "/runningpods/", "/metrics/resource", "/containerLogs/x/y/z"):
        request = urllib.request.Request(f"https://{NODE_IP}:10250{path}")  # noqa: S310
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5, context=context)  # noqa: S310
        assert refused.value.code == 401, (path, refused.value.code)
    for port in (10255, 10248):  # read-only API: off; healthz: loopback only
        with socket.socket() as sock:
            sock.settimeout(2)
            assert sock.connect_ex((NODE_IP, port)) != 0, f"{NODE_IP}:{port} answers"


def test_pods_run_on_the_real_node_unless_their_namespace_asks_for_the_simulated_ones(
    real_node, sandbox, probe_image
):
    _probe_deployment(real_node, "real", probe_image)
    _probe_deployment(sandbox, "simulated", "anything:1.0")

    real = _wait_ready(real_node, "app=real")[0]
    simulated = _wait_ready(sandbox, "app=simulated")[0]

    assert real.spec.node_name == NODE
    assert simulated.spec.node_name != NODE
    assert sandbox_node_is_kwok(sandbox, simulated.spec.node_name)


def sandbox_node_is_kwok(ns, name: str) -> bool:
    return ns.core.read_node(name).metadata.annotations.get("kwok.x-k8s.io/node") == "fake"


def test_a_deployment_runs_for_real_probes_logs_exec_dns_clusterip_and_nodeport(
    real_node, probe_image
):
    service = _probe_deployment(real_node, "web", probe_image, env={"GREETING": "from-env"})
    pod = _wait_ready(real_node, "app=web")[0]
    name, ns = pod.metadata.name, real_node.namespace
    assert SANDBOX_RANGE.match(pod.status.pod_ip), pod.status.pod_ip

    # the kubelet's own probes hit the container: its log shows them
    logs = wait_until(
        lambda: (
            (text := real_node.core.read_namespaced_pod_log(name, ns)).count("request /ready") >= 2
            and text
        ),
        timeout=30,
        what="readiness probe requests in the container's log",
    )
    assert logs.startswith("probe starting: from-env\n")

    node_port = service.spec.ports[0].node_port
    assert _answer(f"http://{NODE_IP}:{node_port}/env/GREETING") == (200, "from-env")
    cluster_ip = real_node.core.read_namespaced_service("web", ns).spec.cluster_ip
    assert SANDBOX_RANGE.match(cluster_ip)
    assert _answer(f"http://{cluster_ip}/health") == (200, "ok")

    # cluster DNS from inside the pod, short and fully qualified
    assert _get(f"http://{NODE_IP}:{node_port}/resolve/web") == (200, cluster_ip)
    assert _get(f"http://{NODE_IP}:{node_port}/resolve/web.{ns}.svc.cluster.local") == (
        200,
        cluster_ip,
    )
    status, body = _get(f"http://{NODE_IP}:{node_port}/resolve/example.com")
    assert status == 502, "nothing outside the cluster is ever asked"

    exec_out = real_node.kubectl("exec", name, "--", "cat", "/etc/resolv.conf")
    assert "nameserver 198.18.0.10" in exec_out
    assert f"search {ns}.svc.cluster.local svc.cluster.local cluster.local" in exec_out

    # readiness for real: the container says not-ready, the endpoint goes
    real_node.kubectl("exec", name, "--", "touch", "/tmp/not-ready")
    wait_until(lambda: not _ready(real_node.pod(name)), timeout=20, what="pod not Ready")
    failed = wait_until(
        lambda: [
            e
            for e in real_node.events(name)
            if e.reason == "Unhealthy" and "HTTP probe failed with statuscode: 503" in e.message
        ],
        timeout=20,
        what="the kubelet's Unhealthy event",
    )[0]
    assert failed.source.component == "kubelet" and failed.type == "Warning"
    assert failed.message == "Readiness probe failed: HTTP probe failed with statuscode: 503"


# ---- the host before and after -----------------------------------------------------

VOLATILE_SYSCTLS = re.compile(
    r"^(fs\.(dentry-state|file-nr|inode-nr|inode-state|quota\.)|kernel\.(random\.|ns_last_pid|"
    r"pty\.nr|sched_domain|perf_event)|net\.netfilter\.nf_conntrack_count|"
    r"net\.ipv4\.tcp_mem|net\.ipv4\.udp_mem|net\.ipv6\.conf\.(veth|cni|helmdeck)|"
    r"net\.ipv4\.conf\.(veth|cni|helmdeck)|net\.ipv4\.neigh\.(veth|helmdeck)|"
    r"net\.ipv6\.neigh\.(veth|helmdeck)|vm\.(nr_|stat))"
)


def _sh(*args: str) -> str:
    return subprocess.run(args, capture_output=True, text=True, check=False).stdout


def host_state() -> dict[str, list[str]]:
    """What a node could change on the host, without counters and per-run numbers."""
    iptables = []
    for save in ("iptables-save", "ip6tables-save"):
        for line in _sh(save).splitlines():
            if line.startswith("#"):
                continue
            iptables.append(re.sub(r"\[\d+:\d+\]", "", line))
    links = sorted(
        line.split(":")[1].strip().split("@")[0] for line in _sh("ip", "-o", "link").splitlines()
    )
    addresses = sorted(" ".join(line.split()[1:4]) for line in _sh("ip", "-o", "addr").splitlines())
    mounts = sorted(_sh("findmnt", "-rn", "-o", "TARGET,FSTYPE,PROPAGATION").splitlines())
    cgroups = sorted(str(p) for p in Path("/sys/fs/cgroup").glob("*/*") if p.is_dir())
    sysctls = sorted(
        line for line in _sh("sysctl", "-a").splitlines() if not VOLATILE_SYSCTLS.match(line)
    )
    paths = sorted(
        p
        for p in (
            "/run/containerd",
            "/var/lib/cni",
            "/var/run/netns",
            "/var/log/containers",
            "/var/log/pods",
            "/opt/containerd",
            "/etc/cni",
            "/opt/cni",
            "/var/lib/kubelet",
            "/etc/kubernetes",
            "/var/lib/containerd",
        )
        if os.path.exists(p)
    )
    return {
        "iptables": iptables,
        "links": links,
        "addresses": addresses,
        "mounts": mounts,
        "cgroups": cgroups,
        "sysctls": sysctls,
        "paths": paths,
        "routes": sorted(_sh("ip", "route", "show", "table", "all").splitlines()),
        "processes": sorted(
            line
            for line in _sh("ps", "-eo", "args").splitlines()
            if re.search(r"kubelet|kube-proxy|coredns|containerd-shim|containerd --config", line)
        ),
    }


def _node(command: str) -> None:
    result = subprocess.run(
        [str(SCRIPTS / "sandbox" / "node"), command],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


@pytest.mark.serial  # every other test's pods go with the node; the host compared must be still
def test_node_down_leaves_the_host_as_it_found_it(sandbox_cluster, real_node, probe_image, dockerd):
    try:
        _node("down")
        before = host_state()
        _node("up")
        node_load(dockerd, probe_image)  # down removed the node's images with the rest
        # put every part to work: pods with a network, a service (KUBE-* chains), volume
        # mounts (the service-account token), container cgroups
        service = _probe_deployment(real_node, "busy", probe_image, replicas=2)
        _wait_ready(real_node, "app=busy", count=2)
        assert _answer(f"http://{NODE_IP}:{service.spec.ports[0].node_port}/health") == (200, "ok")
        during = host_state()
        assert during != before  # the snapshot sees what the node does
        assert any("KUBE-" in line for line in during["iptables"])
        assert "helmdeck-cni0" in during["links"]
        _node("down")
        after = host_state()
    finally:
        _node("up")
        node_load(dockerd, probe_image)

    for key in before:
        assert after[key] == before[key], (
            f"{key} changed: added {sorted(set(after[key]) - set(before[key]))[:20]}, "
            f"removed {sorted(set(before[key]) - set(after[key]))[:20]}"
        )
