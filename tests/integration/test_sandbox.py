"""The sandbox's simulated (kwok) nodes behave like real ones: helm rollouts, kubelet-style
failures, the scheduler's resource checks, readiness delays and container logs. (The real
node is tests/integration/test_real_node.py; what the kubelet really reports,
tests/deployments/services/test_watcher_real_node.py.)"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
from kubernetes import client

pytestmark = pytest.mark.integration

CHART = Path(__file__).parent / "charts" / "tiny"


def _ready(pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def _container(pod, name: str = "app"):
    return next((s for s in (pod.status.container_statuses or []) if s.name == name), None)


def _deployment(
    sandbox,
    name: str,
    *,
    annotations=None,
    probe_delay: int = 0,
    period: int = 1,
    replicas: int = 1,
    pull_policy: str | None = None,
):
    labels = {"app": name}
    container = client.V1Container(
        name="app",
        image=f"{name}:1.0.0",
        image_pull_policy=pull_policy,
        ports=[client.V1ContainerPort(container_port=8000, name="http")],
        readiness_probe=client.V1Probe(
            http_get=client.V1HTTPGetAction(path="/ready", port="http"),
            initial_delay_seconds=probe_delay,
            period_seconds=period,
        ),
        resources=client.V1ResourceRequirements(
            requests={"cpu": "100m", "memory": "64Mi"}, limits={"cpu": "100m", "memory": "64Mi"}
        ),
    )
    body = client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels, annotations=annotations or {}),
                spec=client.V1PodSpec(containers=[container]),
            ),
        ),
    )
    sandbox.apps.create_namespaced_deployment(sandbox.namespace, body)
    return sandbox.wait_until(
        lambda: sandbox.pods(f"app={name}"), timeout=30, what=f"a pod of {name}"
    )[0].metadata.name


def _bare_pod(sandbox, name: str, *, cpu="100m", memory="64Mi", probe_delay: int | None = None):
    probe = None
    if probe_delay is not None:
        probe = client.V1Probe(
            http_get=client.V1HTTPGetAction(path="/ready", port=8000),
            initial_delay_seconds=probe_delay,
            period_seconds=1,
        )
    body = client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(
                    name="app",
                    image="example/app:1.0.0",
                    readiness_probe=probe,
                    resources=client.V1ResourceRequirements(
                        requests={"cpu": cpu, "memory": memory},
                        limits={"cpu": cpu, "memory": memory},
                    ),
                )
            ]
        ),
    )
    sandbox.core.create_namespaced_pod(sandbox.namespace, body)
    return name


def _events(sandbox, pod: str) -> list[tuple[str, str, str]]:
    return [(e.type, e.reason, e.message) for e in sandbox.events(pod)]


def _has_event(sandbox, pod: str, type_: str, reason: str, fragment: str) -> bool:
    return any(
        t == type_ and r == reason and fragment in (m or "") for t, r, m in _events(sandbox, pod)
    )


# ---- helm -------------------------------------------------------------------------


@pytest.mark.parametrize("helm_bin", ["v4", "v3"], indirect=True)
def test_it_rolls_out_a_chart_with_helm_upgrade_install_wait(sandbox, helm_bin):
    started = time.monotonic()
    result = subprocess.run(
        [
            helm_bin,
            "upgrade",
            "--install",
            "tiny",
            str(CHART),
            "--namespace",
            sandbox.namespace,
            "--kubeconfig",
            str(sandbox.kubeconfig),
            "--wait",
            helm_bin.rollback_flag,
            "--timeout",
            "90s",
            "--set",
            "readiness.initialDelaySeconds=2",
        ],
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    elapsed = time.monotonic() - started

    assert result.returncode == 0, result.stderr
    assert "STATUS: deployed" in result.stdout
    # --wait really waited for readiness (2s initial delay on both replicas)
    assert elapsed >= 2
    deployment = sandbox.apps.read_namespaced_deployment("tiny", sandbox.namespace)
    assert deployment.status.ready_replicas == 2
    assert deployment.status.updated_replicas == 2
    pods = sandbox.pods("app.kubernetes.io/instance=tiny")
    assert len(pods) == 2
    assert all(_ready(p) and p.status.phase == "Running" for p in pods)
    assert all(_container(p).ready and _container(p).state.running for p in pods)
    for pod in pods:
        assert _has_event(
            sandbox, pod.metadata.name, "Normal", "Scheduled", "Successfully assigned"
        )
        assert _has_event(sandbox, pod.metadata.name, "Normal", "Started", "Started container app")


@pytest.mark.parametrize("helm_bin", ["v4", "v3"], indirect=True)
def test_it_fails_and_rolls_back_a_release_that_never_becomes_ready(sandbox, helm_bin):
    base = [
        helm_bin,
        "upgrade",
        "--install",
        "tiny",
        str(CHART),
        "--namespace",
        sandbox.namespace,
        "--kubeconfig",
        str(sandbox.kubeconfig),
        "--set",
        "replicaCount=1",
    ]
    first = subprocess.run(
        [*base, "--wait", "--timeout", "60s"],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert first.returncode == 0, first.stderr

    broken = subprocess.run(
        [
            *base,
            "--wait",
            helm_bin.rollback_flag,
            "--timeout",
            "8s",
            "--set",
            "image.tag=broken",
            "--set-string",
            "podAnnotations.helmdeck\\.dev/simulate=image-pull-error",
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )

    assert broken.returncode != 0
    assert (
        "rolled back" in (broken.stderr + broken.stdout).lower()
        or "rollback" in (broken.stderr + broken.stdout).lower()
    )
    history = subprocess.run(
        [
            helm_bin,
            "history",
            "tiny",
            "-n",
            sandbox.namespace,
            "--kubeconfig",
            str(sandbox.kubeconfig),
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert '"status":"failed"' in history.stdout.replace(" ", "")
    assert '"status":"deployed"' in history.stdout.replace(" ", "")


# ---- kubelet-style failures --------------------------------------------------------


def test_a_local_image_missing_under_pull_policy_never_is_err_image_never_pull(sandbox):
    # what the real node's kubelet says (tests/deployments/services/test_watcher_real_node.py)
    pod = _deployment(
        sandbox,
        "neverpull",
        annotations={"helmdeck.dev/simulate": "image-pull-error"},
        pull_policy="Never",
    )

    current = sandbox.wait_until(
        lambda: (
            (p := sandbox.pod(pod))
            and (s := _container(p))
            and s.state.waiting
            and s.state.waiting.reason == "ErrImageNeverPull"
            and p
        ),
        timeout=30,
        what="ErrImageNeverPull",
    )
    assert current.status.phase == "Pending"
    assert _container(current).state.waiting.message == (
        'Container image "neverpull:1.0.0" is not present with pull policy of Never'
    )
    events = sandbox.wait_until(
        lambda: (
            _has_event(sandbox, pod, "Warning", "Failed", "Error: ErrImageNeverPull")
            and _events(sandbox, pod)
        ),
        timeout=20,
        what="the Failed event",
    )
    assert (
        "Warning",
        "ErrImageNeverPull",
        'Container image "neverpull:1.0.0" is not present with pull policy of Never',
    ) in events
    assert not any(reason == "BackOff" for _, reason, _ in events)  # no pull is retried


def test_it_reports_an_image_pull_error_like_a_kubelet(sandbox):
    pod = _deployment(
        sandbox, "pullfail", annotations={"helmdeck.dev/simulate": "image-pull-error"}
    )

    seen = set()

    def waiting_reasons():
        status = _container(sandbox.pod(pod))
        if status and status.state.waiting:
            seen.add(status.state.waiting.reason)
        return {"ErrImagePull", "ImagePullBackOff"} <= seen

    sandbox.wait_until(waiting_reasons, timeout=30, what="ErrImagePull then ImagePullBackOff")
    current = sandbox.wait_until(
        lambda: (
            (p := sandbox.pod(pod))
            and _container(p).state.waiting.reason == "ImagePullBackOff"
            and p
        ),
        timeout=20,
        what="ImagePullBackOff",
    )
    status = _container(current)
    assert current.status.phase == "Pending"
    assert status.ready is False and status.state.running is None
    assert status.state.waiting.message == 'Back-off pulling image "pullfail:1.0.0"'
    assert not _ready(current)
    events = sandbox.wait_until(
        lambda: (
            _has_event(sandbox, pod, "Warning", "Failed", "Error: ImagePullBackOff")
            and _events(sandbox, pod)
        ),
        timeout=20,
        what="ImagePullBackOff events",
    )
    assert ("Warning", "Failed", "Error: ErrImagePull") in events
    assert any(
        t == "Warning"
        and r == "Failed"
        and m.startswith('Failed to pull image "pullfail:1.0.0": rpc error: code = NotFound')
        for t, r, m in events
    )
    assert ("Normal", "BackOff", 'Back-off pulling image "pullfail:1.0.0"') in events
    assert ("Normal", "Pulling", 'Pulling image "pullfail:1.0.0"') in events
    event = next(e for e in sandbox.events(pod) if e.reason == "BackOff")
    assert event.source.component == "kubelet"
    assert event.involved_object.field_path == "spec.containers{app}"


@pytest.mark.parametrize(
    ("simulate", "reason", "exit_code"),
    [("crash-loop", "Error", 1), ("oom", "OOMKilled", 137)],
)
def test_it_reports_a_crash_loop_like_a_kubelet(sandbox, simulate, reason, exit_code):
    pod = _deployment(
        sandbox,
        simulate,
        annotations={
            "helmdeck.dev/simulate": simulate,
            "helmdeck.dev/crash-after": "1s",
            "helmdeck.dev/crash-backoff": "1s",
        },
    )

    def crashed_twice():
        status = _container(sandbox.pod(pod))
        return status and status.restart_count >= 2 and status.state.waiting and status

    status = sandbox.wait_until(crashed_twice, timeout=45, what="two restarts in CrashLoopBackOff")
    current = sandbox.pod(pod)
    assert current.status.phase == "Running"
    assert not _ready(current)
    assert status.ready is False
    assert status.state.waiting.reason == "CrashLoopBackOff"
    assert status.state.waiting.message.startswith(
        "back-off 1s restarting failed container=app pod="
    )
    terminated = status.last_state.terminated
    assert terminated.exit_code == exit_code
    assert terminated.reason == reason
    assert terminated.finished_at >= terminated.started_at
    later = sandbox.wait_until(
        lambda: (s := _container(sandbox.pod(pod))).restart_count > status.restart_count and s,
        timeout=30,
        what="restartCount to keep increasing",
    )
    assert later.restart_count > status.restart_count
    backoff = next(e for e in sandbox.events(pod) if e.reason == "BackOff")
    assert backoff.type == "Warning"
    assert backoff.message.startswith("Back-off restarting failed container app in pod ")
    assert backoff.count >= 2
    assert _has_event(sandbox, pod, "Normal", "Started", "Started container app")


def test_it_keeps_a_never_ready_pod_running_but_unready(sandbox):
    pod = _deployment(
        sandbox, "neverready", annotations={"helmdeck.dev/simulate": "never-ready"}, period=1
    )

    unhealthy = sandbox.wait_until(
        lambda: [e for e in sandbox.events(pod) if e.reason == "Unhealthy" and (e.count or 0) >= 3],
        timeout=30,
        what="repeated Unhealthy events",
    )[0]

    current = sandbox.pod(pod)
    status = _container(current)
    assert current.status.phase == "Running"
    assert status.state.running is not None and status.ready is False and status.restart_count == 0
    assert not _ready(current)
    assert unhealthy.type == "Warning"
    assert unhealthy.message == "Readiness probe failed: HTTP probe failed with statuscode: 503"
    deployment = sandbox.apps.read_namespaced_deployment("neverready", sandbox.namespace)
    assert not deployment.status.ready_replicas


# ---- scheduling and readiness ------------------------------------------------------


@pytest.mark.parametrize(
    ("cpu", "memory", "resource"), [("5", "64Mi", "cpu"), ("100m", "9Gi", "memory")]
)
def test_it_leaves_a_pod_that_does_not_fit_pending(sandbox, cpu, memory, resource):
    pod = _bare_pod(sandbox, f"toobig-{resource}", cpu=cpu, memory=memory)

    event = sandbox.wait_until(
        lambda: next((e for e in sandbox.events(pod) if e.reason == "FailedScheduling"), None),
        timeout=30,
        what="FailedScheduling",
    )

    assert event.type == "Warning"
    assert f"Insufficient {resource}" in event.message
    # the real node is no candidate: the namespace's node selector keeps its pods off it
    assert re.match(r"0/\d+ nodes are available: ", event.message), event.message
    assert "node(s) didn't match Pod's node affinity/selector" in event.message
    # the scheduler records the event and writes the pod's condition separately (its API
    # calls are asynchronous): the condition may land a moment after the event
    scheduled = sandbox.wait_until(
        lambda: next(
            (c for c in sandbox.pod(pod).status.conditions or () if c.type == "PodScheduled"), None
        ),
        timeout=10,
        what="the PodScheduled condition",
    )
    assert scheduled.status == "False" and scheduled.reason == "Unschedulable"
    current = sandbox.pod(pod)
    assert current.status.phase == "Pending"
    assert current.spec.node_name is None


def test_it_sizes_the_node_like_the_seeds_minikube(sandbox_cluster):
    nodes = sandbox_cluster.core.list_node(label_selector="type=kwok").items

    assert len(nodes) == 1
    allocatable = nodes[0].status.allocatable
    assert (allocatable["cpu"], allocatable["memory"], allocatable["pods"]) == ("4", "8Gi", "110")
    assert any(c.type == "Ready" and c.status == "True" for c in nodes[0].status.conditions)


def test_it_makes_a_pod_ready_only_after_its_readiness_delay(sandbox):
    delay = 4
    pod = _bare_pod(sandbox, "slowready", probe_delay=delay)

    status = sandbox.wait_until(
        lambda: (s := _container(sandbox.pod(pod))) and s.state.running and s,
        timeout=20,
        what="container running",
    )
    running_seen = time.monotonic()
    started_at = status.state.running.started_at
    time.sleep(max(0.0, delay - 1.5))
    assert not _ready(sandbox.pod(pod)), "Ready before the readiness probe's initialDelaySeconds"

    sandbox.wait_until(lambda: _ready(sandbox.pod(pod)), timeout=delay + 10, what="Ready")

    assert time.monotonic() - running_seen >= delay - 1.5
    ready_at = next(
        c for c in sandbox.pod(pod).status.conditions if c.type == "Ready"
    ).last_transition_time
    assert delay - 1 <= (ready_at - started_at).total_seconds() <= delay + 3
    assert _container(sandbox.pod(pod)).ready is True


# ---- logs --------------------------------------------------------------------------


def test_it_streams_container_logs_the_test_writes(sandbox, kubectl_bin):
    pod = _bare_pod(sandbox, "chatty")
    sandbox.wait_until(lambda: _ready(sandbox.pod(pod)), timeout=30, what="pod Ready")
    sandbox.write_log(pod, "app", "booting", "listening on :8000")

    assert (
        sandbox.core.read_namespaced_pod_log(pod, sandbox.namespace, container="app")
        == "booting\nlistening on :8000\n"
    )

    follow = subprocess.Popen(  # noqa: S603
        [
            str(kubectl_bin),
            "--kubeconfig",
            str(sandbox.kubeconfig),
            "-n",
            sandbox.namespace,
            "logs",
            "-f",
            pod,
            "-c",
            "app",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert follow.stdout.readline().strip() == "booting"
        assert follow.stdout.readline().strip() == "listening on :8000"
        for i in range(3):
            sandbox.write_log(pod, "app", f"GET /ready 200 #{i}")
            assert follow.stdout.readline().strip() == f"GET /ready 200 #{i}"
    finally:
        follow.terminate()
        follow.wait(timeout=10)


def test_it_serves_the_previous_containers_log(sandbox):
    pod = _bare_pod(sandbox, "restarted")
    sandbox.wait_until(lambda: _ready(sandbox.pod(pod)), timeout=30, what="pod Ready")
    sandbox.write_log(pod, "app", "panic: boom", previous=True)
    sandbox.write_log(pod, "app", "started again")

    previous = sandbox.core.read_namespaced_pod_log(
        pod, sandbox.namespace, container="app", previous=True
    )
    current = sandbox.core.read_namespaced_pod_log(pod, sandbox.namespace, container="app")

    assert previous == "panic: boom\n"
    assert current == "started again\n"


def test_it_shows_the_default_log_for_pods_without_one(sandbox):
    pod = _bare_pod(sandbox, "quiet")
    sandbox.wait_until(lambda: _ready(sandbox.pod(pod)), timeout=30, what="pod Ready")

    text = sandbox.core.read_namespaced_pod_log(pod, sandbox.namespace, container="app")

    assert "helmdeck sandbox" in text
