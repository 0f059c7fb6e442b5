"""Shared set-up of the fault tests: a profile aimed at the sandbox, the environment the
panel's child processes run in (a private Redis, fast heartbeats and reaping), and the
end-state checks every fault test makes.

Each test injects one fault into a real component and then asserts the end state: every
Release terminal within its deadline, no helm release left pending-*, no deploy run twice
(helm revisions), no log line lost, and the release page saying in words what happened.
`measure()` prints a line per figure (run with -s to see them; the README's Reliability
table was filled from them).
"""

import json
import time
from pathlib import Path

import pytest

from deployments.integrations.helm import Helm
from deployments.models import Cluster, Component, LogLine, Profile, Release
from tests.deployments.services.conftest import SECRETS
from tests.factories import PASSWORD, UserFactory

# The number of lines comes from the context (file `lines`), so a test can make the next
# attempt of the same build quick by rewriting it.
SLOW_BUILD = """ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY lines /lines
RUN for i in $(seq 1 $(cat /lines)); do echo "build line $i"; sleep %(every)s; done
USER 1001
"""


def measure(scenario, **figures):
    print(f"\nFAULT {scenario}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


def _point_celery_at(url):
    """The test process enqueues too: its Celery app must publish to the private Redis."""
    from controlpanel.celery import app

    app.conf.broker_url = url
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def fault_env(child_env, private_redis, settings, helm_bin, tmp_path):
    """Environment for workers and web servers: the test database, the private Redis (as
    broker, pub/sub and cache), heartbeats every second with a 4 s expiry, reaping every
    2 s, retries from 0.5 s apart, and build contexts under tmp_path/builds."""
    url = private_redis.url
    # read before settings change: Celery loads its configuration lazily, from settings
    previous = settings.CELERY_BROKER_URL
    settings.REDIS_URL = url
    settings.CELERY_BROKER_URL = url
    settings.HELMDECK_HELM = str(helm_bin)
    _point_celery_at(url)
    builds = tmp_path / "builds"
    builds.mkdir()
    settings.HELMDECK_PROJECT_DIR = str(builds)
    settings.HELMDECK_SOURCE_ROOTS = ["."]
    env = {
        **child_env,
        **SECRETS,
        "REDIS_URL": url,
        "CELERY_BROKER_URL": url,
        "HELMDECK_HELM": str(helm_bin),
        "HELMDECK_HELM_TIMEOUT": "60",
        "HELMDECK_PROJECT_DIR": str(builds),
        "HELMDECK_SOURCE_ROOTS": ".",
        "HELMDECK_WORKER_HEARTBEAT_SECONDS": "1",
        "HELMDECK_WORKER_HEARTBEAT_TTL": "4",
        "HELMDECK_REAP_SECONDS": "2",
        "HELMDECK_RETRY_BACKOFF": "0.5",  # 4 retries: 0.5 + 1 + 2 + 4 s
        "HELMDECK_TRANSIENT_RETRIES": "4",
    }
    yield env
    _point_celery_at(previous)


@pytest.fixture
def fault_profile(todo_app, sandbox, helm_bin, settings, monkeypatch):
    """todo-app in this test's sandbox namespace: no builds, both Services ClusterIP (a
    NodePort is cluster-wide, and other runs share the sandbox), Ready after a second."""
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    settings.HELMDECK_HELM_TIMEOUT = 60
    Cluster.objects.filter(pk=todo_app.cluster_id).update(
        kubeconfig_path=str(sandbox.kubeconfig), minikube_profile="", docker_host=""
    )
    Profile.objects.filter(pk=todo_app.pk).update(namespace=sandbox.namespace)
    Component.objects.filter(profile=todo_app).update(
        build_context="", build_args={}, readiness_initial_delay=1
    )
    Component.objects.filter(profile=todo_app, name="frontend").update(
        service_type=Component.CLUSTER_IP, node_port=None
    )
    todo_app.refresh_from_db()
    return todo_app  # the sandbox fixture deletes the namespace, helm's records with it


def slow_build(profile, daemon, builds_dir, *, lines=20, every=0.5):
    """Make the backend build a Dockerfile that prints `lines` lines, `every` s apart, on
    `daemon` (the private dockerd). Returns the build context directory."""
    context = builds_dir / "slow"
    context.mkdir(exist_ok=True)
    (context / "Dockerfile").write_text(SLOW_BUILD % {"every": every})
    (context / "lines").write_text(f"{lines}\n")
    Cluster.objects.filter(pk=profile.cluster_id).update(docker_host=daemon.base_url)
    Component.objects.filter(profile=profile, name="backend").update(
        build_context="slow",
        dockerfile="Dockerfile",
        build_args={"BASE_IMAGE": daemon.python_base},
        tag=f"fault-{time.monotonic_ns()}",
    )
    profile.refresh_from_db()
    return context


def helm_of(profile):
    profile.cluster.refresh_from_db()
    return Helm(kubeconfig=profile.cluster.kubeconfig_path)


def helm_history(profile):
    """`helm history` as [{revision, status, description}], [] when never installed."""
    profile.refresh_from_db()
    helm = helm_of(profile)
    try:
        out = helm.run("history", profile.name, "--namespace", profile.namespace, "-o", "json")
    except Exception as exc:  # noqa: BLE001 - "release: not found" means no revision
        if "not found" in str(exc):
            return []
        raise
    return json.loads(out)


def assert_helm_settled(profile, revisions):
    """No revision pending-*, and exactly `revisions` of them (no deploy ran twice)."""
    history = helm_history(profile)
    assert not [h for h in history if h["status"].startswith("pending")], history
    assert len(history) == revisions, history
    return history


def wait_for(predicate, timeout, what, release=None):
    """Poll until `predicate()` is truthy; past `timeout` fail, saying where `release` was."""
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() > deadline:
            state = ""
            if release is not None:
                release.refresh_from_db()
                tail = list(
                    release.log_lines.order_by("-sequence")[:8].values_list("text", flat=True)
                )
                state = f": release {release.status} {release.reason!r}, log tail {tail[::-1]}"
            pytest.fail(f"timed out after {timeout}s waiting for {what}{state}")
        time.sleep(0.2)
    return result


def wait_terminal(release, timeout):
    """The release, once terminal; fails the test past `timeout` seconds (its deadline).
    Also returns how many seconds it took from now."""
    started = time.monotonic()
    wait_for(
        lambda: Release.objects.filter(pk=release.pk, status__in=Release.TERMINAL).exists(),
        timeout,
        f"release #{release.pk} to end",
        release,
    )
    release.refresh_from_db()
    return release, round(time.monotonic() - started, 1)


def assert_log_complete(release):
    """LogLine sequences 1..N with no gap; returns N."""
    sequences = list(
        LogLine.objects.filter(release=release)
        .order_by("sequence")
        .values_list("sequence", flat=True)
    )
    assert sequences == list(range(1, len(sequences) + 1))
    return len(sequences)


def release_page(release):
    """The release page a viewer sees, as text (tags kept: assertions look for words)."""
    from django.test import Client

    user = UserFactory(role="viewer")
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    response = client.get(f"/releases/{release.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def helm_processes(namespace):
    """Command lines of helm processes working in `namespace` (only this test's)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith((b"/helm", b"/helm3")) and namespace.encode() in argv:
            found.append(b" ".join(argv).decode(errors="replace"))
    return found
